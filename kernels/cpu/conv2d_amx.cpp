// The AMX convolution's drivers (see conv2d_amx.h): the layouts the tile loops read, built per
// image from the engine's NCHW floats, the threads, and the way back to NCHW. Also the plain C++
// emulation of the tile instructions that lets the tests run all of it on CPUs without AMX.
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

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

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

// The padded-width grid of conv2d_direct.cpp, with every count rounded for the tiles.
struct AmxGrid {
  int64_t Hp, Wp;
  int64_t cells;     // OH * Wp grid pixels, rounded up to 32
  int64_t channels;  // C rounded up to 32
  int64_t k_pad;     // K rounded up to 32
  int64_t pixels;    // pixels of a stored image: the padded image and the zero slack the last
                     // tiles read past it (an even count)
  std::vector<int32_t> taps;
  explicit AmxGrid(const Conv2dGeometry& g)
      : Hp(g.H + 2 * g.pad_h), Wp(g.W + 2 * g.pad_w), cells(round_up(g.OH * Wp, 32)),
        channels(round_up(g.C, 32)), k_pad(round_up(g.K, 32)) {
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) taps.push_back(static_cast<int32_t>(kh * Wp + kw));
    pixels = round_up(cells + taps.back() + 32, 2);
  }
  // The grid pixel of input pixel (h, w).
  int64_t pixel(const Conv2dGeometry& g, int64_t h, int64_t w) const { return (h + g.pad_h) * Wp + w + g.pad_w; }
};

// Calls f(c, h, w, value) for every input value of one image, 16 channels at a time along each
// row: the NCHW rows are read in order and the channels-last copies are written 16 channels
// (32 bytes) at a time, a blocked transpose instead of one scattered store per value.
template <typename F>
void for_each_channels_last(const Conv2dGeometry& g, const float* xn, F f) {
  for (int64_t c0 = 0; c0 < g.C; c0 += 16) {
    const int64_t c1 = std::min(g.C, c0 + 16);
    for (int64_t h = 0; h < g.H; ++h)
      for (int64_t w = 0; w < g.W; ++w)
        for (int64_t c = c0; c < c1; ++c) f(c, h, w, xn[(c * g.H + h) * g.W + w]);
  }
}

// xs[p * channels + c] = bf16 of input pixel p's channel c (zero in the borders, the slack and
// the padding channels).
void pack_nhwc(const Conv2dGeometry& g, const AmxGrid& grid, const float* xn, uint16_t* xs) {
  std::memset(xs, 0, static_cast<size_t>(grid.pixels * grid.channels) * sizeof(uint16_t));
  for_each_channels_last(g, xn, [&](int64_t c, int64_t h, int64_t w, float v) {
    xs[grid.pixel(g, h, w) * grid.channels + c] = to_bf16(v);
  });
}

// The weights as B tiles: tile (kb, t, cb) row j, column n = the pair
// (w[16 kb + n][32 cb + 2j][t], w[16 kb + n][32 cb + 2j + 1][t]).
std::vector<uint16_t> pack_weights(const Conv2dGeometry& g, const AmxGrid& grid, const float* w) {
  const int64_t ntaps = g.KH * g.KW, blocks = grid.channels / 32;
  std::vector<uint16_t> packed(static_cast<size_t>(grid.k_pad / 16 * ntaps * blocks * 512), 0);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < ntaps; ++t) {
        const int64_t tile = ((k / 16) * ntaps + t) * blocks + c / 32;
        packed[static_cast<size_t>(tile * 512 + (c % 32 / 2) * 32 + (k % 16) * 2 + c % 2)] =
            to_bf16(w[(k * g.C + c) * ntaps + t]);
      }
  return packed;
}

// y[k, oh, ow] = out[(oh * Wp + ow) * k_pad + k] + bias[k]: the valid cells, back to NCHW, 16
// channels at a time (each pixel's 64 bytes read once, 16 rows of y written in order).
void copy_out(const Conv2dGeometry& g, const AmxGrid& grid, const float* out, const float* bias, float* yn) {
  const int64_t P = g.OH * g.OW;
  for (int64_t k0 = 0; k0 < g.K; k0 += 16) {
    const int64_t k1 = std::min(g.K, k0 + 16);
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const float* cell = out + (oh * grid.Wp + ow) * grid.k_pad;
        for (int64_t k = k0; k < k1; ++k) yn[k * P + oh * g.OW + ow] = cell[k] + (bias ? bias[k] : 0.0f);
      }
  }
}

// Per thread, a buffer of `count` uint16 in scratch slot `slot`.
uint16_t* scratch_u16(int64_t count, int slot) {
  return reinterpret_cast<uint16_t*>(thread_scratch(static_cast<size_t>((count + 1) / 2), slot));
}

}  // namespace

