// The op API: every differentiable operation of the engine, as free functions on Tensors.
//
// Each op validates its inputs (shapes, devices) with a message naming the op and the shapes,
// allocates its output on the inputs' device, runs the forward kernel of that device's backend
// and, when grad mode is on and an input requires grad, records a backward Node. The op's forward
// and backward sit side by side in engine/ops/<family>.cpp, under its math (shapes, formula, what
// is saved for backward); the kernels' contracts are in engine/backend.h, their code in
// kernels/<backend>/.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace fer {

// ---- Elementwise (same shapes) ---------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float alpha);
Tensor sum(const Tensor& x);   // scalar
Tensor mean(const Tensor& x);  // scalar

// ---- Activations -----------------------------------------------------------------------------
Tensor activation(const Tensor& x, Activation act, float alpha = 0.0f);
inline Tensor relu(const Tensor& x) { return activation(x, Activation::ReLU); }
inline Tensor relu6(const Tensor& x) { return activation(x, Activation::ReLU6); }
inline Tensor leaky_relu(const Tensor& x, float slope = 0.01f) {
  return activation(x, Activation::LeakyReLU, slope);
}
inline Tensor sigmoid(const Tensor& x) { return activation(x, Activation::Sigmoid); }
inline Tensor tanh(const Tensor& x) { return activation(x, Activation::Tanh); }

// ---- Dense -----------------------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // [M,K] x [K,N] -> [M,N]
// y = x W^T + b with x [N, in], W [out, in] (PyTorch layout), b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- Convolution and pooling (NCHW) ----------------------------------------------------------
struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  // Where a frozen layer keeps the forms of its weights the backend made (engine/backend.h), or
  // null. The weights must not change while it holds forms of them, nor take gradients.
  PackedWeights* packed = nullptr;
  // relu or relu6 of the output in the same op (a frozen convolution that folded a batchnorm and
  // the activation after it: layers/layers.h); applied in place when nothing takes gradients.
  BnActivation activation = BnActivation::None;
};
// x [N,C,H,W], weight [K, C/groups, KH, KW], bias [K] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o);

struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o);
Tensor global_avg_pool(const Tensor& x);  // [N,C,H,W] -> [N,C]

// ---- Normalisation and regularisation --------------------------------------------------------
// x [N,C,H,W] or [N,C]. In training mode uses batch statistics and updates the running buffers
// (momentum as in PyTorch: running = (1-m)*running + m*batch); in eval mode uses the buffers.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps);
// relu(batch_norm(...)) as one op: the same values and gradients, without the intermediate tensor
// and its two extra passes over memory (forward and backward). Sequential and the blocks of
// layers/ call it for every BatchNorm that a ReLU follows.
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                       float eps);
// relu6(batch_norm(...)) as one op likewise (MobileNet's BatchNorm + ReLU6 pairs).
Tensor batch_norm_relu6(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                        float eps);
// Inverted dropout: in training zeroes each element with probability p and scales the rest by
// 1/(1-p); identity in eval mode or when p == 0.
Tensor dropout(const Tensor& x, float p, bool training);

// ---- Softmax and losses (over the last dimension of [N, C]) ----------------------------------
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);
struct CrossEntropyOptions {
  Tensor class_weights;          // [C] or undefined
  float label_smoothing = 0.0f;  // in [0, 1)
};
// target: [N] class ids stored as floats. Mean over the batch (weighted as PyTorch does).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const CrossEntropyOptions& o = {});
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});

// ---- Shape -----------------------------------------------------------------------------------
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);  // e.g. dim 1 = channels (Inception)
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);  // NCHW
Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right);  // zeros

}  // namespace fer
