// A transposition in AVX-512 registers, for the files compiled with the AVX-512 flags
// (simd_avx512.cpp's Winograd input transform, conv2d_bf16_pack_avx512.cpp's dy pairs): internal
// to each such file (anonymous namespace), so no AVX-512 copy can stand in for code that runs on
// CPUs without it.
#pragma once
#include <immintrin.h>

namespace fer::cpu {
namespace {

// Sixteen rows of eight floats into eight columns of sixteen lanes: rows[i] holds row i in its low
// 256 bits and row i + 8 in its high 256 bits (i < 8); col[b] = (row 0 [b], ..., row 15 [b]) for
// b < count <= 8. The 8x8 transposition of the avx2 set (unpacks and shuffles within 128-bit
// lanes) transposes both halves at once; a two-source permutation then joins the four-row pieces
// of a column. Gathering a column instead costs several times more on AMD cores.
inline void transpose_16x8(const __m512* rows, int count, __m512* col) {
  // (The maskz forms of the unpacks, every lane on: GCC 12 warns on the plain forms' undefined
  // source operand.)
  const __mmask16 all = 0xFFFF;
  auto lo = [&](__m512 a, __m512 b) { return _mm512_maskz_unpacklo_ps(all, a, b); };
  auto hi = [&](__m512 a, __m512 b) { return _mm512_maskz_unpackhi_ps(all, a, b); };
  const __m512* r = rows;
  const __m512 t0 = lo(r[0], r[1]), t1 = hi(r[0], r[1]), t2 = lo(r[2], r[3]), t3 = hi(r[2], r[3]);
  const __m512 t4 = lo(r[4], r[5]), t5 = hi(r[4], r[5]), t6 = lo(r[6], r[7]), t7 = hi(r[6], r[7]);
  // s[b]'s 128-bit lanes: (column b, rows 0-3), (column b + 4, rows 0-3), the same of rows 8-11;
  // s[b + 4]: the same of rows 4-7 and 12-15 (b < 4).
  const __m512 s[8] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE),
                       _mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xEE),
                       _mm512_shuffle_ps(t4, t6, 0x44), _mm512_shuffle_ps(t4, t6, 0xEE),
                       _mm512_shuffle_ps(t5, t7, 0x44), _mm512_shuffle_ps(t5, t7, 0xEE)};
  const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
  const __m512i high = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int b = 0; b < count; ++b) col[b] = _mm512_permutex2var_ps(s[b % 4], b < 4 ? low : high, s[b % 4 + 4]);
}

// Row i and row i + 8 as one register for transpose_16x8.
inline __m512 row_pair(__m256 row, __m256 row_plus_8) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(row), row_plus_8, 1);
}

}  // namespace
}  // namespace fer::cpu
