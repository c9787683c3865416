// The bf16 convolution tile of conv2d_bf16_microkernel.h, written once over a DotPair type:
//   DotPair::dot(acc, a, b) = acc + the products of the bfloat16 pairs of a and b, per float lane
// Included only by the per-instruction-set files (simd_avx512.cpp, simd_avx512bf16.cpp), each
// with its DotPair in an anonymous namespace, so each file keeps its own instantiation.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace fer::cpu {

template <class DotPair, int MR, int NV>
void bf16_conv_tile(int64_t pairs, const uint32_t* a, const uint32_t* b, const int32_t* b_offsets,
                    float* c, int64_t ldc) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t t = 0; t < pairs; ++t) {
    const uint32_t* bt = b + b_offsets[t];
    __m512i bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(bt + 16 * v);
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(static_cast<int>(a[t * MR + i]));
      for (int v = 0; v < NV; ++v) acc[i][v] = DotPair::dot(acc[i][v], ai, bv[v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
}

}  // namespace fer::cpu
