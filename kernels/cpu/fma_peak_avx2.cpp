// The FMA peak loop for avx2 (see fma_peak.h): 16 independent accumulators, enough to cover the
// FMA latency on two ports of every core we run on, and nothing but FMAs in the loop.
#include <immintrin.h>

#include "kernels/cpu/fma_peak.h"

namespace fer::cpu {

double fma_peak_avx2(int64_t iterations) {
  __m256 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < 16; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(64) float out[8];
  _mm256_store_ps(out, sum);
  volatile float sink = out[0];  // keeps the loop alive
  (void)sink;
  return 2.0 * 8 * 16 * static_cast<double>(iterations);
}

}  // namespace fer::cpu
