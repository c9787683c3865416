// AVX-512 GEMM micro-kernel, 8 x 48: compiled with -mavx512f (see gemm_microkernel.h).
//
// 24 accumulators (8 rows x 3 vectors of 16 floats) stay in zmm registers for the whole k loop;
// per k it loads three vectors of B, broadcasts eight A values and issues 24 FMAs. Two FMA
// ports retire that in 12 cycles while the 11 loads need 6: the loop is FMA-bound, as it should
// be. 24 independent accumulators also cover the FMA latency (4 cycles x 2 ports = 8 needed).
#include <immintrin.h>

#include "kernels/cpu/gemm_microkernel.h"

namespace fer::cpu {

namespace {

constexpr int MR = 8, NR = 48;

void microkernel_8x48(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                      float alpha, float beta) {
  __m512 acc[MR][3];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();

  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += MR;
    b += NR;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 3; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, _mm512_mul_ps(va, acc[i][v]));
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 3; ++v) {
        float* p = c + i * ldc + 16 * v;
        _mm512_storeu_ps(p, _mm512_fmadd_ps(va, acc[i][v], _mm512_mul_ps(vb, _mm512_loadu_ps(p))));
      }
  }
}

}  // namespace

GemmMicroKernel gemm_microkernel_avx512() { return {"avx512", MR, NR, microkernel_8x48}; }

}  // namespace fer::cpu
