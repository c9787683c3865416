// The AVX-512 (F, DQ, BW, VL) kernel set: simd_kernels.h's templates on 16-float registers, compiled with
// this set's flags (CMakeLists.txt) and called only when CPUID reports it (isa.cpp).
// 8 x 48 GEMM tiles (24 of the 32 zmm registers accumulate), 12 x 32 weight-gradient tiles.
#include <immintrin.h>

#include "kernels/cpu/conv2d_microkernel.h"
#include "kernels/cpu/fma_peak.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/simd_kernels.h"

namespace fer::cpu {

namespace {
struct Avx512 {
  using V = __m512;
  static constexpr int width = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // The first n < 16 lanes (the rest zero / untouched): masked loads never touch memory past n.
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
  static __mmask16 lanes(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
};
}  // namespace

GemmMicroKernel gemm_microkernel_avx512() {
  return {"avx512", 8, 3 * 16, gemm_microkernel<Avx512, 8, 3>};
}

VectorKernels vector_kernels_avx512() { return {"avx512", dot<Avx512>, axpy<Avx512>, taps_sum<Avx512>}; }

ConvWeightGradKernel conv_weight_grad_kernel_avx512() {
  return {"avx512", 12, 2 * 16, conv_weight_grad<Avx512, 12>};
}

double fma_peak_avx512(int64_t iterations) { return fma_peak<Avx512>(iterations); }

}  // namespace fer::cpu
