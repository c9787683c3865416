// Elementwise kernels and activations on the CPU, split over threads in chunks of at least
// kGrain elements. Each chunk runs a plain loop over __restrict pointers held in locals, which
// is what lets the compiler keep them in registers and vectorise (through a captured reference
// every load re-reads the pointer and the loop stays scalar: 4x slower on ReLU's backward).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
constexpr int64_t kGrain = 1 << 15;

// Runs body(begin, end) over chunks of [0, n); the lambdas capture pointers by value.
template <typename Body>
void chunks(int64_t n, Body body) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { body(b, e); });
}
}  // namespace

void CpuBackend::fill(float* y, int64_t n, float value) {
  chunks(n, [=](int64_t b, int64_t e) { std::fill(y + b, y + e, value); });
}

void CpuBackend::add(const float* a, const float* b, float* y, int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    const float* __restrict pa = a;
    const float* __restrict pb = b;
    float* __restrict py = y;
    for (int64_t i = s; i < e; ++i) py[i] = pa[i] + pb[i];
  });
}

void CpuBackend::mul(const float* a, const float* b, float* y, int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    const float* __restrict pa = a;
    const float* __restrict pb = b;
    float* __restrict py = y;
    for (int64_t i = s; i < e; ++i) py[i] = pa[i] * pb[i];
  });
}

// y may alias x here (scale in place, accumulate into itself): no __restrict.
void CpuBackend::axpby(float alpha, const float* x, float beta, float* y, int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = alpha * x[i] + beta * y[i];
  });
}

void CpuBackend::scale(const float* x, float alpha, float* y, int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = alpha * x[i];
  });
}

namespace {
// sum of term(i) for i < n in double (a loss summed over a batch stays exact enough), over fixed
// chunks of kGrain elements, each summed in 8 independent lanes, the chunk sums then added in
// order: the same result for any thread count, and no chain of dependent adds as long as x (a
// plain running sum made sum() of a batch of feature maps 5x slower than PyTorch's).
template <typename Term>
double chunked_sum(int64_t n, Term term) {
  const int64_t count = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(static_cast<size_t>(count));
  parallel_for(count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kGrain, end = std::min(n, begin + kGrain);
      double lanes[8] = {};
      int64_t i = begin;
      for (; i + 8 <= end; i += 8)
        for (int l = 0; l < 8; ++l) lanes[l] += term(i + l);
      for (; i < end; ++i) lanes[0] += term(i);
      partial[static_cast<size_t>(c)] =
          ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}
}  // namespace

double CpuBackend::sum(const float* x, int64_t n) {
  return chunked_sum(n, [x](int64_t i) { return static_cast<double>(x[i]); });
}

double CpuBackend::sum_squares(const float* x, int64_t n) {
  return chunked_sum(n, [x](int64_t i) { return static_cast<double>(x[i]) * x[i]; });
}

// Activations: f and f' as specified above activation in engine/ops/elementwise.cpp. One switch
// per call, outside the loops, so that each loop is a plain one the compiler vectorises.
void CpuBackend::activation_forward(Activation act, float alpha, const float* x, float* y,
                                    int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    const float* in = x;  // may be y itself: each element is read before it is written
    float* out = y;
    switch (act) {
      case Activation::ReLU:
        for (int64_t i = s; i < e; ++i) out[i] = std::max(in[i], 0.0f);
        break;
      case Activation::ReLU6:
        for (int64_t i = s; i < e; ++i) out[i] = std::min(std::max(in[i], 0.0f), 6.0f);
        break;
      case Activation::LeakyReLU:
        for (int64_t i = s; i < e; ++i) {
          const float v = in[i];
          out[i] = v > 0.0f ? v : alpha * v;
        }
        break;
      case Activation::Sigmoid:
        for (int64_t i = s; i < e; ++i) out[i] = 1.0f / (1.0f + std::exp(-in[i]));
        break;
      case Activation::Tanh:
        for (int64_t i = s; i < e; ++i) out[i] = std::tanh(in[i]);
        break;
    }
  });
}

void CpuBackend::activation_backward(Activation act, float alpha, const float* x, const float* y,
                                     const float* dy, float* dx, int64_t n) {
  chunks(n, [=](int64_t s, int64_t e) {
    const float* __restrict in = x;
    const float* __restrict out = y;
    const float* __restrict g = dy;
    float* __restrict gx = dx;
    // The gradient is read unconditionally and then selected: `in[i] > 0 ? g[i] : 0` would be a
    // conditional load, which the compiler must keep as a branch, and on ReLU's inputs (half of
    // them negative, in no order) that branch is mispredicted half the time: 5x slower.
    switch (act) {
      case Activation::ReLU:
        for (int64_t i = s; i < e; ++i) {
          const float gi = g[i];
          gx[i] = in[i] > 0.0f ? gi : 0.0f;
        }
        break;
      case Activation::ReLU6:
        for (int64_t i = s; i < e; ++i) {
          const float gi = g[i];
          gx[i] = (in[i] > 0.0f && in[i] < 6.0f) ? gi : 0.0f;
        }
        break;
      case Activation::LeakyReLU:
        for (int64_t i = s; i < e; ++i) {
          const float gi = g[i];
          gx[i] = in[i] > 0.0f ? gi : alpha * gi;
        }
        break;
      case Activation::Sigmoid:
        for (int64_t i = s; i < e; ++i) gx[i] = out[i] * (1.0f - out[i]) * g[i];
        break;
      case Activation::Tanh:
        for (int64_t i = s; i < e; ++i) gx[i] = (1.0f - out[i] * out[i]) * g[i];
        break;
    }
  });
}

}  // namespace fer::cpu
