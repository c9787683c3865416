// The AMX convolution's layouts (AmxLayoutKernels in conv2d_amx.h) on AVX-512: the conversions
// between NCHW floats and the tiles' bf16 layouts are transposes, done 16 values at a time with
// gathers (reading along a stride, writing in order) and scatters (the reverse). The reference
// (conv2d_amx.cpp) writes the same bits one value at a time; tests/test_conv_amx.cpp compares them.
// Compiled with the AVX-512 flags (CMakeLists.txt), called only where CPUID reports AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/bf16_lanes_avx512.h"
#include "kernels/cpu/conv2d_amx.h"

namespace fer::cpu {

namespace {

// Each pixel's channels, 16 at a time: one gather down the channel planes of xn.
void pack_image(const Conv2dGeometry& g, const AmxGrid& grid, const float* xn, uint16_t* xs) {
  std::memset(xs, 0, static_cast<size_t>(grid.pixels * grid.channels) * sizeof(uint16_t));
  const int64_t plane = g.H * g.W;
  const __m512i down_channels = lane_offsets(plane);
  for (int64_t h = 0; h < g.H; ++h)
    for (int64_t w = 0; w < g.W; ++w) {
      uint16_t* pixel = xs + grid.pixel(g, h, w) * grid.channels;
      const float* src = xn + h * g.W + w;
      for (int64_t c0 = 0; c0 < g.C; c0 += 16) {  // lanes past C stay zero: channels is a multiple of 32
        const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), first_lanes(g.C - c0), down_channels,
                                                  src + c0 * plane, 4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(pixel + c0), to_bf16(v));
      }
    }
}

// 16 output pixels of a row at a time: one gather across their cells per output channel.
void copy_out(const Conv2dGeometry& g, const AmxGrid& grid, const float* out, const float* bias, float* yn) {
  const int64_t P = g.OH * g.OW;
  const __m512i across_cells = lane_offsets(grid.k_pad);
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow0 = 0; ow0 < g.OW; ow0 += 16) {
      const __mmask16 m = first_lanes(g.OW - ow0);
      const float* cells = out + (oh * grid.Wp + ow0) * grid.k_pad;
      float* dst = yn + oh * g.OW + ow0;
      for (int64_t k = 0; k < g.K; ++k) {
        __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, across_cells, cells + k, 4);
        if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[k]));
        _mm512_mask_storeu_ps(dst + k * P, m, v);
      }
    }
}

void pack_rows(const Conv2dGeometry& g, const AmxGrid& grid, const float* dyn, uint16_t* rows) {
  std::memset(rows, 0, static_cast<size_t>(grid.k_pad * grid.cells) * sizeof(uint16_t));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const float* src = dyn + (k * g.OH + oh) * g.OW;
      uint16_t* dst = rows + k * grid.cells + oh * grid.Wp;
      for (int64_t ow0 = 0; ow0 < g.OW; ow0 += 16) {
        const __mmask16 m = first_lanes(g.OW - ow0);
        _mm256_mask_storeu_epi16(dst + ow0, m, to_bf16(_mm512_maskz_loadu_ps(m, src + ow0)));
      }
    }
}

// Two pixel rows of xs zero-extended to 32-bit words and merged, the second into the high halves.
void pair_image(const AmxGrid& grid, const uint16_t* xs, uint32_t* x2) {
  const int64_t rows = grid.pair_rows(), C = grid.channels;
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t p = 0; p < rows; ++p) {
      const uint16_t* first = xs + (2 * p + s) * C;
      const uint16_t* second = first + C;
      uint32_t* dst = x2 + (s * rows + p) * C;
      for (int64_t c = 0; c < C; c += 16) {
        const __m512i lo = _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + c)));
        const __m512i hi = _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second + c)));
        _mm512_storeu_si512(dst + c, _mm512_or_si512(lo, _mm512_maskz_slli_epi32(kAll, hi, 16)));
      }
    }
}

// A tile row is 16 output channels x one channel pair: lane l of a gather is output channel
// l / 2 (of eight) and channel 2j + l % 2, so two gathers give the row's 32 values in order.
void pack_weights(const Conv2dGeometry& g, const AmxGrid& grid, const float* w, int64_t kb0, int64_t kb1,
                  uint16_t* packed) {
  const int64_t ntaps = g.KH * g.KW, blocks = grid.channels / 32;
  const __m512i pair_lane = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);  // l / 2
  const __m512i half_lane = _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);  // l % 2
  const __m512i offsets = _mm512_add_epi32(_mm512_mullo_epi32(pair_lane, _mm512_set1_epi32(static_cast<int>(g.C * ntaps))),
                                           _mm512_mullo_epi32(half_lane, _mm512_set1_epi32(static_cast<int>(ntaps))));
  const __m512i eight_rows = _mm512_set1_epi32(static_cast<int>(8 * g.C * ntaps));
  const __m512i K = _mm512_set1_epi32(static_cast<int>(g.K)), C = _mm512_set1_epi32(static_cast<int>(g.C));
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    // Lanes whose output channel exists, in the first and the second eight of the tile's 16.
    const __m512i k_lo = _mm512_add_epi32(pair_lane, _mm512_set1_epi32(static_cast<int>(16 * kb)));
    const __mmask16 k_lo_ok = _mm512_cmplt_epi32_mask(k_lo, K);
    const __mmask16 k_hi_ok = _mm512_cmplt_epi32_mask(_mm512_add_epi32(k_lo, _mm512_set1_epi32(8)), K);
    for (int64_t cb = 0; cb < blocks; ++cb)
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t c = 32 * cb + 2 * j;
        const __mmask16 c_ok = _mm512_cmplt_epi32_mask(_mm512_add_epi32(half_lane, _mm512_set1_epi32(static_cast<int>(c))), C);
        const __mmask16 lo_ok = c_ok & k_lo_ok, hi_ok = c_ok & k_hi_ok;
        for (int64_t t = 0; t < ntaps; ++t) {
          const float* base = w + (16 * kb * g.C + c) * ntaps + t;
          const __m512 lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lo_ok, offsets, base, 4);
          const __m512 hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), hi_ok, _mm512_add_epi32(offsets, eight_rows),
                                                     base, 4);
          uint16_t* row = packed + ((kb * ntaps + t) * blocks + cb) * 512 + j * 32;
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), to_bf16(lo));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 16), to_bf16(hi));
        }
      }
  }
}

// 16 channels of one output channel and tap: the parts' rows added, then scattered ntaps apart.
void sum_weight_grads(const Conv2dGeometry& g, const AmxGrid& grid, const float* dwt, int64_t part, int parts,
                      int64_t k0, int64_t k1, float* dw) {
  const int64_t ntaps = g.KH * g.KW;
  const __m512i along_taps = lane_offsets(ntaps);
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < g.C; c0 += 16) {
      const __mmask16 m = first_lanes(g.C - c0);
      for (int64_t t = 0; t < ntaps; ++t) {
        const float* src = dwt + (t * grid.k_pad + k) * grid.channels + c0;
        __m512 sum = _mm512_maskz_loadu_ps(m, src);
        for (int i = 1; i < parts; ++i) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, src + i * part));
        _mm512_mask_i32scatter_ps(dw + (k * g.C + c0) * ntaps + t, m, along_taps, sum, 4);
      }
    }
}

}  // namespace

AmxLayoutKernels amx_layout_avx512() {
  return {"avx512", pack_image, copy_out, pack_rows, pair_image, pack_weights, sum_weight_grads};
}

}  // namespace fer::cpu
