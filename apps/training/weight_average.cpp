// EMA and SWA weight averages; see weight_average.h.
#include "apps/training/weight_average.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/error.h"
#include "layers/layers.h"

namespace fer {

namespace {
bool is_counter(const std::string& name) {  // batchnorm's step counter: copied, never averaged
  const std::string tail = "num_batches_tracked";
  return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

// avg = a w + b avg for every tensor (in place, on the tensors' device); counters are copied.
void blend(StateDict& avg, const Module& model, float a, float b) {
  for (const auto& [name, w] : model.state_dict()) {
    auto it = avg.find(name);
    FER_CHECK(it != avg.end() && it->second.numel() == w.numel(), "weight average: the model's ",
              name, " ", w.shape_str(), " is not in the average");
    if (is_counter(name)) {
      it->second.copy_(w);
      continue;
    }
    backend(w.device()).axpby(a, w.data(), b, it->second.data(), w.numel());
  }
}

void for_each_batchnorm(Module& m, const std::function<void(BatchNorm&)>& fn) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) fn(*bn);
  for (const auto& [name, child] : m.named_children()) for_each_batchnorm(*child, fn);
}
}  // namespace

WeightAverage::WeightAverage(const Module& model) {
  for (const auto& [name, w] : model.state_dict()) avg_[name] = w.clone();
}

void WeightAverage::update_ema(const Module& model, float decay, int64_t t) {
  FER_CHECK(decay >= 0 && decay < 1, "--ema: decay must be in [0, 1), got ", decay);
  const float d = std::min(decay, static_cast<float>(1 + t) / static_cast<float>(10 + t));
  blend(avg_, model, 1.0f - d, d);
  ++count_;
}

void WeightAverage::add_snapshot(const Module& model) {
  // Running mean: avg_{n+1} = avg_n + (w - avg_n) / (n + 1) = w/(n+1) + avg_n n/(n+1).
  const float n = static_cast<float>(count_);
  blend(avg_, model, 1.0f / (n + 1.0f), n / (n + 1.0f));
  ++count_;
}

StateDict WeightAverage::to_tensors(const std::string& prefix) const {
  StateDict out;
  for (const auto& [name, t] : avg_) out[prefix + name] = t;
  return out;
}

bool WeightAverage::from_tensors(const StateDict& tensors, const std::string& prefix, int64_t count) {
  bool found = false;
  for (auto& [name, t] : avg_) {
    auto it = tensors.find(prefix + name);
    if (it == tensors.end()) continue;
    FER_CHECK(it->second.numel() == t.numel(), "weight average: ", prefix, name, " has ",
              it->second.shape_str(), ", the model ", t.shape_str());
    t.copy_(it->second);
    found = true;
  }
  if (found) count_ = count;
  return found;
}

SwappedWeights::SwappedWeights(Module& model, const StateDict& weights) : model_(model) {
  for (const auto& [name, w] : model.state_dict()) saved_[name] = w.clone();
  model_.load_state_dict(weights);
}

SwappedWeights::~SwappedWeights() { model_.load_state_dict(saved_); }

int64_t refresh_batchnorm_statistics(Module& model, const std::function<Tensor()>& next_batch) {
  // momentum 1/k at the k-th batch makes running = the plain mean of the k batch statistics
  // (PyTorch's momentum=None, a cumulative average).
  std::vector<std::pair<BatchNorm*, float>> layers;
  for_each_batchnorm(model, [&](BatchNorm& bn) {
    layers.emplace_back(&bn, bn.momentum);
    bn.running_mean.fill_(0.0f);
    bn.running_var.fill_(1.0f);
  });
  if (layers.empty()) return 0;
  const bool was_training = model.is_training();
  model.train();
  NoGradGuard no_grad;
  int64_t k = 0;
  for (Tensor x = next_batch(); x.defined(); x = next_batch()) {
    ++k;
    for (auto& [bn, m] : layers) bn->momentum = 1.0f / static_cast<float>(k);
    model.forward(x);
  }
  for (auto& [bn, m] : layers) bn->momentum = m;
  model.train(was_training);
  return k;
}

}  // namespace fer
