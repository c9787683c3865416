// Weight initialisation, seeded through a Generator (defaults to fer::default_generator()).
//   fan_in = in_channels * kernel area (or in_features), fan_out = out_channels * kernel area
//   kaiming_normal:  N(0, gain / sqrt(fan))             gain = sqrt(2) for ReLU (He et al.)
//   kaiming_uniform: U(-b, b), b = gain * sqrt(3 / fan)
//   xavier_uniform:  U(-b, b), b = sqrt(6 / (fan_in + fan_out))  (Glorot; Keras's default)
//   xavier_normal:   N(0, sqrt(2 / (fan_in + fan_out)))
// PyTorch's default for Conv2d/Linear is kaiming_uniform with a = sqrt(5), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the layers here use it too, so a model initialised here
// trains like its PyTorch twin.
#pragma once
#include "engine/random.h"
#include "engine/tensor.h"

namespace fer::init {

struct Fans {
  int64_t in, out;
};
Fans fans(const Shape& weight_shape);  // [out, in] or [out, in, kh, kw]

void kaiming_normal(Tensor& w, float gain = 1.4142135f, Generator& gen = default_generator());
void kaiming_uniform(Tensor& w, float gain = 1.4142135f, Generator& gen = default_generator());
void xavier_uniform(Tensor& w, Generator& gen = default_generator());
void xavier_normal(Tensor& w, Generator& gen = default_generator());
void uniform(Tensor& w, float bound, Generator& gen = default_generator());  // U(-bound, bound)

}  // namespace fer::init
