// Batch normalisation on the CPU (the math: batch_norm in engine/ops/norm.cpp; the kernels'
// contracts: engine/backend.h).
//
// Threads over channels: each channel's sums run on one thread, as float partials (in 16 lanes)
// of a few images' planes, up to 4096 values, added into a double, so that a channel's result
// does not depend on the thread count; evaluation's elementwise passes take channels in tasks of
// about 16K values. The loops over a channel's planes are batchnorm_loops.h's, compiled once per
// vector set; the active fp32 set's copy runs (isa.h).
//
// Memory traffic is what these kernels cost (a few flops per value): the training forward reads
// a channel once for both moments and once more to normalise (the second read mostly from L2,
// the channel's planes having just been read), and a fused ReLU or ReLU6 (`act`) clamps z in the
// same pass, where a separate activation would read and write the whole tensor again. Its
// backward recomputes the mask (0 < z, and z < 6) from x rather than reading the output: one
// stream fewer per pass.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/batchnorm_loops.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
// The plane loops of the active fp32 set (the baseline build's under the scalar set).
const BatchNormLoops& loops() {
  static const BatchNormLoops scalar = make_batchnorm_loops();
  switch (fp32_isa()) {
    case Isa::Avx2: {
      static const BatchNormLoops avx2 = batchnorm_loops_avx2();
      return avx2;
    }
    case Isa::Avx512: {
      static const BatchNormLoops avx512 = batchnorm_loops_avx512();
      return avx512;
    }
    default: return scalar;
  }
}

// How many items of `each` values fit in `budget` values, one at least.
int64_t fitting(int64_t budget, int64_t each) { return std::max<int64_t>(1, budget / std::max<int64_t>(each, 1)); }

// Images whose planes of one channel a float partial sum covers: up to 4096 values (each of its
// 16 lanes about 256), one plane at least.
int64_t planes_per_sum(int64_t HW) { return fitting(4096, HW); }

// The two sums of a channel that both backward passes need: sum(g) and sum(g * (x - mean)),
// g = dy masked by the fused ReLU whose z is a x + b.
void channel_sums(const BatchNormLoops& f, int64_t N, int64_t C, int64_t HW, int64_t c,
                  const float* x, const float* dy, float mean, float a, float b, BnActivation act,
                  double& sum_g, double& sum_g_xmu) {
  sum_g = sum_g_xmu = 0.0;
  const int64_t group = planes_per_sum(HW);
  for (int64_t n = 0; n < N; n += group) {
    const int64_t offset = (n * C + c) * HW;
    const auto [s, sx] = f.grad_sums(std::min(group, N - n), HW, C * HW, x + offset, dy + offset, mean, a, b, act);
    sum_g += s;
    sum_g_xmu += sx;
  }
}

// Evaluation's affine map, computed alike by its forward and its backward (b only with beta).
struct EvalAffine {
  float invstd, a, b;
  EvalAffine(const float* gamma, const float* beta, const float* running_mean,
             const float* running_var, float eps, int64_t c)
      : invstd(1.0f / std::sqrt(running_var[c] + eps)),
        a(gamma[c] / std::sqrt(running_var[c] + eps)),
        b(beta ? beta[c] - running_mean[c] * a : 0.0f) {}
};

// Channels per task of evaluation's elementwise passes: about 16K values.
int64_t channels_per_chunk(int64_t values_per_channel) { return fitting(16384, values_per_channel); }
}  // namespace

void CpuBackend::batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* gamma, const float* beta, float eps,
                                         float momentum, float* running_mean, float* running_var,
                                         float* y, float* save_mean, float* save_invstd,
                                         BnActivation act) {
  const BatchNormLoops& f = loops();
  const int64_t M = N * HW, stride = C * HW, group = planes_per_sum(HW);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // Both moments in one pass, about a shift s near the mean (that of the channel's first
      // plane): var = E[(x - s)^2] - E[x - s]^2 cancels no more than the two-pass formula while
      // |mean - s| is of the order of the standard deviation, and saves a pass over the channel.
      const float s = f.moments(1, HW, stride, x + c * HW, 0.0f).first / static_cast<float>(HW);
      double s1 = 0.0, s2 = 0.0;
      for (int64_t n = 0; n < N; n += group) {
        const auto [d, dd] = f.moments(std::min(group, N - n), HW, stride, x + (n * C + c) * HW, s);
        s1 += d;
        s2 += dd;
      }
      const double shift_mean = s1 / M;
      const double ss = std::max(0.0, s2 - s1 * shift_mean);  // sum((x - mean)^2)
      const float mean = static_cast<float>(s + shift_mean);
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
      f.normalize(N, HW, stride, x + c * HW, a, b, act, y + c * HW);
    }
  });
}

void CpuBackend::batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                        const float* gamma, const float* beta,
                                        const float* running_mean, const float* running_var,
                                        float eps, float* y, BnActivation act) {
  const BatchNormLoops& f = loops();
  parallel_for(C, channels_per_chunk(N * HW), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const EvalAffine e(gamma, beta, running_mean, running_var, eps, c);
      f.normalize(N, HW, C * HW, x + c * HW, e.a, e.b, act, y + c * HW);
    }
  });
}

void CpuBackend::batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                    const float* dy, const float* gamma, const float* beta,
                                    const float* save_mean, const float* save_invstd, float* dx,
                                    float* dgamma, float* dbeta, BnActivation act) {
  const BatchNormLoops& f = loops();
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mean = save_mean[c], invstd = save_invstd[c];
      const float a = gamma[c] * invstd, b = act != BnActivation::None ? beta[c] - mean * a : 0.0f;  // the forward's
      double sum_g, sum_g_xhat;
      channel_sums(f, N, C, HW, c, x, dy, mean, a, b, act, sum_g, sum_g_xhat);
      sum_g_xhat *= invstd;
      if (dgamma) dgamma[c] = static_cast<float>(sum_g_xhat);
      if (dbeta) dbeta[c] = static_cast<float>(sum_g);
      if (!dx) continue;
      const float mean_g = static_cast<float>(sum_g / M);
      const float mean_g_xhat = static_cast<float>(sum_g_xhat / M);
      f.grad_input(N, HW, C * HW, x + c * HW, dy + c * HW, mean, invstd, mean_g, mean_g_xhat, a, b,
                   act, dx + c * HW);
    }
  });
}

void CpuBackend::batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* dy, const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var,
                                         float eps, float* dx, float* dgamma, float* dbeta,
                                         BnActivation act) {
  const BatchNormLoops& f = loops();
  const float* shift = act != BnActivation::None ? beta : nullptr;  // b is needed only for the mask
  if (dgamma || dbeta) {
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const EvalAffine e(gamma, shift, running_mean, running_var, eps, c);
        double sum_g, sum_g_xmu;
        channel_sums(f, N, C, HW, c, x, dy, running_mean[c], e.a, e.b, act, sum_g, sum_g_xmu);
        if (dgamma) dgamma[c] = static_cast<float>(sum_g_xmu * e.invstd);
        if (dbeta) dbeta[c] = static_cast<float>(sum_g);
      }
    });
  }
  if (!dx) return;
  // dx = a g with the slope a of batchnorm_forward_eval, computed the same way.
  parallel_for(C, channels_per_chunk(N * HW), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const EvalAffine e(gamma, shift, running_mean, running_var, eps, c);
      f.grad_input_eval(N, HW, C * HW, x + c * HW, dy + c * HW, e.a, e.b, act, dx + c * HW);
    }
  });
}

}  // namespace fer::cpu
