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
#include <vector>

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
                           // (AmxLayoutKernels::pair_image)
  int64_t phase, image_x2;
  int64_t images, cells, channels, k_pad;  // cells, channels and k_pad multiples of 32
  const int32_t* taps;
  int64_t ntaps;
  float* dwt;              // dwt[(t * k_pad + k) * channels + c], added to
};

// The padded-width grid of conv2d_direct.cpp, with every count rounded for the tiles.
struct AmxGrid {
  int64_t Hp, Wp;
  int64_t cells;     // OH * Wp grid pixels, rounded up to 32
  int64_t channels;  // C rounded up to 32
  int64_t k_pad;     // K rounded up to 32
  int64_t pixels;    // pixels of a stored image: the padded image and the zero slack the last
                     // tiles read past it (an even count)
  std::vector<int32_t> taps;  // pixel offset of each tap, kh * Wp + kw
  explicit AmxGrid(const Conv2dGeometry& g);
  // The grid pixel of input pixel (h, w).
  int64_t pixel(const Conv2dGeometry& g, int64_t h, int64_t w) const { return (h + g.pad_h) * Wp + w + g.pad_w; }
  // Pair rows per phase of the weight gradient's interleaved image (the last pixel pairs with nothing).
  int64_t pair_rows() const { return pixels / 2 - 1; }
};

// The conversions between the engine's NCHW floats and the tiles' layouts, around the tile loops.
// Written twice: plainly (conv2d_amx.cpp, the reference) and with AVX-512 gathers and scatters
// (conv2d_amx_layout_avx512.cpp); both round with to_bf16, so their outputs are bit-identical.
struct AmxLayoutKernels {
  const char* name;
  // xs[p * channels + c] = bf16 of xn[c][h][w] at grid pixel p = pixel(h, w); zero elsewhere
  // (borders, slack, padding channels).
  void (*pack_image)(const Conv2dGeometry& g, const AmxGrid& grid, const float* xn, uint16_t* xs);
  // yn[k][oh][ow] = out[(oh * Wp + ow) * k_pad + k] + bias[k] (bias may be null).
  void (*copy_out)(const Conv2dGeometry& g, const AmxGrid& grid, const float* out, const float* bias, float* yn);
  // rows[k * cells + oh * Wp + ow] = bf16 of dyn[k][oh][ow]; zero in the other k_pad x cells.
  void (*pack_rows)(const Conv2dGeometry& g, const AmxGrid& grid, const float* dyn, uint16_t* rows);
  // The pixel pairs of a packed image, as 32-bit words (low half first): phase s in {0, 1}, pair
  // row p, channel c: x2[(s * pair_rows + p) * channels + c] = xs[2p + s][c] | xs[2p + s + 1][c] << 16.
  void (*pair_image)(const AmxGrid& grid, const uint16_t* xs, uint32_t* x2);
  // The B tiles of the weights w[K][C][taps], for output-channel tiles [kb0, kb1): tile
  // (kb, t, cb) at packed + ((kb * ntaps + t) * channels / 32 + cb) * 512, row j, column n = the
  // pair (w[16 kb + n][32 cb + 2j][t], w[16 kb + n][32 cb + 2j + 1][t]), zero past K and C.
  void (*pack_weights)(const Conv2dGeometry& g, const AmxGrid& grid, const float* w, int64_t kb0, int64_t kb1,
                       uint16_t* packed);
  // dw[k][c][t] = sum over parts i < parts of dwt[i * part + (t * k_pad + k) * channels + c], for k in
  // [k0, k1): the threads' tile-layout sums back to the engine's layout.
  void (*sum_weight_grads)(const Conv2dGeometry& g, const AmxGrid& grid, const float* dwt, int64_t part,
                           int parts, int64_t k0, int64_t k1, float* dw);
};

AmxLayoutKernels amx_layout_reference();  // plain C++
AmxLayoutKernels amx_layout_avx512();     // AVX-512F/BW; call only where isa_supported(Isa::Avx512)

struct AmxConvKernels {
  const char* name;
  void (*forward)(const AmxForwardArgs&);
  void (*weight_grad)(const AmxWeightGradArgs&);
  AmxLayoutKernels layout;
};

// AMX-BF16 with the AVX-512 layouts; call only where isa_supported(Isa::Amx).
AmxConvKernels amx_conv_kernels_native();
// The tile instructions emulated in plain C++ (slow: for tests), on the given layouts.
AmxConvKernels amx_conv_kernels_emulated(const AmxLayoutKernels& layout);

// The native kernels when the products run in bf16 and the active set is amx; else null.
const AmxConvKernels* active_amx_conv_kernels();

// Stride 1, no dilation, one group, at least 16 input and 16 output channels.
bool conv2d_amx_applies(const Conv2dGeometry& g);

void conv2d_amx_forward(const AmxConvKernels& kernels, const Conv2dGeometry& g, const float* x,
                        const float* w, const float* bias, float* y);
void conv2d_amx_backward_weight(const AmxConvKernels& kernels, const Conv2dGeometry& g,
                                const float* dy, const float* x, float* dw, float* dbias);

}  // namespace fer::cpu
