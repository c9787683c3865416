// Mixup and CutMix of a batch; see batch_mix.h.
#include "data/batch_mix.h"

#include <algorithm>
#include <cmath>

#include "data/augment.h"
#include "engine/error.h"

namespace fer::data {

namespace {
// Gamma(a, 1) by Marsaglia and Tsang (2000): for a >= 1, with d = a - 1/3 and c = 1/sqrt(9d),
// d v with v = (1 + c x)^3, x standard normal, is accepted when log u < x^2/2 + d (1 - v + log v).
// For a < 1: Gamma(a) = Gamma(a + 1) u^(1/a).
float sample_gamma(float a, Generator& gen) {
  if (a < 1.0f) {
    const float u = 1.0f - gen.uniform();  // (0, 1]
    return sample_gamma(a + 1.0f, gen) * std::pow(u, 1.0f / a);
  }
  const float d = a - 1.0f / 3.0f, c = 1.0f / std::sqrt(9.0f * d);
  for (;;) {
    const float x = gen.normal();
    float v = 1.0f + c * x;
    if (v <= 0.0f) continue;
    v = v * v * v;
    const float u = 1.0f - gen.uniform();
    if (std::log(u) < 0.5f * x * x + d * (1.0f - v + std::log(v))) return d * v;
  }
}
}  // namespace

void MixOptions::validate() const {
  FER_CHECK(mixup_alpha >= 0 && std::isfinite(mixup_alpha), "--mixup: alpha must be >= 0, got ", mixup_alpha);
  FER_CHECK(cutmix_alpha >= 0 && std::isfinite(cutmix_alpha), "--cutmix: alpha must be >= 0, got ", cutmix_alpha);
  FER_CHECK(prob >= 0 && prob <= 1, "--mix-prob: must be in [0, 1], got ", prob);
}

float sample_symmetric_beta(float alpha, Generator& gen) {
  FER_CHECK(alpha > 0, "Beta(a, a): a must be positive, got ", alpha);
  const float x = sample_gamma(alpha, gen), y = sample_gamma(alpha, gen);
  return x + y > 0 ? x / (x + y) : 0.5f;
}

BatchMix draw_batch_mix(const MixOptions& opts, int64_t batch, int64_t height, int64_t width,
                        uint64_t seed, uint64_t step) {
  BatchMix mix;
  if (!opts.any() || batch < 2) return mix;
  // A stream of its own (epoch slot ~0 keeps it apart from the per-sample augmentation streams).
  Generator gen = sample_generator(seed, ~0ull, step);
  if (gen.uniform() >= opts.prob) return mix;
  const bool cutmix = opts.cutmix_alpha > 0 && (opts.mixup_alpha <= 0 || gen.uniform() < 0.5f);
  mix.kind = cutmix ? BatchMix::Kind::CutMix : BatchMix::Kind::Mixup;
  mix.lambda = sample_symmetric_beta(cutmix ? opts.cutmix_alpha : opts.mixup_alpha, gen);

  mix.partner.resize(static_cast<size_t>(batch));  // a Fisher-Yates permutation
  for (int64_t i = 0; i < batch; ++i) mix.partner[static_cast<size_t>(i)] = i;
  for (int64_t i = batch - 1; i > 0; --i)
    std::swap(mix.partner[static_cast<size_t>(i)],
              mix.partner[static_cast<size_t>(gen.below(static_cast<uint64_t>(i + 1)))]);

  if (cutmix) {
    // A rectangle of the image's aspect covering (1 - lam) of it, centred anywhere, clipped.
    const float side = std::sqrt(1.0f - mix.lambda);
    const int64_t cut_h = static_cast<int64_t>(height * side), cut_w = static_cast<int64_t>(width * side);
    const int64_t cy = static_cast<int64_t>(gen.below(static_cast<uint64_t>(height)));
    const int64_t cx = static_cast<int64_t>(gen.below(static_cast<uint64_t>(width)));
    mix.top = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
    mix.bottom = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
    mix.left = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
    mix.right = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
    const double pasted = static_cast<double>((mix.bottom - mix.top) * (mix.right - mix.left));
    mix.lambda = static_cast<float>(1.0 - pasted / static_cast<double>(height * width));
  }
  return mix;
}

Tensor apply_batch_mix(const BatchMix& mix, const Tensor& images) {
  if (!mix.active()) return images;
  FER_CHECK(images.dim() == 4 && images.device() == Device::CPU,
            "batch mix: expected a host batch [B, C, H, W], got ", images.shape_str());
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  FER_CHECK(static_cast<int64_t>(mix.partner.size()) == B, "batch mix: drawn for ",
            mix.partner.size(), " images, applied to a batch of ", B);
  Tensor out = images.clone();
  const float* x = images.data();
  float* y = out.data();
  const int64_t image = C * H * W;
  for (int64_t i = 0; i < B; ++i) {
    const float* own = x + i * image;
    const float* other = x + mix.partner[static_cast<size_t>(i)] * image;
    float* dst = y + i * image;
    if (mix.kind == BatchMix::Kind::Mixup) {
      for (int64_t k = 0; k < image; ++k) dst[k] = mix.lambda * own[k] + (1.0f - mix.lambda) * other[k];
      continue;
    }
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = mix.top; r < mix.bottom; ++r) {
        const int64_t row = (c * H + r) * W;
        std::copy(other + row + mix.left, other + row + mix.right, dst + row + mix.left);
      }
  }
  return out;
}

Tensor partner_labels(const BatchMix& mix, const Tensor& labels) {
  const std::vector<float> y = labels.to_vector();
  FER_CHECK(mix.partner.size() == y.size(), "batch mix: drawn for ", mix.partner.size(),
            " images, applied to ", y.size(), " labels");
  std::vector<float> out(y.size());
  for (size_t i = 0; i < y.size(); ++i) out[i] = y[static_cast<size_t>(mix.partner[i])];
  return Tensor::from_vector(labels.shape(), out);
}

}  // namespace fer::data
