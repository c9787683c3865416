// Batch normalisation on the CPU (the math: batch_norm in engine/ops/norm.cpp; the kernels'
// contracts: engine/backend.h).
//
// Threads over channels for the statistics and the training backward: each channel's sums run
// on one thread, as float partials per plane of HW values (in 16 lanes) added into a double, so
// that a channel's result does not depend on the thread count. The elementwise passes of evaluation
// split the N*C planes instead.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
// The two sums of a channel that both backward passes need: sum(dy) and sum(dy * (x - mean)).
void channel_sums(int64_t N, int64_t C, int64_t HW, int64_t c, const float* x, const float* dy,
                  float mean, double& sum_dy, double& sum_dy_xmu) {
  sum_dy = sum_dy_xmu = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* xp = x + (n * C + c) * HW;
    const float* gp = dy + (n * C + c) * HW;
    sum_dy += lane_sum(HW, [&](int64_t i) { return gp[i]; });
    sum_dy_xmu += lane_sum(HW, [&](int64_t i) { return gp[i] * (xp[i] - mean); });
  }
}
}  // namespace

void CpuBackend::batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* gamma, const float* beta, float eps,
                                         float momentum, float* running_mean, float* running_var,
                                         float* y, float* save_mean, float* save_invstd) {
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        s += lane_sum(HW, [&](int64_t i) { return p[i]; });
      }
      const float mean = static_cast<float>(s / M);
      double ss = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        ss += lane_sum(HW, [&](int64_t i) { return (p[i] - mean) * (p[i] - mean); });
      }
      const float var = static_cast<float>(ss / M);
      const float invstd = 1.0f / std::sqrt(var + eps);
      save_mean[c] = mean;
      save_invstd[c] = invstd;
      if (running_mean) {
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        const float unbiased = M > 1 ? static_cast<float>(ss / (M - 1)) : var;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
      }
      const float a = gamma[c] * invstd, b = beta[c] - mean * a;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        float* q = y + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) q[i] = a * p[i] + b;
      }
    }
  });
}

void CpuBackend::batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                        const float* gamma, const float* beta,
                                        const float* running_mean, const float* running_var,
                                        float eps, float* y) {
  parallel_for(N * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(HW, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p % C;
      const float a = gamma[c] / std::sqrt(running_var[c] + eps);
      const float b = beta[c] - running_mean[c] * a;
      const float* in = x + p * HW;
      float* out = y + p * HW;
      for (int64_t i = 0; i < HW; ++i) out[i] = a * in[i] + b;
    }
  });
}

void CpuBackend::batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                    const float* dy, const float* gamma, const float* save_mean,
                                    const float* save_invstd, float* dx, float* dgamma,
                                    float* dbeta) {
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mean = save_mean[c], invstd = save_invstd[c];
      double sum_dy, sum_dy_xhat;
      channel_sums(N, C, HW, c, x, dy, mean, sum_dy, sum_dy_xhat);
      sum_dy_xhat *= invstd;
      if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xhat);
      if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
      if (!dx) continue;
      // dx = k * (dy - mean_dy - xhat * mean_dy_xhat), k = gamma * invstd
      const float k = gamma[c] * invstd;
      const float mean_dy = static_cast<float>(sum_dy / M);
      const float mean_dy_xhat = static_cast<float>(sum_dy_xhat / M);
      for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        const float* gp = dy + (n * C + c) * HW;
        float* out = dx + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          const float xhat = (xp[i] - mean) * invstd;
          out[i] = k * (gp[i] - mean_dy - xhat * mean_dy_xhat);
        }
      }
    }
  });
}

void CpuBackend::batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* dy, const float* gamma,
                                         const float* running_mean, const float* running_var,
                                         float eps, float* dx, float* dgamma, float* dbeta) {
  if (dgamma || dbeta) {
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sum_dy, sum_dy_xmu;
        channel_sums(N, C, HW, c, x, dy, running_mean[c], sum_dy, sum_dy_xmu);
        const float invstd = 1.0f / std::sqrt(running_var[c] + eps);
        if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xmu * invstd);
        if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
      }
    });
  }
  if (!dx) return;
  // dx = a dy with the slope a of batchnorm_forward_eval, computed the same way.
  const int64_t planes_per_chunk = std::max<int64_t>(1, 16384 / std::max<int64_t>(HW, 1));
  parallel_for(N * C, planes_per_chunk, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p % C;
      const float a = gamma[c] / std::sqrt(running_var[c] + eps);
      const float* in = dy + p * HW;
      float* out = dx + p * HW;
      for (int64_t i = 0; i < HW; ++i) out[i] = a * in[i];
    }
  });
}

}  // namespace fer::cpu
