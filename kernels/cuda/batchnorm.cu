// Batch normalisation on the GPU (the math: batch_norm in engine/ops/norm.cpp; the kernels'
// contracts: engine/backend.h). Own kernels rather than cuDNN's: the interface fixes what is saved
// (mean and invstd) and how the running variance is updated, and these follow it line for line,
// with the CPU's order of operations (two passes for the variance; coefficients a = gamma invstd,
// b = beta - mean a; dx = a (dy - mean(dy) - xhat mean(dy xhat))).
//
// Each statistics kernel runs one block per channel, threads striding over the channel's N*HW
// values (contiguous within each plane; ChannelCursor), accumulating in double and reducing in a
// fixed order; thread 0 then writes the channel's statistics and the coefficients of the
// elementwise pass, which runs over all N*C planes at once.
//
// The fused ReLU or ReLU6 (`act`): the forward writes max(z, 0) or min(max(z, 0), 6), and the
// backward kernels zero dy where z = a x + b <= 0 (or >= 6), recomputing z with the forward's
// coefficients and the same fmaf, so that the mask matches the forward's output bit for bit.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {
constexpr int kChannelThreads = 512;

// The normalised value z = a x + b, written once for the forward and the backward's mask; the
// coefficients likewise (b = beta - mean a as one fused multiply-add).
__device__ __forceinline__ float bn_affine(float a, float x, float b) { return fmaf(a, x, b); }
__device__ __forceinline__ float bn_shift(float beta, float mean, float a) { return fmaf(-mean, a, beta); }
// The fused activation of z, and dy where it passed z (always without one).
__device__ __forceinline__ float bn_activate(BnActivation act, float z) {
  if (act == BnActivation::ReLU) return fmaxf(z, 0.0f);
  if (act == BnActivation::ReLU6) return fminf(fmaxf(z, 0.0f), 6.0f);
  return z;
}
__device__ __forceinline__ float bn_masked(BnActivation act, float a, float b, float x, float dy) {
  if (act == BnActivation::None) return dy;
  const float z = bn_affine(a, x, b);
  return z > 0.0f && (act == BnActivation::ReLU || z < 6.0f) ? dy : 0.0f;
}
// Evaluation's coefficients (batchnorm_forward_eval's a and b).
struct EvalCoef {
  float a, b;
  __device__ EvalCoef(const float* gamma, const float* beta, const float* running_mean,
                      const float* running_var, float eps, int64_t c)
      : a(gamma[c] / sqrtf(running_var[c] + eps)), b(bn_shift(beta[c], running_mean[c], a)) {}
};

__global__ void bn_train_stats_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                      const float* __restrict__ gamma, const float* __restrict__ beta,
                                      float eps, float momentum, float* running_mean,
                                      float* running_var, float* __restrict__ save_mean,
                                      float* __restrict__ save_invstd, float* __restrict__ coef) {
  const int64_t c = blockIdx.x, M = N * HW;
  double s = 0.0;
  for (ChannelCursor p(threadIdx.x, blockDim.x, HW); p.n < N; p.advance(HW)) s += x[p.offset(C, c, HW)];
  s = block_sum(s);
  const float mean = static_cast<float>(s / M);
  double ss = 0.0;
  for (ChannelCursor p(threadIdx.x, blockDim.x, HW); p.n < N; p.advance(HW)) {
    const float d = x[p.offset(C, c, HW)] - mean;
    ss += static_cast<double>(d) * d;
  }
  ss = block_sum(ss);
  if (threadIdx.x != 0) return;
  const float var = static_cast<float>(ss / M);
  const float invstd = 1.0f / sqrtf(var + eps);
  save_mean[c] = mean;
  save_invstd[c] = invstd;
  if (running_mean) {
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
    const float unbiased = M > 1 ? static_cast<float>(ss / (M - 1)) : var;
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
  }
  const float a = gamma[c] * invstd;
  coef[c] = a;
  coef[C + c] = bn_shift(beta[c], mean, a);
}

// The sums of the backward: sum(g) and sum(g (x - mean)), g = dy masked by the fused activation
// whose coefficients are mask_a[c] and mask_b[c] (read only with one).
__global__ void bn_backward_stats_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                         const float* __restrict__ dy, const float* __restrict__ gamma,
                                         const float* __restrict__ save_mean,
                                         const float* __restrict__ save_invstd, BnActivation act,
                                         const float* __restrict__ mask_a,
                                         const float* __restrict__ mask_b, float* dgamma,
                                         float* dbeta, float* __restrict__ coef) {
  const int64_t c = blockIdx.x, M = N * HW;
  const float mean = save_mean[c], invstd = save_invstd[c];
  const bool masked = act != BnActivation::None;
  const float ma = masked ? mask_a[c] : 0.0f, mb = masked ? mask_b[c] : 0.0f;
  double sum_dy = 0.0, sum_dy_xmu = 0.0;
  for (ChannelCursor p(threadIdx.x, blockDim.x, HW); p.n < N; p.advance(HW)) {
    const int64_t i = p.offset(C, c, HW);
    const float g = bn_masked(act, ma, mb, x[i], dy[i]);
    sum_dy += g;
    sum_dy_xmu += static_cast<double>(g) * (x[i] - mean);
  }
  sum_dy = block_sum(sum_dy);
  sum_dy_xmu = block_sum(sum_dy_xmu);
  if (threadIdx.x != 0) return;
  const double sum_dy_xhat = sum_dy_xmu * invstd;
  if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xhat);
  if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
  if (coef) {  // dx = k (dy - mean_dy - xhat mean_dy_xhat)
    coef[c] = gamma[c] * invstd;
    coef[C + c] = static_cast<float>(sum_dy / M);
    coef[2 * C + c] = static_cast<float>(sum_dy_xhat / M);
  }
}
}  // namespace

