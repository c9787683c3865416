// Mixed-label and distillation losses; see losses.h.
#include "apps/training/losses.h"

#include <cmath>

#include "engine/error.h"

namespace fer {

Tensor mixed_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels,
                           float lambda, const CrossEntropyOptions& o) {
  FER_CHECK(lambda >= 0 && lambda <= 1, "mixed_cross_entropy: lambda must be in [0, 1], got ", lambda);
  if (lambda == 1.0f) return cross_entropy(logits, labels, o);
  const Tensor lp = log_softmax(logits);  // shared by both terms
  return add(scale(nll_loss(lp, labels, o), lambda), scale(nll_loss(lp, partner_labels, o), 1.0f - lambda));
}

Tensor distillation_loss(const Tensor& logits, const Tensor& teacher_probs, float temperature) {
  FER_CHECK(temperature > 0 && std::isfinite(temperature),
            "distillation: temperature must be positive, got ", temperature);
  FER_CHECK(teacher_probs.shape() == logits.shape(), "distillation: teacher probabilities ",
            teacher_probs.shape_str(), " do not match the logits ", logits.shape_str());
  const Tensor student = log_softmax(scale(logits, 1.0f / temperature));
  const float n = static_cast<float>(logits.size(0)), t2 = temperature * temperature;
  // KL = sum p log p - sum p log q: the first term is a constant (the teacher's negative entropy),
  // added so the value reads as a divergence (0 when the student matches the teacher).
  double neg_entropy = 0;
  for (float p : teacher_probs.to_vector())
    if (p > 0) neg_entropy += static_cast<double>(p) * std::log(static_cast<double>(p));
  const Tensor cross = scale(sum(mul(teacher_probs.detach(), student)), -t2 / n);
  return add(cross, Tensor::scalar(static_cast<float>(t2 * neg_entropy / n), logits.device()));
}

}  // namespace fer
