// Balanced class weights and the class-balanced epoch sampler.
#include "data/class_balance.h"

#include "engine/error.h"
#include "engine/random.h"

namespace fer::data {

std::vector<float> balanced_class_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) {
    FER_CHECK(c >= 0, "balanced_class_weights: negative count ", c);
    total += c;
  }
  std::vector<float> w(counts.size(), 0.0f);
  for (size_t c = 0; c < counts.size(); ++c)
    if (counts[c] > 0)
      w[c] = static_cast<float>(static_cast<double>(total) /
                                (static_cast<double>(counts.size()) * static_cast<double>(counts[c])));
  return w;
}

std::vector<float> balanced_class_weights(const Dataset& data) {
  return balanced_class_weights(class_counts(data));
}

std::vector<int64_t> balanced_epoch(const std::vector<int>& labels, int num_classes, uint64_t seed,
                                    uint64_t epoch, int64_t length) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (length < 0) length = n;
  if (n == 0 || length == 0) return {};
  // Draw a class uniformly among the non-empty ones, then a member of it uniformly: the same
  // distribution as weighting every item by 1 / count[label], in O(1) per draw.
  std::vector<std::vector<int64_t>> members(num_classes);
  for (int64_t i = 0; i < n; ++i) {
    FER_CHECK(labels[i] >= 0 && labels[i] < num_classes, "balanced_epoch: label ", labels[i],
              " outside 0..", num_classes - 1);
    members[labels[i]].push_back(i);
  }
  std::vector<int> present;
  for (int c = 0; c < num_classes; ++c)
    if (!members[c].empty()) present.push_back(c);
  Generator gen(splitmix64(splitmix64(seed ^ 0xBA1A4CEDull) ^ epoch));
  std::vector<int64_t> out(length);
  for (int64_t k = 0; k < length; ++k) {
    const std::vector<int64_t>& m = members[present[gen.below(present.size())]];
    out[k] = m[gen.below(m.size())];
  }
  return out;
}

}  // namespace fer::data
