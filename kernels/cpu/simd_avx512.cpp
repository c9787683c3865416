// The AVX-512 (F, DQ, BW, VL) kernel set: simd_kernels.h's templates on 16-float registers, compiled with
// this set's flags (CMakeLists.txt) and called only when CPUID reports it (isa.cpp).
// 8 x 48 GEMM tiles (24 of the 32 zmm registers accumulate), 12 x 32 weight-gradient tiles.
#include <immintrin.h>

#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/conv2d_bf16_tile.h"
#include "kernels/cpu/conv2d_microkernel.h"
#include "kernels/cpu/fma_peak.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/simd_kernels.h"
#include "kernels/cpu/transpose_avx512.h"

namespace fer::cpu {

namespace {
struct Avx512 {
  using V = __m512;
  static constexpr int width = 16;
  static constexpr int registers = 32;  // zmm0-31
  static V zero() { return _mm512_setzero_ps(); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  // p[idx[l]] in lane l (Winograd's tile windows).
  static V gather(const float* p, const int32_t* idx) {  // (the masked form: the plain one warns under GCC 12)
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, _mm512_loadu_si512(idx), p, 4);
  }
  // The first n < 16 lanes (the rest zero / untouched): masked loads never touch memory past n.
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
  static __mmask16 lanes(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  // d[b] = (p[idx[0] + b], ..., p[idx[15] + b]) for b < count <= 8: the first eight floats of
  // sixteen rows, by row loads and a transposition in registers, as the avx2 set does (eight
  // floats read per row: the caller leaves 8 - count floats readable past each). Gathers instead:
  // one 64x64 layer at 24x24 (batch 64) spent twice as long in the input transform as in its
  // products on a Zen 5.
  static void columns(const float* p, const int32_t* idx, int count, V* d) {
    V rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = row_pair(_mm256_loadu_ps(p + idx[i]), _mm256_loadu_ps(p + idx[i + 8]));
    transpose_16x8(rows, count, d);
  }
  // The nine values of sixteen 3x3 kernels (kernel i at g + i * stride), d[e] holding value e
  // of each in its lanes: the first eight of each kernel transposed in registers as columns()
  // does, the ninth gathered (a gather per value before: nine where one is left now).
  static void taps9(const float* g, int64_t stride, V* d) {
    V rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = row_pair(_mm256_loadu_ps(g + i * stride), _mm256_loadu_ps(g + (i + 8) * stride));
    transpose_16x8(rows, 8, d);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(static_cast<int>(stride)));
    d[8] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, idx, g + 8, 4);
  }
};
// VDPBF16PS done with AVX-512F: a bfloat16 is the high half of a float, so the odd elements of
// a pair are the words masked to their high halves and the even ones the words shifted left by
// 16; two FMAs add their products (the odd one first, as the instruction's definition orders
// them).
struct EmulatedDotPair {
  static __m512 dot(__m512 acc, __m512i a, __m512i b) {
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, high)),
                          _mm512_castsi512_ps(_mm512_and_si512(b, high)), acc);
    const __mmask16 all = 0xFFFF;  // (the maskz form: GCC 12 warns on the plain one's undefined source)
    return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, a, 16)),
                           _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, b, 16)), acc);
  }
};
}  // namespace

Bf16ConvKernel bf16_conv_kernel_emulated() {
  return {"avx512 (emulated bf16)", 8, 3 * 16, bf16_conv_tile<EmulatedDotPair, 8, 3>};
}

Bf16ConvWeightGradKernel bf16_conv_weight_grad_kernel_emulated() {
  return {"avx512 (emulated bf16)", 12, 2 * 16, bf16_conv_weight_grad_tile<EmulatedDotPair, 12, 2>};
}

GemmMicroKernel gemm_microkernel_avx512() {
  return {"avx512", 8, 3 * 16, gemm_microkernel<Avx512, 8, 3>};
}

GemmMicroKernel few_rows_microkernel_avx512() {
  return {"avx512", 3, 4 * 16, gemm_microkernel<Avx512, 3, 4>};
}

VectorKernels vector_kernels_avx512() { return {"avx512", Avx512::width, dot<Avx512>, axpy<Avx512>, taps_sum<Avx512>, taps_dot<Avx512>,
                                                       winograd_input<Avx512>, winograd_output<Avx512>, winograd_kernels<Avx512>,
                                                   winograd_grad<Avx512>}; }

ConvWeightGradKernel conv_weight_grad_kernel_avx512() {
  return {"avx512", 12, 2 * 16, conv_weight_grad<Avx512, 12>};
}

double fma_peak_avx512(int64_t iterations) { return fma_peak<Avx512>(iterations); }

}  // namespace fer::cpu
