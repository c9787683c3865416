#include "apps/training/feature_cache.h"

#include "apps/training/progress.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/ops.h"

namespace fer {

CacheDtype parse_cache_dtype(const std::string& name) {
  if (name == "float32") return CacheDtype::F32;
  if (name == "float16") return CacheDtype::F16;
  fail("unknown feature cache type '", name, "' (expected float32 or float16)");
}

const char* cache_dtype_name(CacheDtype dtype) {
  return dtype == CacheDtype::F16 ? "float16" : "float32";
}

// ---- binary16 ------------------------------------------------------------------------------
// float32: 1 sign, 8 exponent (bias 127), 23 mantissa bits; binary16: 1, 5 (bias 15), 10.
// Normal halves cover [2^-14, 65504]; below that, subnormals m * 2^-24 (m < 1024).

uint16_t float_to_half(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN, inf
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds past 65504: infinity
  if (a < 0x38800000u) {                        // below 2^-14: a subnormal half (or zero)
    // m = round(|v| * 2^24); the product is exact, nearbyint rounds half to even. m = 1024
    // lands exactly on the smallest normal's bits.
    const float m = std::nearbyint(std::bit_cast<float>(a) * 16777216.0f);
    return sign | static_cast<uint16_t>(m);
  }
  // Rebias the exponent, then drop 13 mantissa bits rounding to nearest even; a carry out of the
  // mantissa correctly bumps the exponent.
  uint32_t h = a - (112u << 23);
  h += 0x0fffu + ((h >> 13) & 1u);
  return sign | static_cast<uint16_t>(h >> 13);
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t out = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)
                                        : sign | ((exponent + 112u) << 23) | (mantissa << 13);
  return std::bit_cast<float>(out);
}

// ---- FeatureTable ----------------------------------------------------------------------------

FeatureTable::FeatureTable(int64_t rows, int64_t dim, CacheDtype dtype)
    : rows_(rows), dim_(dim), dtype_(dtype) {
  FER_CHECK(rows >= 0 && dim > 0, "FeatureTable: bad size ", rows, " x ", dim);
  const size_t n = static_cast<size_t>(rows * dim);
  if (dtype == CacheDtype::F32) f32_.resize(n);
  else f16_.resize(n);
}

void FeatureTable::set_rows(int64_t first, const Tensor& values) {
  const int64_t n = values.size(0);
  FER_CHECK(values.numel() == n * dim_, "FeatureTable: rows of ", values.numel() / std::max<int64_t>(n, 1),
            " features (", values.shape_str(), ") for a table of ", dim_);
  FER_CHECK(first >= 0 && first + n <= rows_, "FeatureTable: rows [", first, ", ", first + n,
            ") outside the table's ", rows_);
  const std::vector<float> v = values.to_vector();
  const size_t at = static_cast<size_t>(first * dim_);
  if (dtype_ == CacheDtype::F32) {
    std::copy(v.begin(), v.end(), f32_.begin() + static_cast<std::ptrdiff_t>(at));
  } else {
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = float_to_half(v[i]);
      f16_[at + i] = h;
      const uint16_t magnitude = h & 0x7fffu;
      lost_ += (magnitude == 0 && v[i] != 0.0f) || (magnitude == 0x7c00u && std::isfinite(v[i]));
    }
  }
}

Tensor FeatureTable::gather(const std::vector<int64_t>& rows, Device device) const {
  const int64_t B = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty({B, dim_});
  float* dst = out.data();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    FER_CHECK(r >= 0 && r < rows_, "FeatureTable: row ", r, " outside the table's ", rows_);
    const size_t src = static_cast<size_t>(r * dim_);
    float* d = dst + i * dim_;
    if (dtype_ == CacheDtype::F32) std::copy_n(f32_.data() + src, dim_, d);
    else for (int64_t j = 0; j < dim_; ++j) d[j] = half_to_float(f16_[src + static_cast<size_t>(j)]);
  }
  return out.to(device);
}

// ---- FeatureCache ----------------------------------------------------------------------------

size_t FeatureCache::bytes() const {
  size_t b = val.bytes();
  for (const FeatureTable& t : train_passes) b += t.bytes();
  return b;
}

int64_t FeatureCache::lost_values() const {
  int64_t n = val.lost_values();
  for (const FeatureTable& t : train_passes) n += t.lost_values();
  return n;
}

std::string FeatureCache::describe() const {
  char buf[200];
  const FeatureTable& t = train_passes.front();
  std::snprintf(buf, sizeof buf, "%zu x %lld x %lld %s train + %lld val: %.1f MiB",
                train_passes.size(), static_cast<long long>(t.rows()), static_cast<long long>(t.dim()),
                cache_dtype_name(t.dtype()), static_cast<long long>(val.rows()),
                static_cast<double>(bytes()) / (1024.0 * 1024.0));
  return buf;
}

