// Augmentation steps on 48x48 float images.
#include "data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "data/image.h"
#include "engine/error.h"

namespace fer::data {

namespace {

constexpr int N = kFaceSize;
constexpr float kPi = 3.14159265358979f;
using Image = std::array<float, kFacePixels>;

// Maps an integer coordinate to one inside [0, n), or -1 for "zero".
inline int border_index(int i, int n, Border border) {
  if (i >= 0 && i < n) return i;
  switch (border) {
    case Border::Zeros: return -1;
    case Border::Edge: return i < 0 ? 0 : n - 1;
    case Border::Reflect: {
      if (n == 1) return 0;
      const int period = 2 * (n - 1);
      i %= period;
      if (i < 0) i += period;
      return i < n ? i : period - i;
    }
  }
  return -1;
}

inline float fetch(const float* img, int x, int y, Border border) {
  const int xi = border_index(x, N, border), yi = border_index(y, N, border);
  return (xi < 0 || yi < 0) ? 0.0f : img[yi * N + xi];
}

bool warp_enabled(const AugmentOptions& o) {
  return o.rotation_deg > 0 || o.shift_frac > 0 || o.zoom_frac > 0 || o.shear_deg > 0;
}

void random_warp(float* image, const AugmentOptions& o, Generator& gen) {
  const float angle = o.rotation_deg > 0 ? gen.uniform(-o.rotation_deg, o.rotation_deg) * kPi / 180 : 0;
  const float tx = o.shift_frac > 0 ? gen.uniform(-o.shift_frac, o.shift_frac) * N : 0;
  const float ty = o.shift_frac > 0 ? gen.uniform(-o.shift_frac, o.shift_frac) * N : 0;
  const float zoom = o.zoom_frac > 0 ? gen.uniform(1 - o.zoom_frac, 1 + o.zoom_frac) : 1;
  const float shear = o.shear_deg > 0 ? gen.uniform(-o.shear_deg, o.shear_deg) * kPi / 180 : 0;

  // Forward map about the centre c: out = c + t + R * Shear * zoom * (src - c).
  const float c = std::cos(angle), s = std::sin(angle), k = std::tan(shear);
  const float m00 = zoom * c, m01 = zoom * (c * k - s);
  const float m10 = zoom * s, m11 = zoom * (s * k + c);
  // Inverse: src = c + M^-1 (out - c - t).
  const float det = m00 * m11 - m01 * m10;
  const float i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det;
  const float centre = (N - 1) / 2.0f;
  const float ox = centre + tx, oy = centre + ty;
  const float A[6] = {i00, i01, centre - i00 * ox - i01 * oy,
                      i10, i11, centre - i10 * ox - i11 * oy};
  Image src;
  std::copy(image, image + kFacePixels, src.begin());
  warp_affine(src.data(), image, A, o.warp_border);
}

void random_erase(float* image, const AugmentOptions& o, Generator& gen) {
  if (gen.uniform() >= o.erase_p) return;
  const float area = static_cast<float>(kFacePixels);
  const float log_lo = std::log(o.erase_ratio_min), log_hi = std::log(o.erase_ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const float target = area * gen.uniform(o.erase_area_min, o.erase_area_max);
    const float ratio = std::exp(gen.uniform(log_lo, log_hi));
    const int h = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int w = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (!(h < N && w < N) || h <= 0 || w <= 0) continue;
    const int y0 = static_cast<int>(gen.below(N - h + 1));
    const int x0 = static_cast<int>(gen.below(N - w + 1));
    for (int y = y0; y < y0 + h; ++y)
      std::fill(image + y * N + x0, image + y * N + x0 + w, o.erase_value);
    return;
  }
}

}  // namespace

bool AugmentOptions::any() const {
  return rrc_scale_min > 0 || crop || hflip || warp_enabled(*this) || brightness > 0 || contrast > 0 || erase;
}

void AugmentOptions::validate() const {
  FER_CHECK(crop_padding >= 0 && crop_padding <= N, "augment: crop_padding ", crop_padding,
            " outside 0..", N);
  FER_CHECK(rrc_scale_min == 0 || (0 < rrc_scale_min && rrc_scale_min <= rrc_scale_max && rrc_scale_max <= 4),
            "augment: random-resized-crop scale range [", rrc_scale_min, ", ", rrc_scale_max,
            "] invalid (0 < min <= max <= 4)");
  FER_CHECK(hflip_p >= 0 && hflip_p <= 1, "augment: hflip_p ", hflip_p, " outside [0, 1]");
  FER_CHECK(rotation_deg >= 0 && rotation_deg <= 180, "augment: rotation_deg ", rotation_deg,
            " outside [0, 180]");
  FER_CHECK(shift_frac >= 0 && shift_frac <= 1, "augment: shift_frac ", shift_frac, " outside [0, 1]");
  FER_CHECK(zoom_frac >= 0 && zoom_frac < 1, "augment: zoom_frac ", zoom_frac, " outside [0, 1)");
  FER_CHECK(shear_deg >= 0 && shear_deg < 80, "augment: shear_deg ", shear_deg, " outside [0, 80)");
  FER_CHECK(brightness >= 0 && contrast >= 0 && contrast <= 1, "augment: brightness ", brightness,
            " / contrast ", contrast, " out of range (brightness >= 0, contrast in [0, 1])");
  FER_CHECK(erase_p >= 0 && erase_p <= 1, "augment: erase_p ", erase_p, " outside [0, 1]");
  FER_CHECK(0 < erase_area_min && erase_area_min <= erase_area_max && erase_area_max <= 1,
            "augment: erase area range [", erase_area_min, ", ", erase_area_max, "] invalid");
  FER_CHECK(0 < erase_ratio_min && erase_ratio_min <= erase_ratio_max,
            "augment: erase ratio range [", erase_ratio_min, ", ", erase_ratio_max, "] invalid");
}

Generator sample_generator(uint64_t seed, uint64_t epoch, uint64_t index) {
  return Generator(splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ (index * 0x9E3779B97F4A7C15ull)));
}

