// Softmax, log-softmax and the weighted, label-smoothed NLL loss on the GPU (the math:
// engine/ops/softmax_loss.cpp; the kernels' contracts: engine/backend.h).
// Rows are samples and columns classes (7 for FER), so one thread per row runs the CPU's loop
// with its double accumulators: exact to the last bit of the exponentials, and plenty fast for a
// few thousand classes or less.
// The loss kernels run in one block: a reduction over the batch in double, in a fixed order.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {
constexpr int kLossThreads = 256;

__global__ void nll_loss_forward_kernel(const float* __restrict__ logp, const float* __restrict__ target,
                                        const float* __restrict__ weight, int64_t rows, int64_t cols,
                                        float smoothing, float* __restrict__ loss) {
  double total = 0.0, weight_sum = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t t = static_cast<int64_t>(target[r]);
    if (t < 0 || t >= cols) continue;  // validated by the op (engine/ops/softmax_loss.cpp)
    const float* row = logp + r * cols;
    const double wt = weight ? weight[t] : 1.0;
    weight_sum += wt;
    double smooth = 0.0;
    if (smoothing > 0.0f)
      for (int64_t c = 0; c < cols; ++c) smooth += (weight ? weight[c] : 1.0) * -row[c];
    total += (1.0 - smoothing) * wt * -row[t] + smoothing / cols * smooth;
  }
  total = block_sum(total);
  weight_sum = block_sum(weight_sum);
  if (threadIdx.x == 0) *loss = weight_sum > 0 ? static_cast<float>(total / weight_sum) : 0.0f;
}

__global__ void nll_loss_backward_kernel(const float* __restrict__ target, const float* __restrict__ weight,
                                         int64_t rows, int64_t cols, float smoothing, float grad_scale,
                                         float* __restrict__ dlogp) {
  double weight_sum = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t t = static_cast<int64_t>(target[r]);
    if (t >= 0 && t < cols) weight_sum += weight ? weight[t] : 1.0;
  }
  weight_sum = block_sum(weight_sum);
  const float k = weight_sum > 0 ? static_cast<float>(-grad_scale / weight_sum) : 0.0f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t t = static_cast<int64_t>(target[r]);
    float* row = dlogp + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = k * smoothing / cols * (weight ? weight[c] : 1.0f);
    if (t >= 0 && t < cols) row[t] += k * (1.0f - smoothing) * (weight ? weight[t] : 1.0f);
  }
}
}  // namespace

void CudaBackend::softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  if (cols <= 0) return;
  launch_for_each(stream_, rows, [=] __device__(int64_t r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    float mx = in[0];
    for (int64_t c = 1; c < cols; ++c) mx = mx < in[c] ? in[c] : mx;  // std::max, as the CPU
    double total = 0.0;
    for (int64_t c = 0; c < cols; ++c) total += exp(static_cast<double>(in[c] - mx));
    if (log) {
      const float lse = static_cast<float>(::log(total));
      for (int64_t c = 0; c < cols; ++c) out[c] = in[c] - mx - lse;
    } else {
      const float inv = static_cast<float>(1.0 / total);
      for (int64_t c = 0; c < cols; ++c) out[c] = expf(in[c] - mx) * inv;
    }
  });
  launched(log ? "log_softmax_forward" : "softmax_forward", [&] { return detail_str(rows, " x ", cols); });
}

void CudaBackend::softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                                   int64_t cols, bool log) {
  launch_for_each(stream_, rows, [=] __device__(int64_t r) {
    const float* yr = y + r * cols;
    const float* gr = dy + r * cols;
    float* out = dx + r * cols;
    double s = 0.0;
    if (log) {
      for (int64_t c = 0; c < cols; ++c) s += gr[c];
      for (int64_t c = 0; c < cols; ++c) out[c] = gr[c] - expf(yr[c]) * static_cast<float>(s);
    } else {
      for (int64_t c = 0; c < cols; ++c) s += gr[c] * yr[c];
      for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - static_cast<float>(s));
    }
  });
  launched(log ? "log_softmax_backward" : "softmax_backward", [&] { return detail_str(rows, " x ", cols); });
}

float CudaBackend::nll_loss_forward(const float* logp, const float* target, const float* weight,
                                    int64_t rows, int64_t cols, float smoothing) {
  require_not_capturing("nll_loss_forward");
  ScratchBuffer loss(allocator_, sizeof(float));
  nll_loss_forward_kernel<<<1, kLossThreads, 0, stream_>>>(logp, target, weight, rows, cols, smoothing,
                                                           loss.as<float>());
  launched("nll_loss_forward", [&] { return detail_str("log-probabilities [", rows, ", ", cols, "]"); });
  return fetch(loss.as<float>(), "nll_loss_forward");
}

void CudaBackend::nll_loss_backward(const float* target, const float* weight, int64_t rows,
                                    int64_t cols, float smoothing, float grad_scale, float* dlogp) {
  nll_loss_backward_kernel<<<1, kLossThreads, 0, stream_>>>(target, weight, rows, cols, smoothing,
                                                            grad_scale, dlogp);
  launched("nll_loss_backward", [&] { return detail_str("log-probabilities [", rows, ", ", cols, "]"); });
}

}  // namespace fer::cuda
