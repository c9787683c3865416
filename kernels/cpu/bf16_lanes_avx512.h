// Sixteen-lane helpers of the AVX-512 layout conversions (conv2d_amx_layout_avx512.cpp,
// conv2d_bf16_pack_avx512.cpp). Include only from files compiled with the AVX-512 flags: the
// helpers are internal to each such file (anonymous namespace), so no AVX-512 copy of them can
// stand in for code that runs on CPUs without it.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace fer::cpu {
namespace {

// (The maskz forms of the shifts and conversions below, with every lane on: GCC 12 warns on the
// plain forms' undefined source operand.)
constexpr __mmask16 kAll = 0xFFFF;

inline __mmask16 first_lanes(int64_t n) {
  return static_cast<__mmask16>((1u << std::clamp<int64_t>(n, 0, 16)) - 1u);
}

// Lane l holds l * step.
inline __m512i lane_offsets(int64_t step) {
  return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                            _mm512_set1_epi32(static_cast<int>(step)));
}

// isa.h's round_to_bf16 on 16 lanes, as bits: round to nearest, ties to even, in the high half
// of each lane (the low half is garbage); a NaN keeps its bits.
inline __m512i round_bf16_high(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
  return _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), bits);
}

// isa.h's to_bf16 on 16 lanes.
inline __m256i to_bf16(__m512 v) {
  return _mm512_maskz_cvtepi32_epi16(kAll, _mm512_maskz_srli_epi32(kAll, round_bf16_high(v), 16));
}

// 16 bf16 pairs as 32-bit words: to_bf16(even) in the low half, to_bf16(odd) in the high half.
inline __m512i bf16_pairs(__m512 even, __m512 odd) {
  return _mm512_or_si512(_mm512_maskz_srli_epi32(kAll, round_bf16_high(even), 16),
                         _mm512_and_si512(round_bf16_high(odd), _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

}  // namespace
}  // namespace fer::cpu
