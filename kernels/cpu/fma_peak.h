// The machine's measured floating-point peak: chains of independent fused multiply-adds with no
// memory traffic, the ceiling every kernel's GFLOP/s is compared against (bench/bench_cpu.cpp).
#pragma once
#include <cstdint>

#include "kernels/cpu/isa.h"

namespace fer::cpu {

// Runs `iterations` rounds of the set's FMA loop on the calling thread and returns the floating-
// point operations it performed (2 per lane per FMA). avx2 and avx512 sets only.
double fma_peak_run(Isa isa, int64_t iterations);

// Defined in simd_<isa>.cpp.
double fma_peak_avx2(int64_t iterations);
double fma_peak_avx512(int64_t iterations);

}  // namespace fer::cpu
