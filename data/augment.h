// Training-time augmentation of one 48x48 float image (values in [0, 1], row-major, row 0 at the
// top), in place. Every step is switchable and all are off by default (then the image is left
// exactly unchanged and no random numbers are drawn).
//
// Order: random-resized crop -> random crop with padding -> horizontal flip -> one affine warp
// (rotation, shift, zoom, shear together, bilinear sampling) -> brightness -> contrast -> random
// erasing.
//
// Reproducibility: randomness comes from a Generator made by sample_generator(seed, epoch, index),
// so a sample's augmentation depends only on those three numbers, never on which thread or in
// which order it is prepared.
#pragma once
#include <cstdint>

#include "engine/random.h"

namespace fer::data {

// How pixels outside the image are filled: zeros, mirror without repeating the edge
// (dcb|abcd|cba, numpy/torch "reflect"), or the nearest edge pixel.
enum class Border { Zeros, Reflect, Edge };

struct AugmentOptions {
  // Random-resized crop (torchvision RandomResizedCrop): a box of area uniform in
  // [rrc_scale_min, rrc_scale_max] x 48x48 and log-uniform aspect ratio in [3/4, 4/3], placed at
  // random (centred when larger than the face; its outside then reflects), resampled bilinearly
  // to 48x48. Off when rrc_scale_min is 0.
  float rrc_scale_min = 0.0f, rrc_scale_max = 1.0f;

  // Random crop: pad by crop_padding on every side, then crop 48x48 at a random offset.
  bool crop = false;
  int crop_padding = 4;
  Border crop_border = Border::Zeros;

  bool hflip = false;  // mirror left-right with probability hflip_p
  float hflip_p = 0.5f;

  // One affine warp about the image centre; each range is symmetric, 0 = off.
  float rotation_deg = 0.0f;  // angle uniform in [-r, r]
  float shift_frac = 0.0f;    // x and y shift, each uniform in [-s, s] * 48 pixels
  float zoom_frac = 0.0f;     // scale uniform in [1 - z, 1 + z] (> 1 zooms in)
  float shear_deg = 0.0f;     // x-shear angle uniform in [-s, s]
  Border warp_border = Border::Reflect;

  float brightness = 0.0f;  // add uniform in [-b, b]; result clamped to [0, 1]
  float contrast = 0.0f;    // (x - mean) * uniform in [1 - c, 1 + c] + mean; clamped to [0, 1]

  // Random erasing (torchvision RandomErasing): with probability erase_p, a rectangle of area
  // uniform in [erase_area_min, erase_area_max] * 48*48 and log-uniform aspect ratio in
  // [erase_ratio_min, erase_ratio_max] is set to erase_value (up to 10 tries to fit).
  bool erase = false;
  float erase_p = 0.5f;
  float erase_area_min = 0.02f, erase_area_max = 0.33f;
  float erase_ratio_min = 0.3f, erase_ratio_max = 3.3f;
  float erase_value = 0.0f;

  bool any() const;
  void validate() const;  // throws fer::Error on out-of-range settings
};

// The generator for one sample of one epoch (hash of seed, epoch, index).
Generator sample_generator(uint64_t seed, uint64_t epoch, uint64_t index);

// Augments a 48x48 image in place.
void augment(float* image, const AugmentOptions& opts, Generator& gen);

// The individual steps, exposed for tests and tools (48x48, in place unless noted).
void hflip(float* image);
void random_crop(float* image, int padding, Border border, Generator& gen);
void random_resized_crop(float* image, float scale_min, float scale_max, Generator& gen);
// dst(x, y) = bilinear sample of src at A * (x, y, 1); A is the 2x3 map from output to source
// pixel coordinates. src and dst must not overlap.
void warp_affine(const float* src, float* dst, const float A[6], Border border);

}  // namespace fer::data
