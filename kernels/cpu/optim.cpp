// Fused optimizer updates on the CPU, one pass over each parameter tensor, split over threads
// (the formulas: engine/optim.h). Adam's bias corrections are folded into two scalars per call,
// step_size = lr / (1 - b1^t) and 1 / sqrt(1 - b2^t), so that the loop computes
//   p -= step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// which is the formula of engine/optim.h rearranged (as PyTorch's kernel does).
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

void CpuBackend::sgd_update(float* param, const float* grad, float* buf, int64_t n,
                            const SgdHyper& h) {
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float g = grad[i] + h.weight_decay * param[i];
      if (h.momentum != 0.0f) {
        buf[i] = h.first_step ? g : h.momentum * buf[i] + (1.0f - h.dampening) * g;
        g = h.nesterov ? g + h.momentum * buf[i] : buf[i];
      }
      param[i] -= h.lr * g;
    }
  });
}

void CpuBackend::adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                             const AdamHyper& h) {
  const float bc1 = 1.0f - std::pow(h.beta1, static_cast<float>(h.step));
  const float bc2 = 1.0f - std::pow(h.beta2, static_cast<float>(h.step));
  const float step_size = h.lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float g = grad[i];
      if (h.decoupled) param[i] *= 1.0f - h.lr * h.weight_decay;
      else g += h.weight_decay * param[i];
      m[i] = h.beta1 * m[i] + (1.0f - h.beta1) * g;
      v[i] = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
      param[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + h.eps);
    }
  });
}

}  // namespace fer::cpu
