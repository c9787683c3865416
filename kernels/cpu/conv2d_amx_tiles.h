// The tile loops of the AMX convolution (conv2d_amx.h), written once over a Tiles type:
//
//   Tiles::begin() / end()            configure eight tiles of 16 rows x 64 bytes / release them
//   Tiles::zero<T>()                  tile T = 0
//   Tiles::load<T>(p, stride)         row r of tile T = the 64 bytes at p + r * stride (bytes)
//   Tiles::store<T>(p, stride)        the reverse
//   Tiles::dot<C, A, B>()             TDPBF16PS: C[m][n] += sum over k < 16 of
//                                       A.bf16[m][2k] * B.bf16[k][2n] + A.bf16[m][2k+1] * B.bf16[k][2n+1]
//
// C tiles hold 16 x 16 floats, A tiles 16 rows of 16 bf16 pairs, B tiles 16 pair-rows of 16
// columns ("VNNI" layout: the two halves of a pair side by side). Tile numbers are template
// arguments because the instructions take them as immediates. Included by simd_amxbf16.cpp (the
// real instructions) and conv2d_amx.cpp (a plain C++ emulation for tests), each with its own
// Tiles in an anonymous namespace.
//
// Both loops keep a 2 x 2 block of C tiles (tmm0-3: 32 x 32 floats) and stream two A tiles
// (tmm4-5) and two B tiles (tmm6-7) past it: four TDPBF16PS per four loads.
#pragma once
#include <cstdint>

#include "kernels/cpu/conv2d_amx.h"

namespace fer::cpu {

// Forward: out[q][k] = sum over taps t and channel blocks of x[q + taps[t]][c] * w[k][c][t].
// A = 16 grid pixels x 32 channels of the NHWC image (pixels are args.channels apart), B = a
// packed weight tile (32 channels as 16 pairs x 16 output channels).
template <class Tiles>
void amx_forward_loop(const AmxForwardArgs& a) {
  const int64_t blocks = a.channels / 32;
  const int64_t pixel_bytes = a.channels * 2, out_bytes = a.ldo * 4;
  Tiles::begin();
  for (int64_t q = 0; q < a.cells; q += 32)
    for (int64_t kb = 0; kb < a.k_pad / 16; kb += 2) {
      Tiles::template zero<0>();
      Tiles::template zero<1>();
      Tiles::template zero<2>();
      Tiles::template zero<3>();
      for (int64_t t = 0; t < a.ntaps; ++t) {
        const uint16_t* x = a.x + (q + a.taps[t]) * a.channels;
        const uint16_t* w0 = a.w + (kb * a.ntaps + t) * blocks * 512;
        const uint16_t* w1 = a.w + ((kb + 1) * a.ntaps + t) * blocks * 512;
        for (int64_t cb = 0; cb < blocks; ++cb) {
          Tiles::template load<4>(x + 32 * cb, pixel_bytes);                   // pixels q .. q+15
          Tiles::template load<5>(x + 16 * a.channels + 32 * cb, pixel_bytes); // pixels q+16 .. q+31
          Tiles::template load<6>(w0 + 512 * cb, 64);                          // channels kb
          Tiles::template load<7>(w1 + 512 * cb, 64);                          // channels kb+1
          Tiles::template dot<0, 4, 6>();
          Tiles::template dot<1, 5, 6>();
          Tiles::template dot<2, 4, 7>();
          Tiles::template dot<3, 5, 7>();
        }
      }
      float* o = a.out + q * a.ldo + kb * 16;
      Tiles::template store<0>(o, out_bytes);
      Tiles::template store<1>(o + 16 * a.ldo, out_bytes);
      Tiles::template store<2>(o + 16, out_bytes);
      Tiles::template store<3>(o + 16 * a.ldo + 16, out_bytes);
    }
  Tiles::end();
}

// Weight gradient: dwt[t][k][c] += sum over images n and grid pixels q of
// dy_n[k][q] * x_n[c][q + taps[t]]. A = 16 output channels x 32 pixels of dy (as 16 pixel pairs),
// B = 16 pixel pairs x 16 input channels from the image's pair-interleaved copy whose phase
// matches the parity of q + taps[t].
template <class Tiles>
void amx_weight_grad_loop(const AmxWeightGradArgs& a) {
  const int64_t dy_bytes = a.cells * 2, pair_row = a.channels * 2, pair_bytes = a.channels * 4,
                c_bytes = a.channels * 4;
  Tiles::begin();
  for (int64_t t = 0; t < a.ntaps; ++t)
    for (int64_t kb = 0; kb < a.k_pad / 16; kb += 2)
      for (int64_t cb = 0; cb < a.channels / 16; cb += 2) {
        float* c = a.dwt + (t * a.k_pad + kb * 16) * a.channels + cb * 16;
        Tiles::template load<0>(c, c_bytes);
        Tiles::template load<1>(c + 16 * a.channels, c_bytes);
        Tiles::template load<2>(c + 16, c_bytes);
        Tiles::template load<3>(c + 16 * a.channels + 16, c_bytes);
        for (int64_t n = 0; n < a.images; ++n) {
          const uint16_t* dy = a.dy + n * a.image_dy + kb * 16 * a.cells;
          const uint16_t* x2 = a.x2 + n * a.image_x2 + cb * 32;
          for (int64_t q = 0; q < a.cells; q += 32) {
            const int64_t s = q + a.taps[t];  // first pixel of the B rows; its parity is the phase
            const uint16_t* xb = x2 + (s & 1) * a.phase + (s >> 1) * pair_row;
            Tiles::template load<4>(dy + q, dy_bytes);                   // channels kb
            Tiles::template load<5>(dy + 16 * a.cells + q, dy_bytes);    // channels kb+1
            Tiles::template load<6>(xb, pair_bytes);                     // input channels cb
            Tiles::template load<7>(xb + 32, pair_bytes);                // input channels cb+1
            Tiles::template dot<0, 4, 6>();
            Tiles::template dot<1, 5, 6>();
            Tiles::template dot<2, 4, 7>();
            Tiles::template dot<3, 5, 7>();
          }
        }
        Tiles::template store<0>(c, c_bytes);
        Tiles::template store<1>(c + 16 * a.channels, c_bytes);
        Tiles::template store<2>(c + 16, c_bytes);
        Tiles::template store<3>(c + 16 * a.channels + 16, c_bytes);
      }
  Tiles::end();
}

}  // namespace fer::cpu
