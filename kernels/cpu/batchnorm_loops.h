// The per-plane loops of the batchnorm kernels (kernels/cpu/batchnorm.cpp), written once as plain
// C++ and compiled once per vector set: batchnorm.cpp builds them for baseline x86-64 (the scalar
// set), batchnorm_avx2.cpp and batchnorm_avx512.cpp with their sets' flags, where the compiler
// vectorises the same loops 8 and 16 floats wide. Only those three files include this header, and
// the loops have internal linkage, so each gets its own copy (as simd_kernels.h's templates).
//
// Each loop covers `planes` planes of n = H*W values of one channel, `stride` floats apart (C*H*W
// in NCHW: one call for several images' planes, which small planes need: a 3x3 plane per call
// was mostly call overhead); what it computes is the formula of batch_norm in engine/ops/norm.cpp.
// A fused ReLU's or ReLU6's mask is recomputed from x as 0 < z (< 6), z = a x + b, the same
// expression as the forward's, compiled in the same file: within one set the backward's mask
// matches the forward's output bit for bit. They are compiled without fused multiply-adds
// (-ffp-contract=off, CMakeLists.txt), so every set computes the baseline's bits.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

#include "engine/activation.h"
#include "kernels/cpu/lane_sum.h"

namespace fer::cpu {

struct BatchNormLoops {
  // (sum(x - s), sum((x - s)^2)): both moments in one pass, about a shift s.
  std::pair<float, float> (*moments)(int64_t planes, int64_t n, int64_t stride, const float* x, float s);
  // y = act(a x + b): a x + b, clamped below at 0 (ReLU) or to [0, 6] (ReLU6); y laid out as x.
  void (*normalize)(int64_t planes, int64_t n, int64_t stride, const float* x, float a, float b,
                    BnActivation act, float* y);
  // (sum(g), sum(g (x - mean))), g = dy zeroed where act's gradient at z = a x + b is 0.
  std::pair<float, float> (*grad_sums)(int64_t planes, int64_t n, int64_t stride, const float* x,
                                       const float* dy, float mean, float a, float b, BnActivation act);
  // Training: dx = k (g - mean_g - xhat mean_g_xhat), xhat = (x - mean) invstd, k = a.
  void (*grad_input)(int64_t planes, int64_t n, int64_t stride, const float* x, const float* dy,
                     float mean, float invstd, float mean_g, float mean_g_xhat, float a, float b,
                     BnActivation act, float* dx);
  // Evaluation: dx = a g.
  void (*grad_input_eval)(int64_t planes, int64_t n, int64_t stride, const float* x, const float* dy,
                          float a, float b, BnActivation act, float* dx);
};

// The vector sets' tables (batchnorm_avx2.cpp, batchnorm_avx512.cpp): call only when the CPU has
// the set.
BatchNormLoops batchnorm_loops_avx2();
BatchNormLoops batchnorm_loops_avx512();

namespace {  // NOLINT: internal linkage on purpose, one copy per instruction set

// The normalised value z = a x + b: one expression for the forward and the backward's mask.
inline float bn_affine(float a, float x, float b) { return a * x + b; }

// The fused activation of z.
template <BnActivation Act>
inline float bn_activate(float z) {
  if constexpr (Act == BnActivation::ReLU) return std::max(z, 0.0f);
  if constexpr (Act == BnActivation::ReLU6) return std::min(std::max(z, 0.0f), 6.0f);
  return z;
}

// dy where the fused activation passed z (always, without one). Read unconditionally, then
// selected: a conditional load would be a branch, mispredicted on half of ReLU's inputs.
template <BnActivation Act>
inline float bn_masked(float a, float b, float x, float dy) {
  if constexpr (Act == BnActivation::ReLU) return bn_affine(a, x, b) > 0.0f ? dy : 0.0f;
  if constexpr (Act == BnActivation::ReLU6) {
    const float z = bn_affine(a, x, b);
    return z > 0.0f && z < 6.0f ? dy : 0.0f;
  }
  return dy;
}

// f.template operator()<Act>() for the run-time act: each loop below is compiled once per
// activation, so that its inner loop has no test of it.
template <class F>
decltype(auto) for_activation(BnActivation act, F&& f) {
  switch (act) {
    case BnActivation::ReLU: return f.template operator()<BnActivation::ReLU>();
    case BnActivation::ReLU6: return f.template operator()<BnActivation::ReLU6>();
    case BnActivation::None: break;
  }
  return f.template operator()<BnActivation::None>();
}

std::pair<float, float> bn_moments(int64_t planes, int64_t n, int64_t stride, const float* x, float s) {
  return lane_sum2(planes, n, stride, [&](int64_t i) {
    const float v = x[i] - s;
    return std::pair<float, float>(v, v * v);
  });
}

template <BnActivation Act>
void bn_normalize_as(int64_t planes, int64_t n, int64_t stride, const float* __restrict x, float a,
                     float b, float* __restrict y) {
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * stride;
    float* yp = y + p * stride;
    for (int64_t i = 0; i < n; ++i) yp[i] = bn_activate<Act>(bn_affine(a, xp[i], b));
  }
}

void bn_normalize(int64_t planes, int64_t n, int64_t stride, const float* x, float a, float b,
                  BnActivation act, float* y) {
  for_activation(act, [&]<BnActivation Act>() { bn_normalize_as<Act>(planes, n, stride, x, a, b, y); });
}

template <BnActivation Act>
std::pair<float, float> bn_grad_sums_as(int64_t planes, int64_t n, int64_t stride,
                                        const float* __restrict x, const float* __restrict dy,
                                        float mean, float a, float b) {
  return lane_sum2(planes, n, stride, [&](int64_t i) {
    const float g = bn_masked<Act>(a, b, x[i], dy[i]);
    return std::pair<float, float>(g, g * (x[i] - mean));
  });
}

std::pair<float, float> bn_grad_sums(int64_t planes, int64_t n, int64_t stride, const float* x,
                                     const float* dy, float mean, float a, float b, BnActivation act) {
  return for_activation(act, [&]<BnActivation Act>() {
    return bn_grad_sums_as<Act>(planes, n, stride, x, dy, mean, a, b);
  });
}

template <BnActivation Act>
void bn_grad_input_as(int64_t planes, int64_t n, int64_t stride, const float* __restrict x,
                      const float* __restrict dy, float mean, float invstd, float mean_g,
                      float mean_g_xhat, float a, float b, float* __restrict dx) {
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t o = p * stride;
    for (int64_t i = o; i < o + n; ++i) {
      const float xhat = (x[i] - mean) * invstd;
      dx[i] = a * (bn_masked<Act>(a, b, x[i], dy[i]) - mean_g - xhat * mean_g_xhat);
    }
  }
}

