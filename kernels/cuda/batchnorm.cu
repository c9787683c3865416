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
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {
constexpr int kChannelThreads = 512;

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
  coef[C + c] = beta[c] - mean * a;
}

__global__ void bn_backward_stats_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                         const float* __restrict__ dy, const float* __restrict__ gamma,
                                         const float* __restrict__ save_mean,
                                         const float* __restrict__ save_invstd, float* dgamma,
                                         float* dbeta, float* __restrict__ coef) {
  const int64_t c = blockIdx.x, M = N * HW;
  const float mean = save_mean[c], invstd = save_invstd[c];
  double sum_dy = 0.0, sum_dy_xmu = 0.0;
  for (ChannelCursor p(threadIdx.x, blockDim.x, HW); p.n < N; p.advance(HW)) {
    const int64_t i = p.offset(C, c, HW);
    const float g = dy[i];
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
                                          float* y, float* save_mean, float* save_invstd) {
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
    y[i] = k[c] * x[i] + k[C + c];
  });
  launched("batchnorm_forward_train", shapes);
}

void CudaBackend::batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                         const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var,
                                         float eps, float* y) {
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", N * C, " planes of ", HW, " values exceed the kernels' 32-bit grid");
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    const float a = gamma[c] / sqrtf(running_var[c] + eps);
    const float b = beta[c] - running_mean[c] * a;
    y[i] = a * x[i] + b;
  });
  launched("batchnorm_forward_eval", [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); });
}

void CudaBackend::batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                     const float* dy, const float* gamma, const float* save_mean,
                                     const float* save_invstd, float* dx, float* dgamma,
                                     float* dbeta) {
  if (C <= 0 || (!dx && !dgamma && !dbeta)) return;
  auto shapes = [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); };
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", shapes(), " exceeds the kernels' 32-bit grid");
  ScratchBuffer coef(allocator_, dx ? 3 * C * sizeof(float) : 0);
  float* k = coef.as<float>();
  bn_backward_stats_kernel<<<static_cast<unsigned>(C), kChannelThreads, 0, stream_>>>(
      N, C, HW, x, dy, gamma, save_mean, save_invstd, dgamma, dbeta, k);
  launched("batchnorm_backward", shapes);
  if (!dx) return;
  const float* mean = save_mean;
  const float* invstd = save_invstd;
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    const float xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = k[c] * (dy[i] - k[C + c] - xhat * k[2 * C + c]);
  });
  launched("batchnorm_backward", shapes);
}

void CudaBackend::batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                          const float* dy, const float* gamma,
                                          const float* running_mean, const float* running_var,
                                          float eps, float* dx, float* dgamma, float* dbeta) {
  if (C <= 0 || (!dx && !dgamma && !dbeta)) return;
  auto shapes = [&] { return detail_str("x [", N, ", ", C, ", ", HW, "] (N, C, H*W)"); };
  FER_CHECK(plane_fits(N * C, HW), "cuda batchnorm: ", shapes(),
            " exceeds the kernels' 32-bit grid");
  if (dgamma || dbeta) {
    // The training backward's statistics kernel, handed the running statistics as the saved ones
    // and no coefficient buffer: dgamma = sum(dy (x - mean)) invstd, dbeta = sum(dy).
    ScratchBuffer invstd_buffer(allocator_, C * sizeof(float));
    float* invstd = invstd_buffer.as<float>();
    launch_for_each(stream_, C, [=] __device__(int64_t c) {
      invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
    });
    launched("batchnorm_backward_eval", shapes);
    bn_backward_stats_kernel<<<static_cast<unsigned>(C), kChannelThreads, 0, stream_>>>(
        N, C, HW, x, dy, gamma, running_mean, invstd, dgamma, dbeta, nullptr);
    launched("batchnorm_backward_eval", shapes);
  }
  if (!dx) return;
  launch_planes(stream_, N * C, HW, [=] __device__(int64_t plane, int32_t j) {
    const int64_t c = plane % C, i = plane * HW + j;
    const float a = gamma[c] / sqrtf(running_var[c] + eps);  // batchnorm_forward_eval's slope
    dx[i] = a * dy[i];
  });
  launched("batchnorm_backward_eval", shapes);
}

}  // namespace fer::cuda
