// softmax, log_softmax, nll_loss and cross_entropy: forward and backward side by side.
#include <cmath>

#include "engine/ops/op_util.h"

namespace fer {
using namespace ops_detail;

namespace {
// ---- softmax, log_softmax ----------------------------------------------------------------------
// Over the last dimension: x [..., C] is viewed as rows of C values, each row on its own.
//   softmax:      y_c = exp(x_c - max) / sum_j exp(x_j - max)     (max = max_j x_j, subtracted so
//                                                                  that no exp overflows)
//     backward:   dx_c = y_c (dy_c - sum_j dy_j y_j)
//   log_softmax:  y_c = x_c - max - log sum_j exp(x_j - max)
//     backward:   dx_c = dy_c - exp(y_c) sum_j dy_j
// Saved for backward: y (both gradients are cheaper from y than from x).
struct SoftmaxBackward : Node {
  bool log = false;
  Tensor y;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty(y.shape(), y.device());
    const int64_t cols = y.size(-1), rows = y.numel() / cols;
    backend_of(y).softmax_backward(y.data(), gy.data(), gx.data(), rows, cols, log);
    return {gx};
  }
  void release_saved() override { y = Tensor(); }
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
};

// ---- nll_loss, cross_entropy -------------------------------------------------------------------
// logp [N, C] log-probabilities, target [N] class ids t_i, class weights w [C] (all ones when
// not given), label smoothing e in [0, 1) (PyTorch's definitions):
//   loss = 1/W sum_i [ (1-e) w[t_i] (-logp[i,t_i]) + e/C sum_c w[c] (-logp[i,c]) ],
//   W = sum_i w[t_i]
//   d loss / d logp[i,c] = -1/W [ (1-e) w[t_i] [c == t_i] + e/C w[c] ]
// The gradient does not depend on logp: saved for backward are the target and the weights.
// cross_entropy(logits) = nll_loss(log_softmax(logits)), the two ops' backwards chained.
struct NllLossBackward : Node {
  Tensor target, weight;
  Shape shape;
  float smoothing = 0.0f;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty(shape, gy.device());
    backend_of(gy).nll_loss_backward(target.data(), weight.defined() ? weight.data() : nullptr,
                                     shape[0], shape[1], smoothing, gy.item(), gx.data());
    return {gx};
  }
  void release_saved() override { target = weight = Tensor(); }
  const char* name() const override { return "nll_loss"; }
};

Tensor softmax_impl(const Tensor& x, bool log) {
  FER_CHECK(x.dim() >= 1 && x.size(-1) > 0, log ? "log_softmax" : "softmax",
            ": expected [..., C] with C > 0, got ", x.shape_str());
  Tensor y = Tensor::empty(x.shape(), x.device());
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  backend_of(x).softmax_forward(x.data(), y.data(), rows, cols, log);
  if (needs_grad({&x})) {
    auto node = std::make_shared<SoftmaxBackward>();
    node->log = log;
    node->y = y.detach();
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace()) trace->record("softmax", {x}, y, {{"log", log ? 1 : 0}});
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const CrossEntropyOptions& o) {
  FER_CHECK(log_probs.dim() == 2, "nll_loss: expected [N, C] log-probabilities, got ",
            log_probs.shape_str());
  const int64_t N = log_probs.size(0), C = log_probs.size(1);
  FER_CHECK(target.dim() == 1 && target.size(0) == N, "nll_loss: target ", target.shape_str(),
            " does not match input ", log_probs.shape_str(), " (expected [", N, "])");
  FER_CHECK(!o.class_weights.defined() || o.class_weights.shape() == Shape{C},
            "nll_loss: class weights ", o.class_weights.defined() ? o.class_weights.shape_str() : "",
            " do not match ", C, " classes");
  FER_CHECK(o.label_smoothing >= 0.0f && o.label_smoothing < 1.0f,
            "nll_loss: label smoothing must be in [0, 1), got ", o.label_smoothing);
  for (float t : target.to_vector())  // labels are few; checking them on the host is cheap
    FER_CHECK(t >= 0 && t < C && t == std::floor(t), "nll_loss: target class ", t,
              " out of range for ", C, " classes");
  const Device dev = common_device("nll_loss", {&log_probs, &target, &o.class_weights});
  const float* w = o.class_weights.defined() ? o.class_weights.data() : nullptr;
  const float loss = backend(dev).nll_loss_forward(log_probs.data(), target.data(), w, N, C,
                                                   o.label_smoothing);
  Tensor y = Tensor::scalar(loss, dev);
  if (needs_grad({&log_probs})) {
    auto node = std::make_shared<NllLossBackward>();
    node->target = target.detach();
    node->weight = o.class_weights.defined() ? o.class_weights.detach() : Tensor();
    node->shape = log_probs.shape();
    node->smoothing = o.label_smoothing;
    record(y, node, {log_probs});
  }
  if (OpTrace* trace = active_trace()) trace->record("nll_loss", {log_probs, target}, y);
  return y;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  return nll_loss(log_softmax(logits), target, o);
}

}  // namespace fer
