// The AMX convolution's drivers (see conv2d_amx.h): the layouts the tile loops read, built per
// image from the engine's NCHW floats, the threads, and the way back to NCHW. Also the plain C++
// emulation of the tile instructions and the reference layout conversions (the AVX-512 ones are in
// conv2d_amx_layout_avx512.cpp), which let the tests run all of it on CPUs without AMX.
#include "kernels/cpu/conv2d_amx.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv2d_amx_tiles.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// The tile instructions done with plain loops, on eight 1 KB tiles per thread. TDPBF16PS adds
// the two products of a pair to the accumulator one after the other; products of two bfloat16
// are exact in float, so only the order of the sums matters, and it is the instruction's.
struct EmulatedTiles {
  static uint8_t* tile(int t) {
    thread_local uint8_t tiles[8][16 * 64];
    return tiles[t];
  }
  static void begin() {}
  static void end() {}
  template <int T>
  static void zero() { std::memset(tile(T), 0, 16 * 64); }
  template <int T>
  static void load(const void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(tile(T) + 64 * r, static_cast<const uint8_t*>(p) + r * stride, 64);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(static_cast<uint8_t*>(p) + r * stride, tile(T) + 64 * r, 64);
  }
  template <int C, int A, int B>
  static void dot() {
    float c[16][16];
    uint16_t a[16][32], b[16][32];
    std::memcpy(c, tile(C), sizeof c);
    std::memcpy(a, tile(A), sizeof a);
    std::memcpy(b, tile(B), sizeof b);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float acc = c[m][n];
        for (int k = 0; k < 16; ++k) {
          acc += bf16_to_float(a[m][2 * k]) * bf16_to_float(b[k][2 * n]);
          acc += bf16_to_float(a[m][2 * k + 1]) * bf16_to_float(b[k][2 * n + 1]);
        }
        c[m][n] = acc;
      }
    std::memcpy(tile(C), c, sizeof c);
  }
};

// The reference layouts (AmxLayoutKernels in conv2d_amx.h), one value at a time.

void pack_image_reference(const Conv2dGeometry& g, const AmxGrid& grid, const float* xn, uint16_t* xs) {
  std::memset(xs, 0, static_cast<size_t>(grid.pixels * grid.channels) * sizeof(uint16_t));
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h)
      for (int64_t w = 0; w < g.W; ++w) xs[grid.pixel(g, h, w) * grid.channels + c] = to_bf16(xn[(c * g.H + h) * g.W + w]);
}

void copy_out_reference(const Conv2dGeometry& g, const AmxGrid& grid, const float* out, const float* bias, float* yn) {
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        yn[(k * g.OH + oh) * g.OW + ow] = out[(oh * grid.Wp + ow) * grid.k_pad + k] + (bias ? bias[k] : 0.0f);
}

void pack_rows_reference(const Conv2dGeometry& g, const AmxGrid& grid, const float* dyn, uint16_t* rows) {
  std::memset(rows, 0, static_cast<size_t>(grid.k_pad * grid.cells) * sizeof(uint16_t));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        rows[k * grid.cells + oh * grid.Wp + ow] = to_bf16(dyn[(k * g.OH + oh) * g.OW + ow]);
}

void pair_image_reference(const AmxGrid& grid, const uint16_t* xs, uint32_t* x2) {
  const int64_t rows = grid.pair_rows(), C = grid.channels;
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t p = 0; p < rows; ++p)
      for (int64_t c = 0; c < C; ++c)
        x2[(s * rows + p) * C + c] = xs[(2 * p + s) * C + c] | static_cast<uint32_t>(xs[(2 * p + s + 1) * C + c]) << 16;
}

void pack_weights_reference(const Conv2dGeometry& g, const AmxGrid& grid, const float* w, int64_t kb0, int64_t kb1,
                            uint16_t* packed) {
  const int64_t ntaps = g.KH * g.KW, blocks = grid.channels / 32;
  for (int64_t kb = kb0; kb < kb1; ++kb)
    for (int64_t t = 0; t < ntaps; ++t)
      for (int64_t cb = 0; cb < blocks; ++cb) {
        uint16_t* tile = packed + ((kb * ntaps + t) * blocks + cb) * 512;
        for (int64_t j = 0; j < 16; ++j)
          for (int64_t n = 0; n < 16; ++n)
            for (int64_t s = 0; s < 2; ++s) {
              const int64_t k = 16 * kb + n, c = 32 * cb + 2 * j + s;
              tile[j * 32 + n * 2 + s] = k < g.K && c < g.C ? to_bf16(w[(k * g.C + c) * ntaps + t]) : 0;
            }
      }
}

