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
  // r[i][j] <-> r[j][i]: the 8x8 floats of eight registers transposed in registers.
  static void transpose8(V* r) {
    const V t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const V t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const V t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const V t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const V s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const V s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const V s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const V s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
  }
  // d[b] = (p[idx[0] + b], ..., p[idx[7] + b]) for b < count <= 8: the first floats of eight
  // rows, each lane's row in its lane, by eight row loads and a transposition (eight floats read
  // per row: the caller leaves 8 - count floats readable past each). A gather per column costs
  // several times more on AMD cores.
  static void columns(const float* p, const int32_t* idx, int count, V* d) {
    V r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(p + idx[i]);
    transpose8(r);
    for (int b = 0; b < count; ++b) d[b] = r[b];
  }
  // The nine values of eight 3x3 kernels (kernel i at g + i * stride), d[e] holding value e of
  // each in its lanes: the first eight of each kernel transposed, the ninth inserted.
  static void taps9(const float* g, int64_t stride, V* d) {
    for (int i = 0; i < 8; ++i) d[i] = _mm256_loadu_ps(g + i * stride);
    transpose8(d);
    d[8] = _mm256_setr_ps(g[8], g[stride + 8], g[2 * stride + 8], g[3 * stride + 8], g[4 * stride + 8],
                          g[5 * stride + 8], g[6 * stride + 8], g[7 * stride + 8]);
  }
};
}  // namespace

GemmMicroKernel gemm_microkernel_avx2() {
  return {"avx2", 4, 3 * 8, gemm_microkernel<Avx2, 4, 3>};
}

GemmMicroKernel few_rows_microkernel_avx2() {
  return {"avx2", 3, 4 * 8, gemm_microkernel<Avx2, 3, 4>};
}

VectorKernels vector_kernels_avx2() { return {"avx2", Avx2::width, dot<Avx2>, axpy<Avx2>, taps_sum<Avx2>, taps_dot<Avx2>,
                                                   winograd_input<Avx2>, winograd_output<Avx2>, winograd_kernels<Avx2>,
                                                   winograd_grad<Avx2>}; }

ConvWeightGradKernel conv_weight_grad_kernel_avx2() {
  return {"avx2", 6, 2 * 8, conv_weight_grad<Avx2, 6>};
}

double fma_peak_avx2(int64_t iterations) { return fma_peak<Avx2>(iterations); }

}  // namespace fer::cpu
