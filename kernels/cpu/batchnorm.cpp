// Batch normalisation on the CPU (the math: batch_norm in engine/ops/norm.cpp; the kernels'
// contracts: engine/backend.h).
//
// Threads over channels for the statistics and the training backward: each channel's sums run
// on one thread, as float partials per plane of HW values (in 16 lanes) added into a double, so
// that a channel's result does not depend on the thread count. The elementwise passes of evaluation
// split the N*C planes instead.
//
// Memory traffic is what these kernels cost (a few flops per value): the training forward reads
// a channel once for both moments and once more to normalise (the second read mostly from L2,
// the channel's planes having just been read), and the fused ReLU (`relu`) writes max(z, 0) in the
// same pass, where a separate ReLU would read and write the whole tensor again. Its backward
// recomputes the mask z > 0 from x rather than reading the output: one stream fewer per pass.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
// The normalised value z = a x + b. One function for the forward, which writes z (or max(z, 0)),
// and for the backward's recomputation of ReLU's mask, so that both round it alike.
inline float affine(float a, float x, float b) { return a * x + b; }

// y = a x + b over n values, or max(a x + b, 0).
void normalize(int64_t n, const float* __restrict x, float a, float b, bool relu,
               float* __restrict y) {
  if (relu)
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(affine(a, x[i], b), 0.0f);
  else
    for (int64_t i = 0; i < n; ++i) y[i] = affine(a, x[i], b);
}

// The gradient that reaches the normalisation: dy, zeroed where a fused ReLU's z = a x + b was
// not positive. Read unconditionally, then selected (see activation_backward for why); the ReLU
// is a template parameter so that each loop is one straight vectorised body.
template <bool Relu>
struct MaskedGrad {
  float a, b;
  float operator()(float x, float dy) const {
    if constexpr (Relu) return affine(a, x, b) > 0.0f ? dy : 0.0f;
    return dy;
  }
};

// Calls body(MaskedGrad<relu>{a, b}): the kernels' per-channel work, compiled once per case.
template <typename Body>
void with_mask(bool relu, float a, float b, Body body) {
  if (relu)
    body(MaskedGrad<true>{a, b});
  else
    body(MaskedGrad<false>{a, b});
}

// The two sums of a channel that both backward passes need: sum(g) and sum(g * (x - mean)),
// g the masked gradient.
template <typename Grad>
void channel_sums(int64_t N, int64_t C, int64_t HW, int64_t c, const float* x, const float* dy,
                  float mean, Grad grad, double& sum_g, double& sum_g_xmu) {
  sum_g = sum_g_xmu = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* xp = x + (n * C + c) * HW;
    const float* gp = dy + (n * C + c) * HW;
    const auto [s, sx] = lane_sum2(HW, [&](int64_t i) {
      const float g = grad(xp[i], gp[i]);
      return std::pair<float, float>(g, g * (xp[i] - mean));
    });
    sum_g += s;
    sum_g_xmu += sx;
  }
}

// Evaluation's affine map, computed alike by its forward and its backward.
struct EvalAffine {
  float invstd, a, b;
  EvalAffine(const float* gamma, const float* beta, const float* running_mean,
             const float* running_var, float eps, int64_t c)
      : invstd(1.0f / std::sqrt(running_var[c] + eps)),
        a(gamma[c] / std::sqrt(running_var[c] + eps)),
        b(beta ? beta[c] - running_mean[c] * a : 0.0f) {}
};

constexpr int64_t kPlaneChunkValues = 16384;  // values per task of the per-plane passes
}  // namespace

