// The bf16 direct convolution's conversions (Bf16PackKernels in conv2d_bf16_microkernel.h) on
// AVX-512: 16 values rounded at a time. The rows are plain loads; dy's pixel pairs are a
// transpose (output channels across, pixels down), read with two gathers per 16 channels, one for
// each pixel of the pair. The reference (conv2d_direct.cpp) writes the same bits one value at a
// time; tests/test_conv_bf16.cpp compares them. Compiled with the AVX-512 flags (CMakeLists.txt),
// called only where CPUID reports AVX-512.
#include <immintrin.h>

#include "kernels/cpu/bf16_lanes_avx512.h"
#include "kernels/cpu/conv2d_bf16_microkernel.h"

namespace fer::cpu {

namespace {

void pair_rows(const float* even, const float* odd, int64_t n, uint32_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 e = _mm512_maskz_loadu_ps(m, even + i);
    const __m512 o = odd ? _mm512_maskz_loadu_ps(m, odd + i) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(out + i, m, bf16_pairs(e, o));
  }
}

void round_row(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    _mm256_mask_storeu_epi16(out + i, m, to_bf16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void pair_cells(const float* dy, int64_t P, int64_t channels, const int32_t* pixel, int64_t pairs, int nr,
                uint32_t* dyp) {
  const __m512i down_channels = lane_offsets(P);
  for (int64_t p = 0; p < pairs; ++p) {
    const int32_t a = pixel[2 * p], b = pixel[2 * p + 1];
    for (int j0 = 0; j0 < nr; j0 += 16) {
      const __mmask16 m = first_lanes(channels - j0);
      const float* plane = dy + j0 * P;
      const __m512 e = a >= 0 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, down_channels, plane + a, 4)
                              : _mm512_setzero_ps();
      const __m512 o = b >= 0 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, down_channels, plane + b, 4)
                              : _mm512_setzero_ps();
      _mm512_storeu_si512(dyp + p * nr + j0, bf16_pairs(e, o));
    }
  }
}

}  // namespace

Bf16PackKernels bf16_pack_avx512() { return {"avx512", pair_rows, round_row, pair_cells}; }

}  // namespace fer::cpu
