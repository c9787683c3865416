// AVX2 + FMA GEMM micro-kernel, 4 x 24: compiled with -mavx2 -mfma (see gemm_microkernel.h).
//
// 12 accumulators (4 rows x 3 vectors of 8 floats) of the 16 ymm registers, three for B and
// one for the broadcast A value. Per k: 3 loads + 4 broadcasts against 12 FMAs; 12 independent
// accumulators cover the FMA latency of Haswell to Zen 4 (4-5 cycles x 2 ports).
#include <immintrin.h>

#include "kernels/cpu/gemm_microkernel.h"

namespace fer::cpu {

namespace {

constexpr int MR = 4, NR = 24;

void microkernel_4x24(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                      float alpha, float beta) {
  __m256 acc[MR][3];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();

  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), b2 = _mm256_loadu_ps(b + 16);
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += MR;
    b += NR;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 3; ++v) _mm256_storeu_ps(c + i * ldc + 8 * v, _mm256_mul_ps(va, acc[i][v]));
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 3; ++v) {
        float* p = c + i * ldc + 8 * v;
        _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc[i][v], _mm256_mul_ps(vb, _mm256_loadu_ps(p))));
      }
  }
}

}  // namespace

GemmMicroKernel gemm_microkernel_avx2() { return {"avx2", MR, NR, microkernel_4x24}; }

}  // namespace fer::cpu