void CpuBackend::batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* gamma, const float* beta, float eps,
                                         float momentum, float* running_mean, float* running_var,
                                         float* y, float* save_mean, float* save_invstd,
                                         bool relu) {
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // Both moments in one pass, about a shift s near the mean (that of the channel's first
      // plane): var = E[(x - s)^2] - E[x - s]^2 cancels no more than the two-pass formula while
      // |mean - s| is of the order of the standard deviation, and saves a pass over the channel.
      const float s = lane_sum(x + c * HW, HW) / static_cast<float>(HW);
      double s1 = 0.0, s2 = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        const auto [d, dd] = lane_sum2(HW, [&](int64_t i) {
          const float v = p[i] - s;
          return std::pair<float, float>(v, v * v);
        });
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
      for (int64_t n = 0; n < N; ++n)
        normalize(HW, x + (n * C + c) * HW, a, b, relu, y + (n * C + c) * HW);
    }
  });
}

void CpuBackend::batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                        const float* gamma, const float* beta,
                                        const float* running_mean, const float* running_var,
                                        float eps, float* y, bool relu) {
  parallel_for(N * C, std::max<int64_t>(1, kPlaneChunkValues / std::max<int64_t>(HW, 1)),
               [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const EvalAffine f(gamma, beta, running_mean, running_var, eps, p % C);
      normalize(HW, x + p * HW, f.a, f.b, relu, y + p * HW);
    }
  });
}

void CpuBackend::batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                    const float* dy, const float* gamma, const float* beta,
                                    const float* save_mean, const float* save_invstd, float* dx,
                                    float* dgamma, float* dbeta, bool relu) {
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mean = save_mean[c], invstd = save_invstd[c];
      const float k = gamma[c] * invstd;  // the forward's a
      with_mask(relu, k, relu ? beta[c] - mean * k : 0.0f, [&](auto grad) {
        double sum_g, sum_g_xhat;
        channel_sums(N, C, HW, c, x, dy, mean, grad, sum_g, sum_g_xhat);
        sum_g_xhat *= invstd;
        if (dgamma) dgamma[c] = static_cast<float>(sum_g_xhat);
        if (dbeta) dbeta[c] = static_cast<float>(sum_g);
        if (!dx) return;
        // dx = k * (g - mean_g - xhat * mean_g_xhat), k = gamma * invstd
        const float mean_g = static_cast<float>(sum_g / M);
        const float mean_g_xhat = static_cast<float>(sum_g_xhat / M);
        for (int64_t n = 0; n < N; ++n) {
          const float* __restrict xp = x + (n * C + c) * HW;
          const float* __restrict gp = dy + (n * C + c) * HW;
          float* __restrict out = dx + (n * C + c) * HW;
          for (int64_t i = 0; i < HW; ++i) {
            const float xhat = (xp[i] - mean) * invstd;
            out[i] = k * (grad(xp[i], gp[i]) - mean_g - xhat * mean_g_xhat);
          }
        }
      });
    }
  });
}

void CpuBackend::batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* dy, const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var,
                                         float eps, float* dx, float* dgamma, float* dbeta,
                                         bool relu) {
  const float* shift = relu ? beta : nullptr;  // b is needed only for the mask
  if (dgamma || dbeta) {
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const EvalAffine f(gamma, shift, running_mean, running_var, eps, c);
        with_mask(relu, f.a, f.b, [&](auto grad) {
          double sum_g, sum_g_xmu;
          channel_sums(N, C, HW, c, x, dy, running_mean[c], grad, sum_g, sum_g_xmu);
          if (dgamma) dgamma[c] = static_cast<float>(sum_g_xmu * f.invstd);
          if (dbeta) dbeta[c] = static_cast<float>(sum_g);
        });
      }
    });
  }
  if (!dx) return;
  // dx = a g with the slope a of batchnorm_forward_eval, computed the same way.
  parallel_for(N * C, std::max<int64_t>(1, kPlaneChunkValues / std::max<int64_t>(HW, 1)),
               [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const EvalAffine f(gamma, shift, running_mean, running_var, eps, p % C);
      with_mask(relu, f.a, f.b, [&](auto grad) {
        const float* __restrict xp = x + p * HW;
        const float* __restrict gp = dy + p * HW;
        float* __restrict out = dx + p * HW;
        for (int64_t i = 0; i < HW; ++i) out[i] = f.a * grad(xp[i], gp[i]);
      });
    }
  });
}

}  // namespace fer::cpu
