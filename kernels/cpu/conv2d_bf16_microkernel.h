// The bf16 micro-kernels of the direct convolution (conv2d_direct.cpp), for CPUs with AVX512-BF16:
// the forward tile, then the weight-gradient tile below it.
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

// The weight gradient on VDPBF16PS. Its sum runs over pixels (conv2d_microkernel.h):
//
//   dW^T[r, k] = sum over n, q of  xpad_n[offset(r) + q] * dy'_n[k, q]
//
// so here the pair is two neighbouring grid pixels 2p and 2p + 1. The padded image is a plain
// bfloat16 array (no interleaving): the pair (xpad[j], xpad[j + 1]) is then one 32-bit read at
// element j for any j, even or odd, and a tap's offset may be either; that word is broadcast.
// dy' is packed pixel-pair-major, NR output channels per panel, so one 64-byte load holds 16
// channels' pairs:
//
//   dyp[p * NR + j] = (dy'[k0 + j][2p], dy'[k0 + j][2p + 1])     (the even pixel in the low half)
//
// with the grid's cell count rounded up to even (dy' is zero in the dropped columns and in that
// extra cell). A tile of MR taps x NR channels stays in registers and is added to C:
//
//   C[i * ldc + j] += sum over n < images, p < pairs of
//                       (x_rows[i] + n*x_image_stride)[2p, 2p + 1] . dyp[n*dyp_image_stride + p*NR + j]
//
// Compiled twice like the forward tile: natively and emulated.
using Bf16ConvWeightGradFn = void (*)(int64_t images, int64_t pairs, const uint16_t* const* x_rows,
                                      int64_t x_image_stride, const uint32_t* dyp,
                                      int64_t dyp_image_stride, float* c, int64_t ldc);

struct Bf16ConvWeightGradKernel {
  const char* isa;
  int mr, nr;  // taps x output channels per tile
  Bf16ConvWeightGradFn run;
};

Bf16ConvWeightGradKernel bf16_conv_weight_grad_kernel_avx512bf16();  // call only where CPUID reports it
Bf16ConvWeightGradKernel bf16_conv_weight_grad_kernel_emulated();     // AVX-512F; for tests

// As active_bf16_conv_kernel(), for the weight gradient.
const Bf16ConvWeightGradKernel* active_bf16_conv_weight_grad_kernel();

// The conversions from the engine's floats into the layouts above, around the tiles. Written
// twice: plainly (conv2d_direct.cpp, the reference) and on AVX-512 (conv2d_bf16_pack_avx512.cpp);
// both round with to_bf16 (isa.h), so they write the same bits (tests/test_conv_bf16.cpp).
struct Bf16PackKernels {
  const char* name;
  // The forward's channel pairs: out[i] = to_bf16(even[i]) | to_bf16(odd[i]) << 16, i < n; a
  // null odd row is zeros (the last channel of an odd count).
  void (*pair_rows)(const float* even, const float* odd, int64_t n, uint32_t* out);
  // The weight gradient's image: out[i] = to_bf16(x[i]), i < n.
  void (*round_row)(const float* x, int64_t n, uint16_t* out);
  // The weight gradient's dy of one image as pixel pairs, for `channels` <= nr output channels
  // whose planes of P pixels are P floats apart from dy on: for every pair p < pairs and j < nr,
  //   dyp[p * nr + j] = to_bf16(dy[j * P + pixel[2p]]) | to_bf16(dy[j * P + pixel[2p + 1]]) << 16
  // where pixel[q] is grid cell q's output pixel; a half is zero where pixel[q] < 0 (a dropped
  // column of the grid) and the word is zero for j >= channels.
  void (*pair_cells)(const float* dy, int64_t P, int64_t channels, const int32_t* pixel, int64_t pairs,
                     int nr, uint32_t* dyp);
};

Bf16PackKernels bf16_pack_reference();  // plain C++
Bf16PackKernels bf16_pack_avx512();     // AVX-512F/BW; call only where isa_supported(Isa::Avx512)
// The AVX-512 conversions where the CPU has AVX-512 (every CPU with a bf16 tile does), else the
// reference.
const Bf16PackKernels& active_bf16_pack_kernels();

}  // namespace fer::cpu