void CudaBackend::batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                          const float* gamma, const float* beta, float eps,
                                          float momentum, float* running_mean, float* running_var,
                                          float* y, float* save_mean, float* save_invstd,
                                          BnActivation act) {
  if (C <= 0) return;
  auto shapes = [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); };
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", shapes(), " exceeds the kernels' 32-bit grid");
  ScratchBuffer coef(allocator_, 2 * C * sizeof(float));
  float* k = coef.as<float>();
  bn_train_stats_kernel<<<static_cast<unsigned>(C), kChannelThreads, 0, stream_>>>(
      N, C, HW, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean, save_invstd, k);
  launched("batchnorm_forward_train", shapes);
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    y[i] = bn_activate(act, bn_affine(k[c], x[i], k[C + c]));
  });
  launched("batchnorm_forward_train", shapes);
}

void CudaBackend::batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var,
                                         float eps, float* y, BnActivation act) {
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", N * C, " planes of ", HW, " values exceed the kernels' 32-bit grid");
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    const EvalCoef f(gamma, beta, running_mean, running_var, eps, c);
    y[i] = bn_activate(act, bn_affine(f.a, x[i], f.b));
  });
  launched("batchnorm_forward_eval", [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); });
}

void CudaBackend::batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                     const float* dy, const float* gamma, const float* beta,
                                     const float* save_mean, const float* save_invstd, float* dx,
                                     float* dgamma, float* dbeta, BnActivation act) {
  if (C <= 0 || (!dx && !dgamma && !dbeta)) return;
  auto shapes = [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); };
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", shapes(), " exceeds the kernels' 32-bit grid");
  const float* mean = save_mean;
  const float* invstd = save_invstd;
  // The fused activation's mask: the training forward's coefficients a and b, recomputed per
  // channel.
  const bool masked = act != BnActivation::None;
  ScratchBuffer mask_buffer(allocator_, masked ? 2 * C * sizeof(float) : 0);
  float* mask = mask_buffer.as<float>();
  if (masked) {
    launch_for_each(stream_, C, [=] __device__(int64_t c) {
      const float a = gamma[c] * invstd[c];
      mask[c] = a;
      mask[C + c] = bn_shift(beta[c], mean[c], a);
    });
    launched("batchnorm_backward", shapes);
  }
  ScratchBuffer coef(allocator_, dx ? 3 * C * sizeof(float) : 0);
  float* k = coef.as<float>();
  bn_backward_stats_kernel<<<static_cast<unsigned>(C), kChannelThreads, 0, stream_>>>(
      N, C, HW, x, dy, gamma, save_mean, save_invstd, act, mask, mask + C, dgamma, dbeta, k);
  launched("batchnorm_backward", shapes);
  if (!dx) return;
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    const float xhat = (x[i] - mean[c]) * invstd[c];
    const float g = masked ? bn_masked(act, mask[c], mask[C + c], x[i], dy[i]) : dy[i];
    dx[i] = k[c] * (g - k[C + c] - xhat * k[2 * C + c]);
  });
  launched("batchnorm_backward", shapes);
}

void CudaBackend::batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                          const float* dy, const float* gamma, const float* beta,
                                          const float* running_mean, const float* running_var,
                                          float eps, float* dx, float* dgamma, float* dbeta,
                                          BnActivation act) {
  if (C <= 0 || (!dx && !dgamma && !dbeta)) return;
  auto shapes = [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); };
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", shapes(),
            " exceeds the kernels' 32-bit grid");
  if (dgamma || dbeta) {
    // The training backward's statistics kernel, handed the running statistics as the saved ones
    // and no coefficient buffer: dgamma = sum(g (x - mean)) invstd, dbeta = sum(g); the mask's
    // coefficients are evaluation's a and b.
    ScratchBuffer per_channel(allocator_, 3 * C * sizeof(float));
    float* invstd = per_channel.as<float>();
    float* mask = invstd + C;
    launch_for_each(stream_, C, [=] __device__(int64_t c) {
      invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
      if (act != BnActivation::None) {
        const EvalCoef f(gamma, beta, running_mean, running_var, eps, c);
        mask[c] = f.a;
        mask[C + c] = f.b;
      }
    });
    launched("batchnorm_backward_eval", shapes);
    bn_backward_stats_kernel<<<static_cast<unsigned>(C), kChannelThreads, 0, stream_>>>(
        N, C, HW, x, dy, gamma, running_mean, invstd, act, mask, mask + C, dgamma, dbeta, nullptr);
    launched("batchnorm_backward_eval", shapes);
  }
  if (!dx) return;
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    if (act == BnActivation::None) {
      dx[i] = gamma[c] / sqrtf(running_var[c] + eps) * dy[i];  // batchnorm_forward_eval's slope
      return;
    }
    const EvalCoef f(gamma, beta, running_mean, running_var, eps, c);
    dx[i] = f.a * bn_masked(act, f.a, f.b, x[i], dy[i]);
  });
  launched("batchnorm_backward_eval", shapes);
}

}  // namespace fer::cuda
