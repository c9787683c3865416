// Preprocessing shared by training and inference: uint8 face -> float model input.
//
// The steps, in order (each switchable through PreprocessOptions):
//   1. global histogram equalisation (ON by default) - exactly OpenCV's equalizeHist: with hist
//      the 256-bin histogram, cdf its running sum, cdf_min the count of the darkest occurring
//      value and total the pixel count,
//          lut[v] = round((cdf[v] - cdf_min) * 255 / (total - cdf_min))   (float, half to even)
//      and a constant image is left unchanged. The FER2013 image folders are already equalised
//      (see ../shared/fer2013/README.md); equalising every source keeps train and inference alike.
//   2. scaling to [0, 1] (v / 255).
//   3. optional standardisation (v - mean) / std (OFF by default).
// Augmentation (data/augment.h) runs between steps 2 and 3 in the batch loader.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace fer::data {

struct PreprocessOptions {
  bool equalize = true;      // histogram equalisation (on at training AND inference)
  bool standardize = false;  // (x - mean) / std after scaling to [0, 1]
  float mean = 0.0f;
  float std = 1.0f;
  // > 0: the model sees crop x crop pixels of the 48x48 face, as Khaireddin and Chen's VGGNet
  // sees 40x40: a random crop in training (data/loader.h), the centre crop or ten crops at
  // evaluation (apps/training/evaluate.h). 0: the whole face.
  int crop = 0;
  bool operator==(const PreprocessOptions&) const = default;
};

// The equalisation lookup table for n pixels (OpenCV equalizeHist semantics).
std::array<uint8_t, 256> equalize_hist_lut(const uint8_t* pixels, size_t n);
// Equalise in place / into a copy.
void equalize_hist(uint8_t* pixels, size_t n);
std::vector<uint8_t> equalize_hist(const std::vector<uint8_t>& pixels);

// Steps 1-2: uint8 -> float in [0, 1] (equalised if opts.equalize). in and out hold n values.
void to_unit_float(const uint8_t* in, float* out, size_t n, const PreprocessOptions& opts);
// Step 3, in place (no-op unless opts.standardize).
void standardize(float* values, size_t n, const PreprocessOptions& opts);

// All steps, for evaluation and inference: n faces of 48x48 uint8 (n * 2304 bytes, contiguous)
// -> a CPU tensor [n, 1, 48, 48].
Tensor faces_to_tensor(const uint8_t* faces, int64_t n, const PreprocessOptions& opts = {});

}  // namespace fer::data
