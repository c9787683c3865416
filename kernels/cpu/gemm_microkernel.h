// The register-blocked heart of the GEMM (kernels/cpu/gemm.cpp): one MR x NR tile of C.
//
// The driver packs A into panels of MR rows and B into panels of NR columns, each laid out so
// that step k of the product reads MR consecutive floats of A and NR consecutive floats of B:
//
//   a_panel[k * MR + i] = A(i, k)        b_panel[k * NR + j] = B(k, j)        k in [0, kc)
//
// A micro-kernel keeps the whole MR x NR tile of C in vector registers, and for each k
// broadcasts one A value per row and multiplies it with the NR values of B (rank-1 update):
//
//   acc[i][j] += a_panel[k*MR + i] * b_panel[k*NR + j]
//
// then writes  C(i, j) = alpha * acc[i][j] + beta * C(i, j)  (C is not read when beta == 0, so
// it may hold garbage such as NaN). The tile is always full: the driver handles the ragged edges
// of C by running the kernel into a scratch tile and copying the part that exists.
//
// Each instruction set has its own file (gemm_avx2.cpp, gemm_avx512.cpp) compiled with that
// set's flags; nothing else of the engine is, so those files use no inline function of any
// shared header (the linker could otherwise keep their AVX-512 copy for the whole program).
#pragma once
#include <cstdint>

namespace fer::cpu {

using GemmMicroKernelFn = void (*)(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                                   int64_t ldc, float alpha, float beta);

struct GemmMicroKernel {
  const char* isa;
  int mr, nr;             // tile of C held in registers
  GemmMicroKernelFn run;
};

// Defined in the per-ISA files; call only after isa_supported() said yes.
GemmMicroKernel gemm_microkernel_avx2();    // 4 x 24: 12 of the 16 ymm registers accumulate
GemmMicroKernel gemm_microkernel_avx512();  // 8 x 48: 24 of the 32 zmm registers accumulate

}  // namespace fer::cpu
