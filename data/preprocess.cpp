// Histogram equalisation (OpenCV equalizeHist), scaling and standardisation.
#include "data/preprocess.h"

#include <cmath>

#include "data/image.h"
#include "engine/error.h"

namespace fer::data {

std::array<uint8_t, 256> equalize_hist_lut(const uint8_t* pixels, size_t n) {
  std::array<uint8_t, 256> lut{};
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<uint8_t>(v);  // identity by default
  if (n == 0) return lut;
  std::array<size_t, 256> hist{};
  for (size_t i = 0; i < n; ++i) ++hist[pixels[i]];

  int first = 0;
  while (hist[first] == 0) ++first;
  const size_t cdf_min = hist[first];
  if (cdf_min == n) return lut;  // constant image: unchanged (OpenCV sets it to its own value)

  // As OpenCV: float scale, cvRound (round half to even) of an int-times-float product.
  const float scale = 255.0f / static_cast<float>(n - cdf_min);
  size_t cdf = cdf_min;
  for (int v = 0; v < first; ++v) lut[v] = 0;  // values that do not occur; mapped to 0 too
  lut[first] = 0;
  for (int v = first + 1; v < 256; ++v) {
    cdf += hist[v];
    const long r = std::lrint(static_cast<float>(cdf - cdf_min) * scale);
    lut[v] = static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
  }
  return lut;
}

void equalize_hist(uint8_t* pixels, size_t n) {
  const std::array<uint8_t, 256> lut = equalize_hist_lut(pixels, n);
  for (size_t i = 0; i < n; ++i) pixels[i] = lut[pixels[i]];
}

std::vector<uint8_t> equalize_hist(const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out = pixels;
  equalize_hist(out.data(), out.size());
  return out;
}

void to_unit_float(const uint8_t* in, float* out, size_t n, const PreprocessOptions& opts) {
  std::array<float, 256> table;
  if (opts.equalize) {
    const std::array<uint8_t, 256> lut = equalize_hist_lut(in, n);
    for (int v = 0; v < 256; ++v) table[v] = lut[v] / 255.0f;
  } else {
    for (int v = 0; v < 256; ++v) table[v] = v / 255.0f;
  }
  for (size_t i = 0; i < n; ++i) out[i] = table[in[i]];
}

void standardize(float* values, size_t n, const PreprocessOptions& opts) {
  if (!opts.standardize) return;
  FER_CHECK(opts.std > 0 && std::isfinite(opts.std) && std::isfinite(opts.mean),
            "preprocess: standardisation needs a finite mean and a positive std, got mean ",
            opts.mean, " std ", opts.std);
  const float inv = 1.0f / opts.std;
  for (size_t i = 0; i < n; ++i) values[i] = (values[i] - opts.mean) * inv;
}

Tensor faces_to_tensor(const uint8_t* faces, int64_t n, const PreprocessOptions& opts) {
  FER_CHECK(n >= 0, "faces_to_tensor: negative count ", n);
  Tensor t = Tensor::empty({n, 1, kFaceSize, kFaceSize});
  float* dst = t.data();
  for (int64_t i = 0; i < n; ++i) {
    to_unit_float(faces + i * kFacePixels, dst + i * kFacePixels, kFacePixels, opts);
    standardize(dst + i * kFacePixels, kFacePixels, opts);
  }
  return t;
}

}  // namespace fer::data
