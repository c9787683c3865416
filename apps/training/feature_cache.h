// Cached features: train a classifier head on the outputs of a frozen backbone, computed once.
//
// When every block of a Classifier's `features` is frozen (apps/training/finetune.h), features run
// in eval mode and never change, so features(image) is a fixed vector per image. Phase 1 of the
// transfer-learning recipe then spends nearly all of its time recomputing the same vectors every
// epoch. The cache computes them once, keeps them in memory, and trains the head on them:
//
//   clean     aug_passes = 0: one pass over the training images without augmentation;
//             every epoch reuses it.
//   augmented aug_passes = K > 0: K passes, pass k holds one augmented copy of every training
//             image (augmentation drawn from sample_generator(seed, k, item), as the batch loader
//             draws epoch k of an unshuffled set); epoch e trains on pass e mod K.
//   val       the validation images once, without augmentation (as predict_dataset sees them).
//
// Images go through exactly the batch loader's preprocessing (data/loader.h: equalise, scale,
// augment, standardise) and features->forward in eval mode under NoGradGuard. The trainer then
// draws the same epoch orders and batches as without the cache (BatchLoader::epoch_order), so
// without augmentation a cached run takes the same steps as an uncached one; tests check that one
// step gives the same head update both ways.
//
// Storage: each row is features(x) flattened (what Classifier::forward hands its head), float32
// or float16 (IEEE binary16, round to nearest even: half the memory, ~3 significant digits; the
// head trains on the rounded values; features outside its range are counted, and the trainer warns
// when any were lost, as happens with randomly initialised deep backbones whose features shrink
// to ~1e-9). FER2013's 28,709 training faces x 2,304 features (the
// flattened 256x3x3 output of fer_vgg_small) are 265 MB in float32, 132 MB in float16, per pass.
//
// Extraction is the long part: it prints a progress line with rate and ETA over all passes, and
// stops between batches when asked (FeatureCacheOptions::stop; the trainer's Ctrl-C).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/training/evaluate.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "models/registry.h"

namespace fer {

enum class CacheDtype { F32, F16 };
CacheDtype parse_cache_dtype(const std::string& name);  // "float32" | "float16"
const char* cache_dtype_name(CacheDtype dtype);

// IEEE binary16 conversions (round to nearest even; overflow to infinity; NaN kept).
uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);

// N rows of `dim` features, stored as float32 or float16.
class FeatureTable {
 public:
  FeatureTable() = default;
  FeatureTable(int64_t rows, int64_t dim, CacheDtype dtype);
  int64_t rows() const { return rows_; }
  int64_t dim() const { return dim_; }
  CacheDtype dtype() const { return dtype_; }
  size_t bytes() const { return f32_.size() * 4 + f16_.size() * 2; }
  // float16: values stored so far that binary16 cannot hold: non-zero values that became 0
  // (below 2^-25) and finite values that became infinite (beyond 65504).
  int64_t lost_values() const { return lost_; }

  // Rows [first, first + n) from a [n, dim...] float tensor on any device.
  void set_rows(int64_t first, const Tensor& values);
  // The given rows as a float32 [B, dim] tensor on `device` (throws naming a bad row).
  Tensor gather(const std::vector<int64_t>& rows, Device device = Device::CPU) const;

 private:
  int64_t rows_ = 0, dim_ = 0, lost_ = 0;
  CacheDtype dtype_ = CacheDtype::F32;
  std::vector<float> f32_;
  std::vector<uint16_t> f16_;
};

struct FeatureCacheOptions {
  CacheDtype dtype = CacheDtype::F32;
  int64_t aug_passes = 0;      // K (0: one clean pass)
  data::PreprocessOptions preprocess;
  data::AugmentOptions augment;  // used for the K passes
  uint64_t seed = 1;
  int64_t batch_size = 128;    // extraction batch
  int workers = 2;             // image-preparing threads
  Device device = Device::CPU;
  bool progress = true;
  const std::atomic<bool>* stop = nullptr;  // when set and true, extraction ends early (Ctrl-C)
};

struct FeatureCache {
  std::vector<FeatureTable> train_passes;  // K tables, or 1 clean one
  FeatureTable val;                        // rows = val size (0 when there is no val set)
  double seconds = 0;                      // wall time of the extraction
  bool interrupted = false;                // opts.stop was raised: the cache is incomplete
  const FeatureTable& train_for_epoch(int64_t epoch) const {
    return train_passes[static_cast<size_t>(epoch) % train_passes.size()];
  }
  size_t bytes() const;
  int64_t lost_values() const;   // over every table (float16 only)
  std::string describe() const;  // "3 x 28709 x 2304 float16 train + 3589 val: 401.2 MiB"
};

// Extracts the cache with `model`'s features (put in eval mode; the caller restores its mode).
// `val` may be null or empty.
FeatureCache build_feature_cache(Classifier& model, std::shared_ptr<const data::Dataset> train,
                                 std::shared_ptr<const data::Dataset> val,
                                 const FeatureCacheOptions& opts);

// Says on stderr what the cache holds, how long extraction took and the process's peak memory;
// warns when float16 lost values, and notes when `opts` asked for augmentation that no pass used.
void report_feature_cache(const FeatureCache& cache, const FeatureCacheOptions& opts);

// What Classifier::forward does after `features`: the head on the flattened features.
Tensor head_forward(Classifier& model, const Tensor& features);

// predict_dataset on cached features: the head in eval mode (mode restored afterwards).
Predictions predict_cached(Classifier& model, const FeatureTable& features,
                           const std::vector<int>& labels, Device device, int64_t batch_size = 512);

}  // namespace fer
