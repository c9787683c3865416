// Averages of a model's weights over training, kept beside the weights being trained:
//
//   EMA (exponential moving average, as timm's ModelEmaV2 and Keras' use_ema): after every
//       optimizer step, avg = d avg + (1 - d) w for every parameter and batchnorm statistic, with
//       the decay warmed up as d_t = min(d, (1 + t) / (10 + t)) so the average does not drag the
//       random initial weights along for thousands of steps.
//   SWA (stochastic weight averaging, Izmailov et al. 2018): the equal mean of the weights at the
//       end of each of the last epochs; batchnorm's statistics of that mean must be recomputed
//       (refresh_batchnorm_statistics), as the averaged running statistics do not belong to the
//       averaged weights.
//
// An average is evaluated by swapping it into the model (SwappedWeights) and checkpointed as an
// ordinary model; its state also travels in OUT/last.safetensors under a prefix, so --resume goes
// on with the same average.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "engine/tensor.h"
#include "layers/module.h"

namespace fer {

class WeightAverage {
 public:
  WeightAverage() = default;
  // Starts from the model's current weights (count 0: the first add replaces them).
  explicit WeightAverage(const Module& model);
  bool defined() const { return !avg_.empty(); }
  int64_t count() const { return count_; }

  // EMA step number `t` (0-based, the global step): avg = d_t avg + (1 - d_t) w.
  void update_ema(const Module& model, float decay, int64_t t);
  // SWA: one more snapshot in the equal mean.
  void add_snapshot(const Module& model);

  const StateDict& state() const { return avg_; }
  // For checkpoints: the average's tensors under `prefix` (plus its count in metadata).
  StateDict to_tensors(const std::string& prefix) const;
  // Restores from a checkpoint's tensors; false when none carry the prefix (an older run).
  bool from_tensors(const StateDict& tensors, const std::string& prefix, int64_t count);

 private:
  StateDict avg_;
  int64_t count_ = 0;
};

// While it lives, the model computes with `weights` (an average's state); its own are put back on
// destruction.
class SwappedWeights {
 public:
  SwappedWeights(Module& model, const StateDict& weights);
  ~SwappedWeights();
  SwappedWeights(const SwappedWeights&) = delete;
  SwappedWeights& operator=(const SwappedWeights&) = delete;

 private:
  Module& model_;
  StateDict saved_;
};

// Recomputes every batchnorm layer's running mean and variance as the plain average over the
// batches `next_batch` yields (PyTorch's torch.optim.swa_utils.update_bn): the model runs in
// training mode without gradients; its mode is restored afterwards. `next_batch` returns an
// undefined tensor when done. Returns the number of batches seen.
int64_t refresh_batchnorm_statistics(Module& model, const std::function<Tensor()>& next_batch);

}  // namespace fer