void sum_weight_grads_reference(const Conv2dGeometry& g, const AmxGrid& grid, const float* dwt, int64_t part,
                                int parts, int64_t k0, int64_t k1, float* dw) {
  const int64_t ntaps = g.KH * g.KW;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < ntaps; ++t) {
        float s = 0.0f;
        for (int i = 0; i < parts; ++i) s += dwt[i * part + (t * grid.k_pad + k) * grid.channels + c];
        dw[(k * g.C + c) * ntaps + t] = s;
      }
}

// Per thread, an aligned buffer of `count` uint16 in scratch slot `slot` (parallel.h).
uint16_t* scratch_u16(int64_t count, int slot) {
  return reinterpret_cast<uint16_t*>(aligned_thread_scratch(static_cast<size_t>((count + 1) / 2), slot));
}

}  // namespace

AmxGrid::AmxGrid(const Conv2dGeometry& g)
    : Hp(g.H + 2 * g.pad_h), Wp(g.W + 2 * g.pad_w), cells(round_up(g.OH * Wp, 32)), channels(round_up(g.C, 32)),
      k_pad(round_up(g.K, 32)) {
  for (int64_t kh = 0; kh < g.KH; ++kh)
    for (int64_t kw = 0; kw < g.KW; ++kw) taps.push_back(static_cast<int32_t>(kh * Wp + kw));
  pixels = round_up(cells + taps.back() + 32, 2);
}

AmxLayoutKernels amx_layout_reference() {
  return {"reference", pack_image_reference,   copy_out_reference,        pack_rows_reference,
          pair_image_reference, pack_weights_reference, sum_weight_grads_reference};
}

AmxConvKernels amx_conv_kernels_emulated(const AmxLayoutKernels& layout) {
  return {"amx (emulated tiles)", amx_forward_loop<EmulatedTiles>, amx_weight_grad_loop<EmulatedTiles>, layout};
}

const AmxConvKernels* active_amx_conv_kernels() {
  if (matmul_precision() != Precision::BF16 || active_isa() != Isa::Amx) return nullptr;
  static const AmxConvKernels native = amx_conv_kernels_native();
  return &native;
}

bool conv2d_amx_applies(const Conv2dGeometry& g) {
  return g.groups == 1 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
         g.C >= 16 && g.K >= 16;
}

namespace {

// The weights as B tiles (AmxLayoutKernels::pack_weights), output-channel tiles spread over the threads.
std::vector<uint16_t> packed_weights(const AmxLayoutKernels& layout, const Conv2dGeometry& g, const AmxGrid& grid,
                                     const float* w) {
  const int64_t ntaps = g.KH * g.KW;
  std::vector<uint16_t> packed(static_cast<size_t>(grid.k_pad / 16 * ntaps * grid.channels / 32 * 512));
  parallel_for(grid.k_pad / 16, 1, [&](int64_t kb0, int64_t kb1) { layout.pack_weights(g, grid, w, kb0, kb1, packed.data()); });
  return packed;
}

}  // namespace

void conv2d_amx_forward(const AmxConvKernels& kernels, const Conv2dGeometry& g, const float* x,
                        const float* w, const float* bias, float* y) {
  const AmxLayoutKernels& layout = kernels.layout;
  const AmxGrid grid(g);
  const std::vector<uint16_t> weights = packed_weights(layout, g, grid, w);
  const int64_t image_in = g.C * g.H * g.W, image_out = g.K * g.OH * g.OW;
  const int64_t stored = grid.pixels * grid.channels, out_floats = grid.cells * grid.k_pad;
  AmxForwardArgs args{nullptr, grid.channels, grid.taps.data(), static_cast<int64_t>(grid.taps.size()),
                      weights.data(), nullptr, grid.k_pad, grid.cells, grid.k_pad};

  const int threads = cpu_threads();
  if (g.N >= threads || threads == 1) {  // whole images per thread
#pragma omp parallel for schedule(static) num_threads(threads) firstprivate(args)
    for (int64_t n = 0; n < g.N; ++n) {
      uint16_t* xs = scratch_u16(stored, 0);
      float* out = aligned_thread_scratch(static_cast<size_t>(out_floats), 1);
      layout.pack_image(g, grid, x + n * image_in, xs);
      args.x = xs;
      args.out = out;
      kernels.forward(args);
      layout.copy_out(g, grid, out, bias, y + n * image_out);
    }
    return;
  }
  // Fewer images than threads (one-face inference): the threads share each image's grid pixels.
  std::vector<uint16_t> xs(static_cast<size_t>(stored));
  std::vector<float> out(static_cast<size_t>(out_floats));
  const int64_t blocks = grid.cells / 32;
  for (int64_t n = 0; n < g.N; ++n) {
    layout.pack_image(g, grid, x + n * image_in, xs.data());
#pragma omp parallel num_threads(threads) firstprivate(args)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
      if (b0 < b1) {
        args.x = xs.data() + 32 * b0 * grid.channels;
        args.out = out.data() + 32 * b0 * grid.k_pad;
        args.cells = 32 * (b1 - b0);
        kernels.forward(args);
      }
    }
    layout.copy_out(g, grid, out.data(), bias, y + n * image_out);
  }
}

