// The bf16 direct convolution's conversions (Bf16PackKernels in conv2d_bf16_microkernel.h) on
// AVX-512: 16 values rounded at a time. The rows are plain loads; dy's pixel pairs are a
// transpose (output channels across, pixels down), made in registers along the grid's rows and by
// gathers where a row ends. The reference (conv2d_direct.cpp) writes the same bits one value at a
// time; tests/test_conv_bf16.cpp compares them. Compiled with the AVX-512 flags (CMakeLists.txt),
// called only where CPUID reports AVX-512.
#include <immintrin.h>

#include "kernels/cpu/bf16_lanes_avx512.h"
#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/transpose_avx512.h"

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

// Cells [c, c + 8) of the grid as one run of neighbouring pixels: their count v when the first v
// cells hold pixels pixel[c], pixel[c] + 1, ... and the rest of the eight none (dropped columns
// of a row's end, or the cell past the grid); else -1.
int pixel_run(const int32_t* pixel) {
  int v = 0;
  while (v < 8 && pixel[v] >= 0 && pixel[v] == pixel[0] + v) ++v;
  for (int i = v; i < 8; ++i)
    if (pixel[i] >= 0) return -1;
  return v;
}

// Where a run of four pairs (eight cells) lies on neighbouring pixels, as along a row of the
// grid: the sixteen channels' rows of eight pixels loaded and transposed in registers. Elsewhere
// (row ends that break a run): two gathers per pair and sixteen channels, one per pixel.
void pair_cells(const float* dy, int64_t P, int64_t channels, const int32_t* pixel, int64_t pairs, int nr,
                uint32_t* dyp) {
  const __m512i down_channels = lane_offsets(P);
  for (int64_t p = 0; p < pairs;) {
    const int run = p + 4 <= pairs ? pixel_run(pixel + 2 * p) : -1;
    if (run >= 0) {
      const __mmask8 m = static_cast<__mmask8>((1u << run) - 1u);
      for (int j0 = 0; j0 < nr; j0 += 16) {
        auto row = [&](int j) {  // channel j0 + j's eight cells
          return run > 0 && j0 + j < channels ? _mm256_maskz_loadu_ps(m, dy + (j0 + j) * P + pixel[2 * p])
                                              : _mm256_setzero_ps();
        };
        __m512 rows[8], cells[8];
        for (int j = 0; j < 8; ++j) rows[j] = row_pair(row(j), row(j + 8));
        transpose_16x8(rows, 8, cells);
        for (int q = 0; q < 4; ++q) _mm512_storeu_si512(dyp + (p + q) * nr + j0, bf16_pairs(cells[2 * q], cells[2 * q + 1]));
      }
      p += 4;
      continue;
    }
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
    ++p;
  }
}

}  // namespace

Bf16PackKernels bf16_pack_avx512() { return {"avx512", pair_rows, round_row, pair_cells}; }

}  // namespace fer::cpu
