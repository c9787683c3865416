// The bf16 convolution tiles of conv2d_bf16_microkernel.h, written once over a DotPair type:
//   DotPair::dot(acc, a, b) = acc + the products of the bfloat16 pairs of a and b, per float lane
// Included only by the per-instruction-set files (simd_avx512.cpp, simd_avx512bf16.cpp), each
// with its DotPair in an anonymous namespace, so each file keeps its own instantiation.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

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

// The weight-gradient tile: MR taps x NV * 16 output channels, summed over pixel pairs and
// images, added to C. Per pair: NV loads of dy' pairs, MR broadcasts of a tap's pixel pair (one
// unaligned 32-bit read of the bf16 image), MR * NV dot pairs.
template <class DotPair, int MR, int NV>
void bf16_conv_weight_grad_tile(int64_t images, int64_t pairs, const uint16_t* const* x_rows,
                                int64_t x_image_stride, const uint32_t* dyp, int64_t dyp_image_stride,
                                float* c, int64_t ldc) {
  constexpr int NR = 16 * NV;
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t n = 0; n < images; ++n) {
    const uint16_t* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = x_rows[i] + n * x_image_stride;
    const uint32_t* b = dyp + n * dyp_image_stride;
    for (int64_t p = 0; p < pairs; ++p, b += NR) {
      __m512i bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + 16 * v);
      for (int i = 0; i < MR; ++i) {
        uint32_t pair;  // (x[2p], x[2p + 1]): little-endian puts the even pixel in the low half
        std::memcpy(&pair, x[i] + 2 * p, sizeof pair);
        const __m512i ai = _mm512_set1_epi32(static_cast<int>(pair));
        for (int v = 0; v < NV; ++v) acc[i][v] = DotPair::dot(acc[i][v], ai, bv[v]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float* row = c + i * ldc + 16 * v;
      _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), acc[i][v]));
    }
}

}  // namespace fer::cpu