void conv2d_amx_backward_weight(const AmxConvKernels& kernels, const Conv2dGeometry& g,
                                const float* dy, const float* x, float* dw, float* dbias) {
  const AmxLayoutKernels& layout = kernels.layout;
  const AmxGrid grid(g);
  const int64_t ntaps = static_cast<int64_t>(grid.taps.size()), P = g.OH * g.OW;
  const int64_t phase = grid.pair_rows() * grid.channels * 2, image_x2 = 2 * phase;  // in uint16
  const int64_t image_dy = grid.k_pad * grid.cells, stored = grid.pixels * grid.channels;
  // Images per call of the tile loop: at least ~1024 grid pixels, so that the C tiles' loads and
  // stores are few against the products, and about 1 MB of packed operands. Each thread takes an
  // even share of the images (64 images of 12x12 in groups of 6 would otherwise leave one thread
  // 6 groups and the other 5).
  const int64_t per_image = 2 * (image_dy + image_x2);
  const int64_t group = std::clamp<int64_t>(
      std::min((1024 + grid.cells - 1) / grid.cells, (int64_t{1} << 20) / per_image), 1, g.N);
  const int threads = static_cast<int>(std::min<int64_t>(cpu_threads(), g.N));
  // Per thread: dW as dwt[t][k][c] (what the C tiles hold) and dbias[K].
  const int64_t part = ntaps * grid.k_pad * grid.channels + g.K;
  std::vector<float> partial(static_cast<size_t>(threads * part), 0.0f);

#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    float* dwt = partial.data() + th * part;
    float* db = dwt + ntaps * grid.k_pad * grid.channels;
    uint16_t* xs = scratch_u16(stored, 2);
    const int64_t first = g.N * th / nt, last = g.N * (th + 1) / nt;
    for (int64_t n0 = first; n0 < last; n0 += group) {
      const int64_t nb = std::min(group, last - n0);
      uint16_t* dyb = scratch_u16(nb * image_dy, 0);
      uint16_t* x2 = scratch_u16(nb * image_x2, 1);
      for (int64_t j = 0; j < nb; ++j) {
        const float* dyn = dy + (n0 + j) * g.K * P;
        layout.pack_rows(g, grid, dyn, dyb + j * image_dy);
        if (dbias)
          for (int64_t k = 0; k < g.K; ++k) db[k] += lane_sum(dyn + k * P, P);
        layout.pack_image(g, grid, x + (n0 + j) * g.C * g.H * g.W, xs);
        layout.pair_image(grid, xs, reinterpret_cast<uint32_t*>(x2 + j * image_x2));
      }
      const AmxWeightGradArgs args{dyb,  image_dy,    x2,      phase,  image_x2,          nb, grid.cells,
                                   grid.channels, grid.k_pad, grid.taps.data(), ntaps, dwt};
      kernels.weight_grad(args);
    }
  }
  // dw[k][c][t] = the threads' sums.
  parallel_for(g.K, 1, [&](int64_t k0, int64_t k1) { layout.sum_weight_grads(g, grid, partial.data(), part, threads, k0, k1, dw); });
  if (dbias)
    for (int64_t k = 0; k < g.K; ++k) {
      float s = 0.0f;
      for (int th = 0; th < threads; ++th) s += partial[th * part + ntaps * grid.k_pad * grid.channels + k];
      dbias[k] = s;
    }
}

}  // namespace fer::cpu