void bn_grad_input(int64_t planes, int64_t n, int64_t stride, const float* x, const float* dy,
                   float mean, float invstd, float mean_g, float mean_g_xhat, float a, float b,
                   BnActivation act, float* dx) {
  for_activation(act, [&]<BnActivation Act>() {
    bn_grad_input_as<Act>(planes, n, stride, x, dy, mean, invstd, mean_g, mean_g_xhat, a, b, dx);
  });
}

template <BnActivation Act>
void bn_grad_input_eval_as(int64_t planes, int64_t n, int64_t stride, const float* __restrict x,
                           const float* __restrict dy, float a, float b, float* __restrict dx) {
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t o = p * stride;
    for (int64_t i = o; i < o + n; ++i) dx[i] = a * bn_masked<Act>(a, b, x[i], dy[i]);
  }
}

void bn_grad_input_eval(int64_t planes, int64_t n, int64_t stride, const float* x, const float* dy,
                        float a, float b, BnActivation act, float* dx) {
  for_activation(act, [&]<BnActivation Act>() { bn_grad_input_eval_as<Act>(planes, n, stride, x, dy, a, b, dx); });
}

BatchNormLoops make_batchnorm_loops() {
  return {bn_moments, bn_normalize, bn_grad_sums, bn_grad_input, bn_grad_input_eval};
}

}  // namespace
}  // namespace fer::cpu