AmxConvKernels amx_conv_kernels_emulated() {
  return {"amx (emulated)", amx_forward_loop<EmulatedTiles>, amx_weight_grad_loop<EmulatedTiles>};
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

void conv2d_amx_forward(const AmxConvKernels& kernels, const Conv2dGeometry& g, const float* x,
                        const float* w, const float* bias, float* y) {
  const AmxGrid grid(g);
  const std::vector<uint16_t> weights = pack_weights(g, grid, w);
  const int64_t image_in = g.C * g.H * g.W, image_out = g.K * g.OH * g.OW;
  const int64_t stored = grid.pixels * grid.channels, out_floats = grid.cells * grid.k_pad;
  AmxForwardArgs args{nullptr, grid.channels, grid.taps.data(), static_cast<int64_t>(grid.taps.size()),
                      weights.data(), nullptr, grid.k_pad, grid.cells, grid.k_pad};

  const int threads = cpu_threads();
  if (g.N >= threads || threads == 1) {  // whole images per thread
#pragma omp parallel for schedule(static) num_threads(threads) firstprivate(args)
    for (int64_t n = 0; n < g.N; ++n) {
      uint16_t* xs = scratch_u16(stored, 0);
      float* out = thread_scratch(static_cast<size_t>(out_floats), 1);
      pack_nhwc(g, grid, x + n * image_in, xs);
      args.x = xs;
      args.out = out;
      kernels.forward(args);
      copy_out(g, grid, out, bias, y + n * image_out);
    }
    return;
  }
  // Fewer images than threads (one-face inference): the threads share each image's grid pixels.
  std::vector<uint16_t> xs(static_cast<size_t>(stored));
  std::vector<float> out(static_cast<size_t>(out_floats));
  const int64_t blocks = grid.cells / 32;
  for (int64_t n = 0; n < g.N; ++n) {
    pack_nhwc(g, grid, x + n * image_in, xs.data());
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
    copy_out(g, grid, out.data(), bias, y + n * image_out);
  }
}

void conv2d_amx_backward_weight(const AmxConvKernels& kernels, const Conv2dGeometry& g,
                                const float* dy, const float* x, float* dw, float* dbias) {
  const AmxGrid grid(g);
  const int64_t ntaps = static_cast<int64_t>(grid.taps.size()), P = g.OH * g.OW;
  const int64_t rows = grid.pixels / 2 - 1;  // pair rows per phase (the last pixel pairs with nothing)
  const int64_t phase = rows * grid.channels * 2, image_x2 = 2 * phase;
  const int64_t image_dy = grid.k_pad * grid.cells;
  // Images per call of the tile loop: at least ~1024 grid pixels, so that the C tiles' loads and
  // stores are few against the products, and about 1 MB of packed operands.
  const int64_t per_image = 2 * (image_dy + image_x2);
  const int64_t group = std::clamp<int64_t>(std::min((1024 + grid.cells - 1) / grid.cells, (int64_t{1} << 20) / per_image),
                                            1, g.N);
  const int64_t groups = (g.N + group - 1) / group;
  const int threads = static_cast<int>(std::min<int64_t>(cpu_threads(), groups));
  // Per thread: dW as dwt[t][k][c] (what the C tiles hold) and dbias[K].
  const int64_t part = ntaps * grid.k_pad * grid.channels + g.K;
  std::vector<float> partial(static_cast<size_t>(threads * part), 0.0f);

#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    float* dwt = partial.data() + th * part;
    float* db = dwt + ntaps * grid.k_pad * grid.channels;
    for (int64_t i = groups * th / nt; i < groups * (th + 1) / nt; ++i) {
      const int64_t n0 = i * group, nb = std::min(group, g.N - n0);
      uint16_t* dyb = scratch_u16(nb * image_dy, 0);
      uint16_t* x2 = scratch_u16(nb * image_x2, 1);
      std::memset(dyb, 0, static_cast<size_t>(nb * image_dy) * sizeof(uint16_t));
      std::memset(x2, 0, static_cast<size_t>(nb * image_x2) * sizeof(uint16_t));
      for (int64_t j = 0; j < nb; ++j) {
        // dy as bf16 rows on the grid: dyb[k][oh * Wp + ow] (zero in the dropped columns).
        for (int64_t k = 0; k < g.K; ++k) {
          const float* src = dy + ((n0 + j) * g.K + k) * P;
          uint16_t* dst = dyb + j * image_dy + k * grid.cells;
          for (int64_t oh = 0; oh < g.OH; ++oh)
            for (int64_t ow = 0; ow < g.OW; ++ow) dst[oh * grid.Wp + ow] = to_bf16(src[oh * g.OW + ow]);
          if (dbias) db[k] += lane_sum(src, P);
        }
        // The image pair-interleaved: pixel p is the first half of row p / 2 of phase p % 2 and
        // the second half of row (p - 1) / 2 of the other phase.
        uint16_t* x2n = x2 + j * image_x2;
        for_each_channels_last(g, x + (n0 + j) * g.C * g.H * g.W, [&](int64_t c, int64_t h, int64_t w, float value) {
          const int64_t p = grid.pixel(g, h, w);
          const uint16_t v = to_bf16(value);
          x2n[(p & 1) * phase + (p >> 1) * grid.channels * 2 + c * 2] = v;
          if (p >= 1 && (p - 1) / 2 < rows) x2n[(1 - (p & 1)) * phase + ((p - 1) >> 1) * grid.channels * 2 + c * 2 + 1] = v;
        });
      }
      const AmxWeightGradArgs args{dyb,  image_dy,    x2,      phase,  image_x2,          nb, grid.cells,
                                   grid.channels, grid.k_pad, grid.taps.data(), ntaps, dwt};
      kernels.weight_grad(args);
    }
  }
  // dw[k][c][t] = the threads' sums.
  parallel_for(g.K, 1, [&](int64_t k_begin, int64_t k_end) {
    for (int64_t k = k_begin; k < k_end; ++k)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t t = 0; t < ntaps; ++t) {
          float s = 0.0f;
          for (int th = 0; th < threads; ++th) s += partial[th * part + (t * grid.k_pad + k) * grid.channels + c];
          dw[(k * g.C + c) * ntaps + t] = s;
        }
  });
  if (dbias)
    for (int64_t k = 0; k < g.K; ++k) {
      float s = 0.0f;
      for (int th = 0; th < threads; ++th) s += partial[th * part + ntaps * grid.k_pad * grid.channels + k];
      dbias[k] = s;
    }
}

}  // namespace fer::cpu
