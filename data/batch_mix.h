// Mixup and CutMix: augmentations of a whole batch that blend each image with a partner from the
// same batch and train on the blend of their labels.
//
//   mixup  (Zhang et al. 2018):  x = lam x_i + (1 - lam) x_partner(i), lam ~ Beta(a, a)
//   cutmix (Yun et al. 2019):    x = x_i with one rectangle pasted from x_partner(i); the rectangle
//                                covers a share (1 - lam) of the image, lam ~ Beta(a, a), and lam
//                                is then set to the share of x_i actually left after clipping the
//                                rectangle to the image.
//
// Either way the loss is lam CE(logits, y_i) + (1 - lam) CE(logits, y_partner(i)) (see
// apps/training/losses.h), which equals the cross-entropy against the mixed one-hot labels.
// With both on, each mixed batch is cutmix or mixup with equal odds (as timm does); `prob` is the
// chance that a batch is mixed at all. One lam and one rectangle per batch, a random permutation
// of the batch as partners.
//
// Reproducibility: the draw for a step depends only on (seed, global step), so a resumed run mixes
// exactly as an uninterrupted one.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace fer::data {

struct MixOptions {
  float mixup_alpha = 0.0f;  // Beta(a, a) for mixup's lam; 0 = off
  float cutmix_alpha = 0.0f; // Beta(a, a) for cutmix's lam; 0 = off
  float prob = 1.0f;         // chance that a batch is mixed
  bool any() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
  void validate() const;     // throws fer::Error on out-of-range settings
};

struct BatchMix {
  enum class Kind { None, Mixup, CutMix } kind = Kind::None;
  float lambda = 1.0f;            // the weight of each image's own label
  std::vector<int64_t> partner;   // partner[i]: the batch row blended into row i
  int64_t top = 0, left = 0, bottom = 0, right = 0;  // cutmix: pasted rows [top, bottom), cols [left, right)
  bool active() const { return kind != Kind::None; }
};

// The mix of one step for a batch of `batch` images of height x width.
BatchMix draw_batch_mix(const MixOptions& opts, int64_t batch, int64_t height, int64_t width,
                        uint64_t seed, uint64_t step);

// Applies the mix to a host batch [B, C, H, W] and returns the mixed batch (a new tensor).
Tensor apply_batch_mix(const BatchMix& mix, const Tensor& images);

// The partners' labels: labels[partner[i]].
Tensor partner_labels(const BatchMix& mix, const Tensor& labels);

// A Beta(a, a) sample from two Gamma(a) samples (Marsaglia and Tsang), exposed for the tests.
float sample_symmetric_beta(float alpha, Generator& gen);

}  // namespace fer::data
