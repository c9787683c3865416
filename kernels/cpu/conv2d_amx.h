// Convolution on AMX tiles (TDPBF16PS), for --precision bf16 on CPUs with AMX-BF16.
//
// An AMX tile multiply takes a 16 x 32 bf16 tile A and a 32 x 16 bf16 tile B and adds their
// product to a 16 x 16 fp32 tile C: 8,192 multiply-adds per instruction, against 32 for an
// AVX-512 VDPBF16PS. Tiles are loaded row by row from memory with one fixed stride between rows,
// so a convolution must be laid out such that every tile is 16 evenly spaced runs of 64 bytes.
// The padded-width grid of the direct convolution (conv2d_direct.cpp: output pixel q reads input
// pixel q + offset(kh, kw)) gives that when the image is stored channels-last (NHWC):
//
// Forward, per image: out[q][k] = sum over taps t, channels c of x[q + offset(t)][c] * w[k][c][t]
//   A = 16 consecutive grid pixels x 32 channels of tap t: rows are pixels, `channels` apart;
//   B = the weights of tap t for 32 channels (16 pairs) x 16 output channels, packed once;
//   C = 16 pixels x 16 output channels, transposed back to NCHW when copied out.
//   The input gradient is a forward convolution too (conv2d.cpp rotates the kernels), so it
//   lands here as well.
//
// Weight gradient: dW[k][c][t] = sum over images n, pixels q of dy_n[k][q] * x_n[c][q + offset(t)]
//   A = 16 output channels x 32 pixels of dy (NCHW rows in bf16: pairs of consecutive pixels);
//   B = 16 pixel pairs x 16 input channels: the image stored pair-interleaved (row p holds every
//   channel of pixels 2p + s and 2p + s + 1, side by side), once for each phase s in {0, 1} since
//   q + offset(t) may be odd.
//
// Operands are rounded to bfloat16 (nearest even) when packed; sums are fp32. Channel counts are
// padded with zeros to multiples of 32 and the grid to a multiple of 32 pixels, so the layers
// worth it are those with at least 16 input and output channels (conv2d_amx_applies). The tile
// loops (conv2d_amx_tiles.h) are compiled twice: with the AMX instructions (simd_amxbf16.cpp,
// called only where CPUID and Linux grant AMX) and as a plain C++ emulation that tests the
// packing and the loops on any CPU.
#pragma once
#include <cstdint>

#include "engine/backend.h"

namespace fer::cpu {

struct AmxForwardArgs {
  const uint16_t* x;       // NHWC bf16 image: pixel p's channels at x + p * channels
  int64_t channels;        // a multiple of 32
  const int32_t* taps;     // pixel offset of each tap, kh * Wp + kw
  int64_t ntaps;
  const uint16_t* w;       // packed weights: tile (output block kb, tap t, channel block cb) at
                           // w + ((kb * ntaps + t) * channels / 32 + cb) * 512
  float* out;              // out[q * ldo + k]
  int64_t ldo;
  int64_t cells;           // grid pixels, a multiple of 32
  int64_t k_pad;           // output channels, a multiple of 32
};

struct AmxWeightGradArgs {
  const uint16_t* dy;      // per image [k_pad][cells] bf16, images image_dy apart
  int64_t image_dy;
  const uint16_t* x2;      // per image, phase s at x2 + s * phase: row p = channels x pixels (2p + s, 2p + s + 1)
  int64_t phase, image_x2;
  int64_t images, cells, channels, k_pad;  // cells, channels and k_pad multiples of 32
  const int32_t* taps;
  int64_t ntaps;
  float* dwt;              // dwt[(t * k_pad + k) * channels + c], added to
};

struct AmxConvKernels {
  const char* name;
  void (*forward)(const AmxForwardArgs&);
  void (*weight_grad)(const AmxWeightGradArgs&);
};

AmxConvKernels amx_conv_kernels_native();    // AMX-BF16; call only where isa_supported(Isa::Amx)
AmxConvKernels amx_conv_kernels_emulated();  // plain C++, any CPU (slow: for tests)

// The native kernels when the products run in bf16 and the active set is amx; else null.
const AmxConvKernels* active_amx_conv_kernels();

// Stride 1, no dilation, one group, at least 16 input and 16 output channels.
bool conv2d_amx_applies(const Conv2dGeometry& g);

void conv2d_amx_forward(const AmxConvKernels& kernels, const Conv2dGeometry& g, const float* x,
                        const float* w, const float* bias, float* y);
void conv2d_amx_backward_weight(const AmxConvKernels& kernels, const Conv2dGeometry& g,
                                const float* dy, const float* x, float* dw, float* dbias);

}  // namespace fer::cpu
