// Synthetic FER-like faces for tests and demos when ../shared/fer2013 is absent.
//
// make_synthetic_faces draws 48x48 grayscale cartoon faces - head oval, eyes, eyebrows, mouth -
// whose expression depends on the class (FER ids: angry = brows slanted down inwards + tight
// mouth, disgust = lopsided mouth + nose wrinkle, fear = raised brows + wide eyes + wide open
// mouth, happy = smile, sad = frown + brows raised inwards, surprise = raised brows + round open
// mouth, neutral = straight mouth), with random position, size, brightness and pixel noise, so a
// small CNN can learn the classes but not from a single pixel. Items are in class order; the
// result is a Dataset with the 7 FER class names, reproducible from `seed`.
#pragma once
#include <cstdint>

#include "data/dataset.h"

namespace fer::data {

struct SyntheticOptions {
  float noise_std = 10.0f;  // Gaussian pixel noise, in gray levels
  float jitter_px = 2.0f;   // random shift of the face, in pixels (each axis)
};

Dataset make_synthetic_faces(int64_t per_class, uint64_t seed, const SyntheticOptions& opts = {});

}  // namespace fer::data
