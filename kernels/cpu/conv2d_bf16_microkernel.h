// The bf16 micro-kernel of the direct convolution (conv2d_direct.cpp), for CPUs with AVX512-BF16.
//
// VDPBF16PS multiplies pairs of bfloat16 and adds both products to one float lane:
//
//   acc[l] += a.bf16[2l] * b.bf16[2l] + a.bf16[2l + 1] * b.bf16[2l + 1]      (l < 16)
//
// twice the multiply-adds of an fp32 FMA per instruction. The pair is two input channels: the
// padded image is stored with channel pairs interleaved (one 32-bit word per pixel holds channels
// 2p and 2p + 1 as two bfloat16, the even one in the low half), so 16 consecutive pixels of a
// channel pair are one 64-byte load, and a tap (channel pair p, kh, kw) is an offset into it as in
// the fp32 kernel. The weights are packed as the same pairs, MR output channels per step:
//
//   a[t * MR + i] = (w[k0 + i][2p][kh][kw], w[k0 + i][2p + 1][kh][kw])   for pair-tap t = (p, kh, kw)
//   c[i * ldc + q] = sum over t < pairs of  a[t * MR + i] . b[b_offsets[t] + q]   (q < NR pixels)
//
// The tile is written, not accumulated: one call covers every pair-tap of a convolution.
// Written once over a "dot pair" operation (conv2d_bf16_tile.h) and compiled twice: with the
// real instruction (simd_avx512bf16.cpp, chosen when CPUID reports AVX512-BF16 and the products
// run in bf16), and emulated with AVX-512F arithmetic (simd_avx512.cpp), which computes the same
// sums on any AVX-512 CPU so that the packing and the driver are tested where the instruction is
// missing.
#pragma once
#include <cstdint>

namespace fer::cpu {

using Bf16ConvTileFn = void (*)(int64_t pairs, const uint32_t* a, const uint32_t* b,
                                const int32_t* b_offsets, float* c, int64_t ldc);

struct Bf16ConvKernel {
  const char* isa;
  int mr, nr;  // output channels x pixels per tile
  Bf16ConvTileFn run;
};

Bf16ConvKernel bf16_conv_kernel_avx512bf16();  // VDPBF16PS; call only where CPUID reports it
Bf16ConvKernel bf16_conv_kernel_emulated();     // AVX-512F; for tests (slower than fp32)

// The native kernel when the products run in bf16 and the active set has AVX512-BF16; else null
// (the fp32 kernels then multiply bf16-rounded operands: the same numbers, fp32 speed).
const Bf16ConvKernel* active_bf16_conv_kernel();

}  // namespace fer::cpu