void hflip(float* image) {
  for (int y = 0; y < N; ++y) std::reverse(image + y * N, image + (y + 1) * N);
}

void random_crop(float* image, int padding, Border border, Generator& gen) {
  const int ox = static_cast<int>(gen.below(2 * padding + 1)) - padding;
  const int oy = static_cast<int>(gen.below(2 * padding + 1)) - padding;
  if (ox == 0 && oy == 0) return;
  Image src;
  std::copy(image, image + kFacePixels, src.begin());
  for (int y = 0; y < N; ++y)
    for (int x = 0; x < N; ++x) image[y * N + x] = fetch(src.data(), x + ox, y + oy, border);
}

void random_resized_crop(float* image, float scale_min, float scale_max, Generator& gen) {
  const float area = gen.uniform(scale_min, scale_max) * N * N;
  const float ratio = std::exp(gen.uniform(std::log(3.0f / 4.0f), std::log(4.0f / 3.0f)));  // w / h
  const float w = std::sqrt(area * ratio), h = std::sqrt(area / ratio);
  // The box's top-left corner: anywhere it fits, centred along a side it does not.
  const float x0 = w <= N ? gen.uniform(0.0f, N - w) : (N - w) / 2;
  const float y0 = h <= N ? gen.uniform(0.0f, N - h) : (N - h) / 2;
  // Output pixel (x, y) samples the box at its pixel-centre-aligned position.
  const float sx = w / N, sy = h / N;
  const float A[6] = {sx, 0, x0 + 0.5f * sx - 0.5f, 0, sy, y0 + 0.5f * sy - 0.5f};
  Image src;
  std::copy(image, image + kFacePixels, src.begin());
  warp_affine(src.data(), image, A, Border::Reflect);
}

void warp_affine(const float* src, float* dst, const float A[6], Border border) {
  for (int y = 0; y < N; ++y) {
    for (int x = 0; x < N; ++x) {
      const float sx = A[0] * x + A[1] * y + A[2];
      const float sy = A[3] * x + A[4] * y + A[5];
      if (!std::isfinite(sx) || !std::isfinite(sy) || std::fabs(sx) > 1e6f || std::fabs(sy) > 1e6f) {
        dst[y * N + x] = 0;
        continue;
      }
      const float fx0 = std::floor(sx), fy0 = std::floor(sy);
      const int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
      const float fx = sx - fx0, fy = sy - fy0;
      const float top = fetch(src, x0, y0, border) * (1 - fx) + fetch(src, x0 + 1, y0, border) * fx;
      const float bot = fetch(src, x0, y0 + 1, border) * (1 - fx) + fetch(src, x0 + 1, y0 + 1, border) * fx;
      dst[y * N + x] = top * (1 - fy) + bot * fy;
    }
  }
}

void augment(float* image, const AugmentOptions& o, Generator& gen) {
  if (o.rrc_scale_min > 0) random_resized_crop(image, o.rrc_scale_min, o.rrc_scale_max, gen);
  if (o.crop && o.crop_padding > 0) random_crop(image, o.crop_padding, o.crop_border, gen);
  if (o.hflip && gen.uniform() < o.hflip_p) hflip(image);
  if (warp_enabled(o)) random_warp(image, o, gen);
  if (o.brightness > 0) {
    const float delta = gen.uniform(-o.brightness, o.brightness);
    for (int i = 0; i < kFacePixels; ++i) image[i] = std::clamp(image[i] + delta, 0.0f, 1.0f);
  }
  if (o.contrast > 0) {
    const float factor = gen.uniform(1 - o.contrast, 1 + o.contrast);
    float mean = 0;
    for (int i = 0; i < kFacePixels; ++i) mean += image[i];
    mean /= kFacePixels;
    for (int i = 0; i < kFacePixels; ++i)
      image[i] = std::clamp((image[i] - mean) * factor + mean, 0.0f, 1.0f);
  }
  if (o.erase) random_erase(image, o, gen);
}

}  // namespace fer::data