namespace {

// Images done over every pass of the extraction, for one progress line with a global ETA.
struct Progress {
  bool on = true;
  int64_t total = 0, done = 0;
  Clock::time_point start = Clock::now();
  void report(const std::string& what) const {
    if (!on) return;
    const double el = seconds_since(start);
    const double rate = done / std::max(el, 1e-9);
    const double eta = rate > 0 ? (total - done) / rate : 0;
    std::fprintf(stderr, "\rextracting features: %s  %lld/%lld images  %.0f img/s  ETA %s   ",
                 what.c_str(), static_cast<long long>(done), static_cast<long long>(total), rate,
                 format_duration(eta).c_str());
  }
};

// One pass over `data` in item order: the loader's epoch `pass` of an unshuffled set, so item i
// is augmented with sample_generator(seed, pass, i).
FeatureTable extract_pass(Classifier& model, const std::shared_ptr<const data::Dataset>& data,
                          const FeatureCacheOptions& o,
                          const data::AugmentOptions& augment, int64_t pass, Progress& progress,
                          const std::string& what) {
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.workers = o.workers;
  lo.seed = o.seed;
  lo.preprocess = o.preprocess;
  lo.augment = augment;
  data::BatchLoader loader(data, lo);
  loader.start_epoch(pass);
  FeatureTable table;
  NoGradGuard no_grad;
  data::Batch batch;
  int64_t row = 0;
  while (loader.next(batch)) {
    if (o.stop && o.stop->load()) return table;
    const Tensor f = model.features->forward(batch.images.to(o.device)).flatten(1);
    if (row == 0) table = FeatureTable(data->size(), f.size(1), o.dtype);
    table.set_rows(row, f);
    row += batch.size();
    progress.done += batch.size();
    progress.report(what);
  }
  return table;
}
}  // namespace

FeatureCache build_feature_cache(Classifier& model, std::shared_ptr<const data::Dataset> train,
                                 std::shared_ptr<const data::Dataset> val,
                                 const FeatureCacheOptions& o) {
  FER_CHECK(train && train->size() > 0, "feature cache: the training set is empty");
  FER_CHECK(o.aug_passes >= 0, "--cache-aug-passes must be >= 0, got ", o.aug_passes);
  FER_CHECK(o.aug_passes == 0 || o.augment.any(),
            "--cache-aug-passes ", o.aug_passes, " with augmentation off: the passes would be identical");
  model.features->eval();
  FeatureCache cache;
  const int64_t passes = std::max<int64_t>(o.aug_passes, 1);
  const bool has_val = val && val->size() > 0;
  Progress progress;
  progress.on = o.progress;
  progress.total = passes * train->size() + (has_val ? val->size() : 0);
  for (int64_t k = 0; k < passes; ++k) {
    const std::string what = o.aug_passes > 0 ? "train pass " + std::to_string(k + 1) + "/" +
                                                    std::to_string(passes) + " (augmented)"
                                              : std::string("train");
    cache.train_passes.push_back(extract_pass(model, train, o, o.aug_passes > 0 ? o.augment
                                                                                 : data::AugmentOptions{},
                                              k, progress, what));
    if (o.stop && o.stop->load()) break;
  }
  if (has_val && !(o.stop && o.stop->load()))
    cache.val = extract_pass(model, val, o, data::AugmentOptions{}, 0, progress, "val");
  cache.interrupted = o.stop && o.stop->load();
  cache.seconds = seconds_since(progress.start);
  if (o.progress) std::fprintf(stderr, "\n");
  return cache;
}

namespace {
// The process's peak resident memory (Linux: VmHWM of /proc/self/status), or "unknown".
std::string peak_memory() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      const long long kb = std::atoll(line.c_str() + 6);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f MiB", kb / 1024.0);
      return buf;
    }
  return "unknown";
}
}  // namespace

void report_feature_cache(const FeatureCache& cache, const FeatureCacheOptions& o) {
  const double train_rows = static_cast<double>(cache.train_passes.size() *
                                                static_cast<size_t>(cache.train_passes.front().rows()));
  std::fprintf(stderr, "feature cache: %s, extracted in %s (%.0f img/s); process peak memory %s\n",
               cache.describe().c_str(), format_duration(cache.seconds).c_str(),
               (train_rows + static_cast<double>(cache.val.rows())) / std::max(cache.seconds, 1e-9),
               peak_memory().c_str());
  if (const int64_t lost = cache.lost_values(); lost > 0)
    std::fprintf(stderr, "warning: %lld cached features were outside float16's range (became 0 or "
                 "infinite): use --cache-dtype float32\n", static_cast<long long>(lost));
  if (o.aug_passes == 0 && o.augment.any())
    std::fprintf(stderr, "note: --cache-aug-passes 0: the head trains on un-augmented features "
                 "(the augmentation flags apply to the cached passes only)\n");
}

Tensor head_forward(Classifier& model, const Tensor& features) {
  return model.classifier->forward(features.flatten(1));
}

Predictions predict_cached(Classifier& model, const FeatureTable& features,
                           const std::vector<int>& labels, Device device, int64_t batch_size) {
  FER_CHECK(static_cast<int64_t>(labels.size()) == features.rows(), "predict_cached: ",
            labels.size(), " labels for ", features.rows(), " cached rows");
  const bool was_training = model.classifier->is_training();
  model.classifier->eval();
  NoGradGuard no_grad;
  Predictions out;
  out.labels = labels;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < features.rows(); begin += batch_size) {
    const int64_t n = std::min(batch_size, features.rows() - begin);
    rows.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = begin + i;
    const std::vector<float> probs = softmax(head_forward(model, features.gather(rows, device))).to_vector();
    out.num_classes = static_cast<int64_t>(probs.size()) / n;
    out.probs.insert(out.probs.end(), probs.begin(), probs.end());
  }
  model.classifier->train(was_training);
  score(out);
  return out;
}

}  // namespace fer
