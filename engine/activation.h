// The activations the backends compute, in a header of its own (no functions, nothing to link):
// the kernel files compiled with a vector set's flags include it without the rest of backend.h.
#pragma once

namespace fer {

// The elementwise activations (activation() in engine/ops/elementwise.cpp has their math).
enum class Activation { ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh };

// The activation a batch normalisation (batch_norm_relu, batch_norm_relu6) or a convolution
// (Conv2dOptions::activation) may carry in the same pass: of its output z, y = z, max(z, 0) or
// min(max(z, 0), 6).
enum class BnActivation { None, ReLU, ReLU6 };

// The same activation as an op of its own (`act` is ReLU or ReLU6).
inline Activation separate_activation(BnActivation act) {
  return act == BnActivation::ReLU6 ? Activation::ReLU6 : Activation::ReLU;
}

}  // namespace fer
