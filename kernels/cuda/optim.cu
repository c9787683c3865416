// Fused optimizer updates on the GPU: one pass over each parameter tensor (the formulas:
// engine/optim.h). As on the CPU, Adam's bias corrections are folded into two scalars computed on
// the host, step_size = lr / (1 - b1^t) and 1 / sqrt(1 - b2^t), so that the kernel's update is
//   p -= step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// in the same order of operations as kernels/cpu/optim.cpp's.
#include <cmath>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

void CudaBackend::sgd_update(float* param, const float* grad, float* buf, int64_t n,
                             const SgdHyper& h) {
  const float lr = h.lr, momentum = h.momentum, dampening = h.dampening, wd = h.weight_decay;
  const bool nesterov = h.nesterov, first = h.first_step;
  launch_for_each(stream_, n, [=] __device__(int64_t i) {
    float g = grad[i] + wd * param[i];
    if (momentum != 0.0f) {
      buf[i] = first ? g : momentum * buf[i] + (1.0f - dampening) * g;
      g = nesterov ? g + momentum * buf[i] : buf[i];
    }
    param[i] -= lr * g;
  });
  launched("sgd_update", [&] { return detail_str("n=", n); });
}

void CudaBackend::adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                              const AdamHyper& h) {
  const float bc1 = 1.0f - std::pow(h.beta1, static_cast<float>(h.step));
  const float bc2 = 1.0f - std::pow(h.beta2, static_cast<float>(h.step));
  const float step_size = h.lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float lr = h.lr, b1 = h.beta1, b2 = h.beta2, eps = h.eps, wd = h.weight_decay;
  const bool decoupled = h.decoupled;
  launch_for_each(stream_, n, [=] __device__(int64_t i) {
    float g = grad[i];
    if (decoupled) param[i] *= 1.0f - lr * wd;
    else g += wd * param[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    param[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
  });
  launched("adam_update", [&] { return detail_str("n=", n, ", step ", h.step); });
}

}  // namespace fer::cuda
