// Elementwise kernels, activations and the two full reductions (sum, sum of squares) on the GPU.
// The activations' f and f' are specified above activation in engine/ops/elementwise.cpp.
// Reductions: each block sums a grid-stride share of x in double and writes one partial; a
// second one-block kernel adds the partials. The grid depends only on n, so the order of the
// additions, and the result, is the same on every run.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {
constexpr int kReduceBlocks = 1024;

__global__ void partial_sums_kernel(const float* __restrict__ x, int64_t n, bool squares,
                                    double* __restrict__ partials) {
  double s = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double v = x[i];
    s += squares ? v * v : v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void final_sum_kernel(const double* __restrict__ partials, int count, double* out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}
}  // namespace

void CudaBackend::fill(float* y, int64_t n, float value) {
  launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = value; });
  launched("fill", [&] { return detail_str("n=", n); });
}

void CudaBackend::add(const float* a, const float* b, float* y, int64_t n) {
  launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = a[i] + b[i]; });
  launched("add", [&] { return detail_str("n=", n); });
}

void CudaBackend::mul(const float* a, const float* b, float* y, int64_t n) {
  launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = a[i] * b[i]; });
  launched("mul", [&] { return detail_str("n=", n); });
}

// y may alias x (in-place scaling, accumulation into itself).
void CudaBackend::axpby(float alpha, const float* x, float beta, float* y, int64_t n) {
  launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = alpha * x[i] + beta * y[i]; });
  launched("axpby", [&] { return detail_str("n=", n); });
}

void CudaBackend::scale(const float* x, float alpha, float* y, int64_t n) {
  launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = alpha * x[i]; });
  launched("scale", [&] { return detail_str("n=", n); });
}

namespace {
double reduce(CudaBackend& be, const float* x, int64_t n, bool squares, const char* op) {
  be.require_not_capturing(op);
  if (n <= 0) return 0.0;
  const int blocks = static_cast<int>(grid_for(n) < kReduceBlocks ? grid_for(n) : kReduceBlocks);
  ScratchBuffer partials(be.allocator(), (blocks + 1) * sizeof(double));
  double* p = partials.as<double>();
  partial_sums_kernel<<<blocks, kThreads, 0, be.stream()>>>(x, n, squares, p);
  be.launched(op, [&] { return detail_str("n=", n); });
  final_sum_kernel<<<1, kThreads, 0, be.stream()>>>(p, blocks, p + blocks);
  be.launched(op, [&] { return detail_str("n=", n, " (final)"); });
  return be.fetch(p + blocks, op);
}
}  // namespace

double CudaBackend::sum(const float* x, int64_t n) { return reduce(*this, x, n, false, "sum"); }

double CudaBackend::sum_squares(const float* x, int64_t n) {
  return reduce(*this, x, n, true, "sum_squares");
}

void CudaBackend::activation_forward(Activation act, float alpha, const float* x, float* y,
                                     int64_t n) {
  switch (act) {
    case Activation::ReLU:
      // Written as std::max / std::min are on the CPU, so NaN and -0 come out the same.
      launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = x[i] < 0.0f ? 0.0f : x[i]; });
      break;
    case Activation::ReLU6:
      launch_for_each(stream_, n, [=] __device__(int64_t i) {
        const float m = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = 6.0f < m ? 6.0f : m;
      });
      break;
    case Activation::LeakyReLU:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = x[i] > 0.0f ? x[i] : alpha * x[i]; });
      break;
    case Activation::Sigmoid:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = 1.0f / (1.0f + expf(-x[i])); });
      break;
    case Activation::Tanh:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { y[i] = tanhf(x[i]); });
      break;
  }
  launched("activation_forward", [&] { return detail_str("activation ", static_cast<int>(act), ", n=", n); });
}

void CudaBackend::activation_backward(Activation act, float alpha, const float* x, const float* y,
                                      const float* dy, float* dx, int64_t n) {
  switch (act) {
    case Activation::ReLU:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { dx[i] = x[i] > 0.0f ? dy[i] : 0.0f; });
      break;
    case Activation::ReLU6:
      launch_for_each(stream_, n, [=] __device__(int64_t i) {
        dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
      });
      break;
    case Activation::LeakyReLU:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i]; });
      break;
    case Activation::Sigmoid:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { dx[i] = y[i] * (1.0f - y[i]) * dy[i]; });
      break;
    case Activation::Tanh:
      launch_for_each(stream_, n, [=] __device__(int64_t i) { dx[i] = (1.0f - y[i] * y[i]) * dy[i]; });
      break;
  }
  launched("activation_backward", [&] { return detail_str("activation ", static_cast<int>(act), ", n=", n); });
}

}  // namespace fer::cuda
