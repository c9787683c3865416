// What a forward convolution does to its sums on the way into y: y[k] = act(sum[k] + bias[k]),
// act none, ReLU or ReLU6. A frozen model's convolutions carry their folded batchnorm as the bias
// and the activation after it (Conv2d::fold_batchnorm); every forward kernel applies both in the
// stores that write y, while the sums are in registers or L1, instead of a pass of its own over
// y afterwards. SSE only (baseline x86-64): the stores are bound by memory, not arithmetic.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "engine/activation.h"

namespace fer::cpu {

class ConvOutput {
 public:
  ConvOutput(const float* bias, BnActivation act)
      : bias_(bias), clamps_(act != BnActivation::None),
        hi_(act == BnActivation::ReLU6 ? 6.0f : std::numeric_limits<float>::infinity()) {}

  // Nothing to do beyond storing the sums: no bias, no activation.
  bool plain() const { return !bias_ && !clamps_; }
  float bias(int64_t k) const { return bias_ ? bias_[k] : 0.0f; }

  // act(v + b). A NaN stays NaN, as through a separate ReLU (comparisons with NaN are false).
  float operator()(float v, float b) const {
    v += b;
    if (clamps_) {
      v = v < 0.0f ? 0.0f : v;
      v = v > hi_ ? hi_ : v;
    }
    return v;
  }
  // Four lanes: MAXPS/MINPS return their second operand when either is NaN, so v goes second.
  __m128 operator()(__m128 v, __m128 b) const {
    v = _mm_add_ps(v, b);
    if (clamps_) v = _mm_min_ps(_mm_set1_ps(hi_), _mm_max_ps(_mm_setzero_ps(), v));
    return v;
  }

  // dst[i] = act(src[i] + b) for i < n; src may be dst. (The loops run on a copy of *this, whose
  // fields then stay in registers: the stores through dst cannot change them.)
  void store(const float* src, float* dst, int64_t n, float b) const {
    const ConvOutput self = *this;
    const __m128 vb = _mm_set1_ps(b);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(dst + i, self(_mm_loadu_ps(src + i), vb));
    for (; i < n; ++i) dst[i] = self(src[i], b);
  }
  // The channels [k0, k1) of one image's output [K, P] in place: y[k, p] = act(y[k, p] + bias[k]).
  void apply(float* y, int64_t k0, int64_t k1, int64_t P) const {
    if (plain()) return;
    for (int64_t k = k0; k < k1; ++k) store(y + k * P, y + k * P, P, bias(k));
  }
  // The activation alone, in place over n values whose bias is already in (the AMX path).
  void activate(float* y, int64_t n) const {
    if (clamps_) store(y, y, n, 0.0f);
  }

 private:
  const float* bias_;
  bool clamps_;
  float hi_;
};

}  // namespace fer::cpu
