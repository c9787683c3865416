// Elementwise kernels and activations on the CPU: plain loops the compiler vectorises, split over
// threads in chunks of at least kGrain elements.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
constexpr int64_t kGrain = 1 << 15;
}

void CpuBackend::fill(float* y, int64_t n, float value) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { std::fill(y + b, y + e, value); });
}

void CpuBackend::add(const float* a, const float* b, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = a[i] + b[i];
  });
}

void CpuBackend::mul(const float* a, const float* b, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = a[i] * b[i];
  });
}

void CpuBackend::axpby(float alpha, const float* x, float beta, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = alpha * x[i] + beta * y[i];
  });
}

void CpuBackend::scale(const float* x, float alpha, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = alpha * x[i];
  });
}

double CpuBackend::sum(const float* x, int64_t n) {
  double total = 0;  // double accumulation: a loss summed over a batch stays exact enough
  for (int64_t i = 0; i < n; ++i) total += x[i];
  return total;
}

double CpuBackend::sum_squares(const float* x, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

// Activations. Forward y = f(x); backward dx = f'(x) * dy, with f' written in whichever of x or
// y is cheaper:  relu' = [x > 0];  relu6' = [0 < x < 6];  leaky' = x > 0 ? 1 : alpha;
// sigmoid' = y (1 - y);  tanh' = 1 - y^2.
void CpuBackend::activation_forward(Activation act, float alpha, const float* x, float* y,
                                    int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    switch (act) {
      case Activation::ReLU:
        for (int64_t i = s; i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
      case Activation::ReLU6:
        for (int64_t i = s; i < e; ++i) y[i] = std::min(std::max(x[i], 0.0f), 6.0f);
        break;
      case Activation::LeakyReLU:
        for (int64_t i = s; i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
        break;
      case Activation::Sigmoid:
        for (int64_t i = s; i < e; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
        break;
      case Activation::Tanh:
        for (int64_t i = s; i < e; ++i) y[i] = std::tanh(x[i]);
        break;
    }
  });
}

void CpuBackend::activation_backward(Activation act, float alpha, const float* x, const float* y,
                                     const float* dy, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    switch (act) {
      case Activation::ReLU:
        for (int64_t i = s; i < e; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
      case Activation::ReLU6:
        for (int64_t i = s; i < e; ++i) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
        break;
      case Activation::LeakyReLU:
        for (int64_t i = s; i < e; ++i) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
        break;
      case Activation::Sigmoid:
        for (int64_t i = s; i < e; ++i) dx[i] = y[i] * (1.0f - y[i]) * dy[i];
        break;
      case Activation::Tanh:
        for (int64_t i = s; i < e; ++i) dx[i] = (1.0f - y[i] * y[i]) * dy[i];
        break;
    }
  });
}

}  // namespace fer::cpu
