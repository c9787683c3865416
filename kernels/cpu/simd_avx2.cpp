// The AVX2 + FMA kernel set: simd_kernels.h's templates on 8-float registers, compiled with
// this set's flags (CMakeLists.txt) and called only when CPUID reports it (isa.cpp).
// 4 x 24 GEMM tiles (12 of the 16 ymm registers accumulate), 6 x 16 weight-gradient tiles.
#include <immintrin.h>

#include "kernels/cpu/conv2d_microkernel.h"
#include "kernels/cpu/fma_peak.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/simd_kernels.h"

namespace fer::cpu {

namespace {
struct Avx2 {
  using V = __m256;
  static constexpr int width = 8;
  static constexpr int registers = 16;  // ymm0-15
  static V zero() { return _mm256_setzero_ps(); }
  static V broadcast(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  // p[idx[l]] in lane l (Winograd's tile windows).
  static V gather(const float* p, const int32_t* idx) { return _mm256_i32gather_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)), 4); }
  // The first n < 8 lanes (the rest zero / untouched): masked loads never touch memory past n.
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, lanes(n)); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, lanes(n), v); }
  static __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};
}  // namespace

GemmMicroKernel gemm_microkernel_avx2() {
  return {"avx2", 4, 3 * 8, gemm_microkernel<Avx2, 4, 3>};
}

VectorKernels vector_kernels_avx2() { return {"avx2", dot<Avx2>, axpy<Avx2>, taps_sum<Avx2>,
                                                   winograd_input<Avx2>, winograd_output<Avx2>,
                                                   winograd_grad<Avx2>}; }

ConvWeightGradKernel conv_weight_grad_kernel_avx2() {
  return {"avx2", 6, 2 * 8, conv_weight_grad<Avx2, 6>};
}

double fma_peak_avx2(int64_t iterations) { return fma_peak<Avx2>(iterations); }

}  // namespace fer::cpu
