// Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016) for the 3x3 stride-1 layers: 4x4 outputs of one channel pair (k, c)
// from a 6x6 input tile with 36 multiplications instead of 144. Maps whose 4x4 tiles would
// overhang too much (6x6: 8x8 computed) take F(2x2, 3x3) instead: 2x2 outputs from a 4x4 tile,
// 16 multiplications instead of 36. Below, for F(4x4, 3x3); F(2x2, 3x3) is the same with 4x4
// transforms and 16 points.
//
// One output tile, in matrices:  Y = A^T [ (G g G^T) .* (B^T d B) ] A
//   d   the 6x6 input tile (rows 4*th - pad_h .. + 5, columns 4*tw - pad_w .. + 5; zero outside)
//   g   the 3x3 kernel, G g G^T its 6x6 transform (once per call)
//   .*  element by element: 36 independent products, one per transform point xi
//   Y   the 4x4 outputs (those past the edge of the map are dropped)
// Summed over the input channels c, the 36 products become 36 matrix products, one per xi:
//
//   M[xi][k, t] = sum over c of  U[xi][k, c] * V[xi][c, t]     (t = one 4x4 tile of one image)
//
// with U = the transformed weights and V = the transformed input tiles. Those products are where
// the time goes, and they run on the GEMM micro-kernel (gemm_microkernel.h): U packed once per
// call as its A panels, V written by the input transform straight into the layout of one B panel
// (NR tiles side by side), M a C tile of NR columns. Then Y = A^T M A per tile, plus the bias.
//
// Per block of NR tiles (one thread each): input transform -> 36 x (Kpad/MR) micro-kernel calls
// of depth C -> output transform. A block's V and M (36 x C x NR and 36 x K x NR floats) stay in
// L2; U (36 x K x C) is read once per block. The batch is zero-padded once so that every tile
// reads a whole 6x6 window; the transforms (simd_kernels.h, per kernel set) keep a vector's
// tiles in its lanes (the input transform loads each tile's window rows and transposes them into
// columns in registers), so that V comes out in the B panel's layout
// and M is read as it lies.
//
// The arithmetic: 36 products per 16 outputs against 144, so 4x fewer multiplications in the
// products (fewer at map sizes that are not multiples of 4, whose last tiles are partly
// dropped), paid for by the transforms (a few dozen additions per tile and channel, transpositions,
// the traffic of V and M): conv2d_winograd_applies() takes this path only where it measured
// faster. The points 0, +-1, +-2 and infinity cost accuracy: on fer_vgg_small's layers (inputs
// in [0, 2), He-scaled weights) the largest error against double sums is 3-5e-6 of the largest
// output, against 6-10e-7 for the direct convolution (rms 1-2e-6 against 5-7e-7): far below the
// bf16 rounding (4e-3) that training also tolerates. The op harness compares the result with the
// direct sums of the scalar set.
//
// The input gradient of a stride-1 convolution is itself one (conv2d.cpp), so it lands here too.
#include "kernels/cpu/conv2d_winograd.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <xmmintrin.h>

#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

constexpr int kMaxPoints = 36;  // (4 + 2)^2: the most products per tile and channel pair
constexpr int kMaxNr = 64;      // the widest micro-kernel panel (avx512's few-rows kernel: 64)
constexpr int kMaxMr = 8;       // the tallest (avx512: 8)
constexpr int64_t kDepthBlock = 128;  // input channels per micro-kernel call (B panel in L1)

// The kernel transform's matrix G ((tile + 2) x 3) of F(tile x tile, 3x3). F(4, 3): the rows are
// (1/4 0 0) (-1/6 -1/6 -1/6) (-1/6 1/6 -1/6) (1/24 1/12 1/6) (1/24 -1/12 1/6) (0 0 1);
// F(2, 3): (1 0 0) (1/2 1/2 1/2) (1/2 -1/2 1/2) (0 0 1). In double for the weight gradient's
// transform (once per call, its sums long); the forward's runs in float (an error of a few
// ulps per transformed weight, well inside the products' own).
using KernelTransform = const double (*)[3];
KernelTransform kernel_transform(int tile) {
  static constexpr double G4[6][3] = {{0.25, 0, 0},
                                      {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                      {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                      {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                      {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                      {0, 0, 1}};
  static constexpr double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  return tile == 2 ? G2 : G4;
}

// u[xi * point_stride + i] = (G g_i G^T)[xi] for the 3x3 kernels g_i at g + i * stride, i < n,
// and zero for n <= i < Lanes: the MR kernels of one A panel side by side, in float, each point's
// lanes one short vector, stored where the panel keeps them. The forward's kernel transform per
// call, which at one face costs about a quarter of the products' multiply-adds. G is
// kernel_transform(tile) in float, converted once per call. (The transposed products' B panels,
// a vector's width of kernels at a time, take the kernel set's winograd_kernels instead.)
template <int Lanes>
void transform_kernels(int tile, const float (*G)[3], const float* g, int64_t stride, int n, float* u,
                       int64_t point_stride) {
  const int side = tile + 2;
  float in[9][Lanes] = {}, t[6][3][Lanes];
  for (int i = 0; i < n; ++i)
    for (int e = 0; e < 9; ++e) in[e][i] = g[i * stride + e];
  for (int a = 0; a < side; ++a)  // t = G g
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < Lanes; ++i) t[a][j][i] = G[a][0] * in[j][i] + G[a][1] * in[3 + j][i] + G[a][2] * in[6 + j][i];
  for (int a = 0; a < side; ++a)  // u = t G^T
    for (int b = 0; b < side; ++b) {
      float* dst = u + (a * side + b) * point_stride;
      for (int i = 0; i < Lanes; ++i) dst[i] = t[a][0][i] * G[b][0] + t[a][1][i] * G[b][1] + t[a][2][i] * G[b][2];
    }
}

// G in float, once per call.
struct FloatKernelTransform {
  float G[6][3];
  explicit FloatKernelTransform(int tile) {
    for (int a = 0; a < tile + 2; ++a)
      for (int b = 0; b < 3; ++b) G[a][b] = static_cast<float>(kernel_transform(tile)[a][b]);
  }
};

// dg = G^T du G: the gradient of a 3x3 kernel from the gradient of its transform (the adjoint of
// the kernel transform), for L kernels side by side (lane l: du[xi][l]; the loops over the lanes
// vectorise), kernel l's nine values stored at dg + l * stride for l < n.
template <int L>
void transform_kernel_gradients(int tile, const double (*du)[L], int n, float* dg, int64_t stride) {
  const KernelTransform G = kernel_transform(tile);
  const int side = tile + 2;
  double t[3][6][L];  // G^T du
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < side; ++j) {
      double s[L] = {};
      for (int a = 0; a < side; ++a)
        for (int l = 0; l < L; ++l) s[l] += G[a][i] * du[a * side + j][l];
      for (int l = 0; l < L; ++l) t[i][j][l] = s[l];
    }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double s[L] = {};
      for (int b = 0; b < side; ++b)
        for (int l = 0; l < L; ++l) s[l] += t[i][b][l] * G[b][j];
      for (int l = 0; l < n; ++l) dg[l * stride + i * 3 + j] = static_cast<float>(s[l]);
    }
}

// Where tiles are: tile t of the batch is image t / per_image, tile row and column within it.
struct Tiles {
  int64_t side, rows, cols, per_image, total;
  Tiles(const Conv2dGeometry& g, int64_t tile)
      : side(tile),
        rows((g.OH + tile - 1) / tile),
        cols((g.OW + tile - 1) / tile),
        per_image(rows * cols),
        total(g.N * rows * cols) {}
  // Outputs the tiles compute per output of the map (the last row and column of tiles overhang).
  double waste(const Conv2dGeometry& g) const {
    return static_cast<double>(per_image * side * side) / static_cast<double>(g.OH * g.OW);
  }
  // Floats of the zero-padded batch that the tiles read.
  int64_t padded_floats(const Conv2dGeometry& g) const {
    return g.N * g.C * (rows * side + 2) * (cols * side + 2);
  }
};

// Where the Winograd path pays (measured on fer_vgg_small's layers, 1 and 2 threads, against the
// direct convolution): the transforms cost per tile and channel what the products save per tile
// and channel pair, so they pay with enough channels. Ice Lake (avx512, 2 threads, F(4, 3)):
// 64 -> 64 at 24x24 1.4x forward, 1.2x backward; 128 -> 128 at 12x12 1.9x and 1.4x; 32 -> 32 at
// 48x48 0.8x before the padded copy was sped up (not measured since: 64 channels there). A Zen
// 1-class EPYC (avx2): 32 -> 32 at 48x48, batch 64, 41-42 -> 28-29 ms forward, 96 -> 82-84 ms
// backward; one face 0.65-0.67 -> 0.47-0.52 ms. And not where the tiles overhang the map by
// much: F(4, 3) computes 8x8 outputs for a 6x6 map (0.9x); F(2, 3) fits it exactly, with 2.25x
// fewer products. Zen 5 (avx512, 2 threads), once the input transform had lost its gathers
// (aa5abe3): 32 -> 32 at 48x48, batch 64, 10.0-10.4 -> 6.1-6.3 ms forward, 21.9-24.8 -> 17.9-18.6
// ms backward, the fer_vgg_small step 144-149 -> 129-135 ms, one face even; so 32 channels under
// every set (not re-measured on an Intel core since).
constexpr int64_t kMinWinogradChannels = 32;
constexpr double kMaxTileWaste = 1.5;
// And only with enough tiles: the kernel transform (36 x K x C values, once per call) costs about
// what the products of a block of NR tiles save, whatever the vector width. Measured against the
// direct convolution on a Zen 1-class EPYC (avx2, NR = 24, 2 threads), one face: 64 -> 64 at
// 24x24 (36 tiles, 1.5 blocks) 0.52 against 0.64 ms; 128 -> 128 at 12x12 in F(2, 3) (36 tiles
// of 4 points fewer: twice the tiles per output) 0.83-1.0 against 0.70 ms. Before the kernel
// transform was vectorised (Zen 3): 36 tiles 0.73 against 0.32 ms, 144 tiles 1.3-2.1x faster.
// With fewer tiles the products run transposed (forward_few_tiles) on the 3-row micro-kernel:
// one face on the Zen 1-class EPYC (2 threads), against the direct convolution, 128 -> 128 at
// 12x12 0.70 -> 0.38 ms, 256 -> 256 at 6x6 in F(2, 3) 0.79 -> 0.65 ms, 128 -> 256 0.41 -> 0.34;
// with the kernels' transforms kept (packed weights of a frozen layer) 0.28, 0.38 and 0.18-0.22
// ms. Since the transposed products read the input transform in place, they also win under avx2
// up to three panels of tiles when the kernels are transformed at every call (the untransposed
// path's transform is the slower one): 64 -> 64 at 24x24 (36 tiles) 0.47 -> 0.31-0.35 ms, 128 ->
// 128 2.1 -> 1.2 ms, 64 -> 64 at 28x28 (49 tiles) 0.73 -> 0.43, two images of 24x24 (72 tiles)
// 0.76-0.90 -> 0.66-0.67; 108 tiles even. With packed kernels they are even alone (0.30-0.31 ->
// 0.29-0.32 ms at 36 tiles) and 3-10% slower inside one face's network (its weights colder), so
// packed layers keep one and a half panels; so do avx512 (not measured since) and the weight
// gradient, whose products need whole panels of tiles.
constexpr double kMinPanelsOfTiles = 1.5;
int64_t min_untransposed_tiles(int64_t nr, bool packed) {
  return nr <= 24 && !packed ? 84 : static_cast<int64_t>(kMinPanelsOfTiles * static_cast<double>(nr));
}

// How a geometry runs: the output tile side (4 where its tiles fit the map well enough, else 2;
// 0 for no Winograd) and, with fewer tiles than min_untransposed_tiles(), whether the products
// are transposed (forward_few_tiles below: tiles as the rows of the few-rows micro-kernel,
// output channels across), which the forward alone takes. The tiles' offsets are 32-bit gather
// indices into the padded batch.
struct Plan {
  int tile = 0;
  bool few_tiles = false;
};
Plan winograd_plan(const Conv2dGeometry& g, int64_t nr, bool packed) {
  const int tile = Tiles(g, 4).waste(g) <= kMaxTileWaste ? 4 : 2;
  const Tiles t(g, tile);
  if (t.waste(g) > kMaxTileWaste || t.padded_floats(g) >= (int64_t{1} << 31)) return {};
  if (t.total >= min_untransposed_tiles(nr, packed)) return {tile, false};
  return {tile, true};
}
// The weight gradient's plan: its products take whole panels of tiles (never transposed), so it
// applies only where the forward with packed kernels would not transpose them either.
Plan weight_gradient_plan(const Conv2dGeometry& g, int64_t nr) { return winograd_plan(g, nr, /*packed=*/true); }

// Where the outputs of a block's tiles go in the output maps, worked out once per block (two
// divisions per tile and channel were most of the copy): tile j's first output at at[j] floats
// into channel 0's map of its image, rows[j] x cols[j] of its outputs inside the map.
struct TileOutputs {
  const Conv2dGeometry& g;
  int side, n_tiles;
  int64_t at[kMaxNr];
  int rows[kMaxNr], cols[kMaxNr];
  TileOutputs(const Conv2dGeometry& geometry, const Tiles& tiles, int64_t t0, int64_t count)
      : g(geometry), side(static_cast<int>(tiles.side)), n_tiles(static_cast<int>(count)) {
    for (int j = 0; j < n_tiles; ++j) {
      const int64_t t = t0 + j, n = t / tiles.per_image, r = t % tiles.per_image;
      const int64_t oh0 = r / tiles.cols * side, ow0 = r % tiles.cols * side;
      at[j] = n * g.K * g.OH * g.OW + oh0 * g.OW + ow0;
      rows[j] = static_cast<int>(std::min<int64_t>(side, g.OH - oh0));
      cols[j] = static_cast<int>(std::min<int64_t>(side, g.OW - ow0));
    }
  }
  bool whole(int j) const { return rows[j] == side && cols[j] == side; }

  // y_k[at[j] + a*OW + b] = act(out[(a * side + b) * lanes + j] + bias) for one output channel's
  // map y_k (ConvOutput: the bias and activation). Four whole 4x4 tiles at a time go through SSE
  // registers (baseline x86-64): the four values of point (a, b) for tiles j..j+3 are one load,
  // and a 4x4 transpose turns four such loads into each tile's row a.
  // (output by value: a copy the stores through y_k cannot change, kept in registers.)
  void store(const float* out, int lanes, ConvOutput output, float bias, float* y_k) const {
    const __m128 vb = _mm_set1_ps(bias);
    for (int j = 0; j < n_tiles; j += 4) {
      if (side != 4 || j + 4 > n_tiles || !whole(j) || !whole(j + 1) || !whole(j + 2) || !whole(j + 3)) {
        for (int i = j; i < std::min(j + 4, n_tiles); ++i) store_tile(out, lanes, output, bias, y_k, i);
        continue;
      }
      for (int a = 0; a < 4; ++a) {
        __m128 r0 = _mm_load_ps(out + (a * 4 + 0) * lanes + j), r1 = _mm_load_ps(out + (a * 4 + 1) * lanes + j),
               r2 = _mm_load_ps(out + (a * 4 + 2) * lanes + j), r3 = _mm_load_ps(out + (a * 4 + 3) * lanes + j);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(y_k + at[j] + a * g.OW, output(r0, vb));
        _mm_storeu_ps(y_k + at[j + 1] + a * g.OW, output(r1, vb));
        _mm_storeu_ps(y_k + at[j + 2] + a * g.OW, output(r2, vb));
        _mm_storeu_ps(y_k + at[j + 3] + a * g.OW, output(r3, vb));
      }
    }
  }
  void store_tile(const float* out, int lanes, ConvOutput output, float bias, float* y_k, int j) const {
    for (int a = 0; a < rows[j]; ++a)
      for (int b = 0; b < cols[j]; ++b)
        y_k[at[j] + a * g.OW + b] = output(out[(a * side + b) * lanes + j], bias);
  }
};

// One tile's outputs with the output channels in the lanes (the transposed products'):
// y_t[j * plane + a * OW + b] = act(out[(a * side + b) * lanes + j] + bias[k0 + j]) for the
// channels j < kn and the tile's rows x cols outputs inside the map. Four channels of a whole tile
// at a time go through SSE registers: a 4x4 transpose turns the four points (a, 0..3) of four
// channels into each channel's row a (F(4, 3)); an interleave turns the points (a, 0..1) into
// two-float rows (F(2, 3)). out is 16-byte aligned and lanes a multiple of 4.
void store_channel_lanes(const float* out, int side, int lanes, int64_t kn, int rows, int cols, ConvOutput output,
                         int64_t k0, float* y_t, int64_t plane, int64_t OW) {
  int64_t j = 0;
  if (rows == side && cols == side && (side == 4 || side == 2)) {
    for (; j + 4 <= kn; j += 4) {
      float* y0 = y_t + j * plane;
      float *y1 = y0 + plane, *y2 = y1 + plane, *y3 = y2 + plane;
      const float b0 = output.bias(k0 + j), b1 = output.bias(k0 + j + 1), b2 = output.bias(k0 + j + 2),
                  b3 = output.bias(k0 + j + 3);
      if (side == 4) {
        const __m128 vb0 = _mm_set1_ps(b0), vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vb3 = _mm_set1_ps(b3);
        for (int a = 0; a < 4; ++a) {
          __m128 r0 = _mm_load_ps(out + (a * 4 + 0) * lanes + j), r1 = _mm_load_ps(out + (a * 4 + 1) * lanes + j),
                 r2 = _mm_load_ps(out + (a * 4 + 2) * lanes + j), r3 = _mm_load_ps(out + (a * 4 + 3) * lanes + j);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(y0 + a * OW, output(r0, vb0));
          _mm_storeu_ps(y1 + a * OW, output(r1, vb1));
          _mm_storeu_ps(y2 + a * OW, output(r2, vb2));
          _mm_storeu_ps(y3 + a * OW, output(r3, vb3));
        }
      } else {
        const __m128 vb01 = _mm_setr_ps(b0, b0, b1, b1), vb23 = _mm_setr_ps(b2, b2, b3, b3);
        for (int a = 0; a < 2; ++a) {
          const __m128 e0 = _mm_load_ps(out + (a * 2) * lanes + j), e1 = _mm_load_ps(out + (a * 2 + 1) * lanes + j);
          const __m128 c01 = output(_mm_unpacklo_ps(e0, e1), vb01), c23 = output(_mm_unpackhi_ps(e0, e1), vb23);
          _mm_storel_pi(reinterpret_cast<__m64*>(y0 + a * OW), c01);
          _mm_storeh_pi(reinterpret_cast<__m64*>(y1 + a * OW), c01);
          _mm_storel_pi(reinterpret_cast<__m64*>(y2 + a * OW), c23);
          _mm_storeh_pi(reinterpret_cast<__m64*>(y3 + a * OW), c23);
        }
      }
    }
  }
  for (; j < kn; ++j) {
    float* y_k = y_t + j * plane;
    const float b = output.bias(k0 + j);
    for (int a = 0; a < rows; ++a)
      for (int e = 0; e < cols; ++e) y_k[a * OW + e] = output(out[(a * side + e) * lanes + j], b);
  }
}

// The batch zero-padded once so that every tile reads a whole (tile + 2)^2 window without bounds
// checks: pad_h / pad_w rows and columns before the map, and after it as many as the last tiles
// need (and kWinogradInputSlack floats after the last plane, which the transform may read and
// never uses). Rows of tiles.cols * tile + 2 floats, planes of (tiles.rows * tile + 2) rows. In the
// calling thread's scratch (slot 5): written here, read by every thread of the caller's loop.
// Only the border is zeroed; the map is copied over the rest.
const float* pad_batch(const Conv2dGeometry& g, const Tiles& tiles, const float* x) {
  const int64_t Hp = tiles.rows * tiles.side + 2, Wp = tiles.cols * tiles.side + 2, padded = Hp * Wp;
  const int64_t plane = g.H * g.W, right = Wp - g.pad_w - g.W;
  float* xpad = aligned_thread_scratch(static_cast<size_t>(g.N * g.C * padded + kWinogradInputSlack), 5);
  parallel_for(g.N * g.C, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* dst = xpad + i * padded;
      std::memset(dst, 0, g.pad_h * Wp * sizeof(float));
      for (int64_t h = 0; h < g.H; ++h) {
        float* row = dst + (h + g.pad_h) * Wp;
        std::memset(row, 0, g.pad_w * sizeof(float));
        std::memcpy(row + g.pad_w, x + i * plane + h * g.W, g.W * sizeof(float));
        std::memset(row + g.pad_w + g.W, 0, right * sizeof(float));
      }
      std::memset(dst + (g.H + g.pad_h) * Wp, 0, (Hp - g.H - g.pad_h) * Wp * sizeof(float));
    }
  });
  return xpad;
}

// ---- Few tiles: the products transposed ------------------------------------------------------
//
// One face's 12x12 and 6x6 layers have 9 tiles: a B panel of NR tiles would be mostly empty, and
// one block of tiles one thread's work. There the products run transposed,
//
//   M^T[xi][t, k] = sum over c of  V^T[xi][t, c] * U^T[xi][c, k],
//
// the tiles as the rows of the few-rows micro-kernel (gemm_microkernel.h: MR = 3, so 9 tiles fill
// three panels exactly) and the output channels across its NR columns (32 or 64), so that the
// threads share the output channels' panels. Each thread transforms
// its panel's kernels in blocks of input channels that stay in L2 (points x kc x NR floats),
// runs their products and, at the last block, the output transform of its channels. The input
// transform (every tile, every channel) runs first, shared.

// Input channels per block of the transposed products: a block's transformed kernels, points x
// kc x NR floats, about 256 KB (half a small L2), and at least 16 steps per micro-kernel call.
int64_t few_tiles_depth(int points, int nr) {
  return std::clamp<int64_t>(65536 / (points * nr), 16, gemm_depth_block(nr));
}

// U^T of output-channel panel q and depth block [c0, c0 + kc) as the B panels of the transposed
// products: ut[(xi * kc + c) * NR + j] = U[xi][q * NR + j, c0 + c] (zero past K), a vector's
// width of kernels at a time along their input channels.
void transposed_kernel_block(const Conv2dGeometry& g, int tile, const float* w, int64_t q, int64_t c0,
                             int64_t kc, float* ut) {
  const VectorKernels& vk = *active_vector_kernels();
  const int64_t C = g.C, K = g.K, nr = active_few_rows_microkernel()->nr;
  for (int64_t j0 = 0; j0 < nr; j0 += vk.width) {
    const int64_t k0 = q * nr + j0;
    const int n = static_cast<int>(std::clamp<int64_t>(K - k0, 0, vk.width));
    for (int64_t c = 0; c < kc; ++c)
      vk.winograd_kernels(tile, w + (std::min(k0, K - 1) * C + c0 + c) * 9, C * 9, n, ut + c * nr + j0, kc * nr);
  }
}

// A frozen layer's kernels transformed once, in the layout above for every panel and depth
// block: panel q's block c0 at (q * C + c0) * points * NR floats. Null without packed weights.
const float* packed_transposed_kernels(const Conv2dGeometry& g, int tile, const float* w, PackedWeights* packed) {
  if (!packed) return nullptr;
  const int64_t nr = active_few_rows_microkernel()->nr, points = (tile + 2) * (tile + 2);
  const int64_t panels = (g.K + nr - 1) / nr, kc_max = few_tiles_depth(static_cast<int>(points), static_cast<int>(nr));
  const std::string key = "winograd F(" + std::to_string(tile) + ",3) transposed: NR " + std::to_string(nr) +
                          ", depth " + std::to_string(kc_max) + ", " + std::to_string(g.K) + "x" + std::to_string(g.C);
  return packed->get(key, static_cast<size_t>(panels * g.C * points * nr), [&](float* ut) {
    parallel_for(panels, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t c0 = 0; c0 < g.C; c0 += kc_max)
          transposed_kernel_block(g, tile, w, q, c0, std::min(kc_max, g.C - c0), ut + (q * g.C + c0) * points * nr);
    });
  });
}

void forward_few_tiles(const Conv2dGeometry& g, int tile, const float* x, const float* w,
                       const ConvOutput& output, float* y, PackedWeights* packed) {
  const GemmMicroKernel& uk = *active_few_rows_microkernel();
  const VectorKernels& vk = *active_vector_kernels();
  const int mr = uk.mr, nr = uk.nr, side = tile + 2, points = side * side;
  const int64_t C = g.C, K = g.K;
  const Tiles tiles(g, tile);
  const int64_t rows = round_up(tiles.total, mr);
  const int64_t Wp = tiles.cols * tile + 2, padded = (tiles.rows * tile + 2) * Wp;
  const float* xpad = pad_batch(g, tiles, x);

  // V, transformed a group of tiles at a time (whole vectors and whole panels of MR: 24 tiles
  // under avx2, 48 under avx512), group g's vectors of `lanes` tiles at
  // vt + g * points * C * group + (xi * C + c) * lanes (rows past the last tile repeat it: finite,
  // never stored), in the calling thread's scratch (slot 9). The micro-kernel reads each panel of
  // MR tiles there in place, lanes floats from one depth step to the next (gemm_microkernel.h's
  // lda < 0). The transform runs on chunks of channels, so that one group of tiles still splits
  // over the threads.
  const int group = std::lcm(mr, vk.width);
  const int64_t groups = (tiles.total + group - 1) / group, group_floats = points * C * group;
  float* vt = aligned_thread_scratch(static_cast<size_t>(groups * group_floats), 9);
  const auto group_lanes = [&](int64_t g_index) {  // only the vectors that hold tiles of its panels
    return round_up(std::min<int64_t>(group, rows - g_index * group), vk.width);  // 9 tiles: 16
  };
  parallel_for_parts(groups, C, 2 * cpu_threads(), [&](int64_t gi, int64_t c0, int64_t c1) {
    const int64_t t0 = gi * group;
    int32_t offsets[kMaxNr];
    for (int j = 0; j < group; ++j) {
      const int64_t t = std::min(t0 + j, tiles.total - 1);
      const int64_t n = t / tiles.per_image, r = t % tiles.per_image;
      offsets[j] = static_cast<int32_t>(n * C * padded + (r / tiles.cols * Wp + r % tiles.cols) * tile);
    }
    const int64_t lanes = group_lanes(gi);
    vk.winograd_input(tile, xpad + c0 * padded, offsets, static_cast<int>(lanes), c1 - c0, padded, Wp,
                      vt + gi * group_floats + c0 * lanes, C * lanes);
  });

  // The work: panels of NR output channels, and where there are fewer panels than threads (64
  // output channels under avx512 are one panel), each panel's tiles split into parts of whole
  // micro-kernel rows too, so that no thread idles (the kernels' transform, where not kept
  // packed, is then made by each part).
  const int64_t panels = (K + nr - 1) / nr, kc_max = few_tiles_depth(points, nr);
  const int64_t out_plane = g.OH * g.OW;
  const float* ut_packed = packed_transposed_kernels(g, tile, w, packed);
  parallel_for_parts(panels, rows / mr, cpu_threads(), [&](int64_t q, int64_t mr_lo, int64_t mr_hi) {
    // U^T of one panel and depth block (transposed_kernel_block: made here, or kept packed);
    // M^T of the panel: mt[(xi * rows + t) * NR + j], for the part's tiles [t_lo, t_hi).
    float* scratch = ut_packed ? nullptr : aligned_thread_scratch(static_cast<size_t>(points * kc_max * nr), 3);
    float* mt = aligned_thread_scratch(static_cast<size_t>(points * rows * nr), 4);
    const int64_t t_lo = mr_lo * mr, t_hi = mr_hi * mr;
    for (int64_t c0 = 0; c0 < C; c0 += kc_max) {
      const int64_t kc = std::min(kc_max, C - c0);
      const float* ut = ut_packed ? ut_packed + (q * C + c0) * points * nr : scratch;
      if (!ut_packed) transposed_kernel_block(g, tile, w, q, c0, kc, scratch);
      for (int xi = 0; xi < points; ++xi)
        for (int64_t t0 = t_lo; t0 < t_hi; t0 += mr) {  // a panel of MR tiles, in place in its group
          const int64_t gi = t0 / group, lanes = group_lanes(gi);
          const float* a = vt + gi * group_floats + (xi * C + c0) * lanes + (t0 - gi * group);
          uk.run(kc, a, -lanes, ut + xi * kc * nr, nullptr, mt + (xi * rows + t0) * nr, nr, 1.0f,
                 c0 == 0 ? 0.0f : 1.0f);
        }
    }
    // Y = A^T M A per tile, the panel's channels in the lanes, then act(Y + bias) into the maps
    // (a local copy of the output's bias and activation: the stores cannot change it).
    const ConvOutput act = output;
    const int64_t k0 = q * nr, kn = std::min<int64_t>(nr, K - k0);
    alignas(64) float out[16 * kMaxNr];
    for (int64_t t = t_lo; t < std::min(t_hi, tiles.total); ++t) {
      vk.winograd_output(tile, mt + t * nr, rows * nr, nr, out);
      const int64_t n = t / tiles.per_image, r = t % tiles.per_image;
      const int64_t oh0 = r / tiles.cols * tile, ow0 = r % tiles.cols * tile;
      const int oh_n = static_cast<int>(std::min<int64_t>(tile, g.OH - oh0));
      const int ow_n = static_cast<int>(std::min<int64_t>(tile, g.OW - ow0));
      store_channel_lanes(out, tile, nr, kn, oh_n, ow_n, act, k0, y + (n * K + k0) * out_plane + oh0 * g.OW + ow0,
                          out_plane, g.OW);
    }
  });
}

std::atomic<int64_t> calls{0}, few_tiles_calls{0}, packed_calls{0}, weight_calls{0};

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FER_WINOGRAD");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

}  // namespace

int64_t conv2d_winograd_calls() { return calls.load(); }
int64_t conv2d_winograd_few_tiles_calls() { return few_tiles_calls.load(); }
int64_t conv2d_winograd_packed_calls() { return packed_calls.load(); }
int64_t conv2d_winograd_weight_calls() { return weight_calls.load(); }

bool conv2d_winograd_applies(const Conv2dGeometry& g) {
  const GemmMicroKernel* uk = active_gemm_microkernel();
  return enabled() && uk && uk->nr <= kMaxNr && matmul_precision() == Precision::FP32 &&
         g.KH == 3 && g.KW == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
         g.dil_w == 1 && g.groups == 1 && g.pad_h <= 2 && g.pad_w <= 2 && g.C >= kMinWinogradChannels &&
         g.K >= kMinWinogradChannels && winograd_plan(g, uk->nr, false).tile != 0;
}

void conv2d_winograd_forward(const Conv2dGeometry& g, const float* x, const float* w,
                             const ConvOutput& output, float* y, PackedWeights* packed) {
  calls.fetch_add(1, std::memory_order_relaxed);
  if (packed) packed_calls.fetch_add(1, std::memory_order_relaxed);
  const GemmMicroKernel& uk = *active_gemm_microkernel();
  const Plan plan = winograd_plan(g, uk.nr, packed != nullptr);
  if (plan.few_tiles) {
    few_tiles_calls.fetch_add(1, std::memory_order_relaxed);
    return forward_few_tiles(g, plan.tile, x, w, output, y, packed);
  }
  const int mr = uk.mr, nr = uk.nr;
  const int64_t C = g.C, K = g.K, K_pad = round_up(K, mr);
  const int tile = plan.tile, side = tile + 2, points = side * side;
  const Tiles tiles(g, tile);

  // U packed as the micro-kernel's A panels, per point xi and depth block [c0, c0 + kc):
  // panel p holds rows [p*MR, p*MR + MR) as a[c * MR + i] (zero rows past K), at
  // u + xi * K_pad * C + c0 * K_pad + p * kc * MR. Each thread transforms whole panels, one input
  // channel at a time: the MR kernels' values of each point go where the panel keeps them, so
  // that the 36 streams of stores move forward together (a store per value into 36 planes
  // far apart made this transform most of a one-face layer's time).
  // A frozen layer keeps U (packed weights): made at its first call, read by the next ones.
  const auto transform_all = [&](float* u) {
    const FloatKernelTransform G(tile);
    parallel_for(K_pad / mr, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t c = 0; c < C; ++c) {
          const float* g0 = w + (p * mr * C + c) * 9;
          const int n = static_cast<int>(std::min<int64_t>(mr, K - p * mr));
          const int64_t c0 = c / kDepthBlock * kDepthBlock, kc = std::min(kDepthBlock, C - c0);
          float* dst = u + c0 * K_pad + p * kc * mr + (c - c0) * mr;
          if (mr == 4) transform_kernels<4>(tile, G.G, g0, C * 9, n, dst, K_pad * C);
          else transform_kernels<kMaxMr>(tile, G.G, g0, C * 9, n, dst, K_pad * C);
        }
    });
  };
  const size_t u_floats = static_cast<size_t>(points * K_pad * C);
  const float* u;
  if (packed) {
    u = packed->get("winograd F(" + std::to_string(tile) + ",3) A panels: MR " + std::to_string(mr) + ", " +
                        std::to_string(K) + "x" + std::to_string(C),
                    u_floats, transform_all);
  } else {
    float* scratch = aligned_thread_scratch(u_floats, 9);
    transform_all(scratch);
    u = scratch;
  }
  const int64_t Wp = tiles.cols * tile + 2, padded = (tiles.rows * tile + 2) * Wp;
  const int64_t out_plane = g.OH * g.OW;
  const float* xpad = pad_batch(g, tiles, x);

  const VectorKernels& vk = *active_vector_kernels();
  const int64_t blocks = (tiles.total + nr - 1) / nr, row_panels = K_pad / mr;

  // The three steps of a block of NR tiles, over V[xi][c][j] (one B panel of depth C per xi) and
  // M[xi][k][j] (rows of NR floats).
  // Input transform: V = B^T d B of the channels [c0, c0 + cc), lane j's window at channel 0
  // starting offsets[j] floats into the padded batch (lanes past the last tile repeat it).
  const auto transform_input = [&](int64_t block, int64_t c0, int64_t cc, float* v) {
    const int64_t t0 = block * nr, n_tiles = std::min<int64_t>(nr, tiles.total - t0);
    int32_t offsets[kMaxNr];
    for (int j = 0; j < nr; ++j) {
      const int64_t t = t0 + std::min<int64_t>(j, n_tiles - 1);
      const int64_t n = t / tiles.per_image, r = t % tiles.per_image;
      offsets[j] = static_cast<int32_t>(n * C * padded + (r / tiles.cols * Wp + r % tiles.cols) * tile);
    }
    vk.winograd_input(tile, xpad + c0 * padded, offsets, nr, cc, padded, Wp, v + c0 * nr, C * nr);
  };
  // The 36 products M[xi] = U[xi] V[xi] of the micro-kernel's row panels [p0, p1), in depth blocks
  // of kDepthBlock channels; then Y = A^T M A per tile of their output channels, act(Y + bias)
  // into the map (edges dropped).
  const auto multiply_and_store = [&](int64_t block, const float* v, float* m, int64_t p0, int64_t p1) {
    for (int xi = 0; xi < points; ++xi)
      for (int64_t c0 = 0; c0 < C; c0 += kDepthBlock) {
        const int64_t kc = std::min(kDepthBlock, C - c0);
        const float* b_panel = v + (xi * C + c0) * nr;
        for (int64_t p = p0; p < p1; ++p)
          uk.run(kc, u + xi * K_pad * C + c0 * K_pad + p * kc * mr, 0, b_panel, nullptr,
                 m + (xi * K_pad + p * mr) * nr, nr, 1.0f, c0 == 0 ? 0.0f : 1.0f);
      }
    const int64_t t0 = block * nr;
    TileOutputs dst(g, tiles, t0, std::min<int64_t>(nr, tiles.total - t0));
    alignas(64) float out[16 * kMaxNr];
    for (int64_t k = p0 * mr; k < std::min(p1 * mr, K); ++k) {
      vk.winograd_output(tile, m + k * nr, K_pad * nr, nr, out);
      dst.store(out, nr, output, output.bias(k), y + k * out_plane);
    }
  };

  const int threads = cpu_threads();
  if (blocks >= 2 * threads || blocks % threads == 0) {
    // Enough blocks to share out: one thread takes a block through all three steps (its V and M
    // stay in its L2).
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(std::min<int64_t>(threads, blocks)))
    for (int64_t block = 0; block < blocks; ++block) {
      float* v = aligned_thread_scratch(static_cast<size_t>(points * C * nr), 3);
      float* m = aligned_thread_scratch(static_cast<size_t>(points * K_pad * nr), 4);
      transform_input(block, 0, C, v);
      multiply_and_store(block, v, m, 0, row_panels);
    }
    return;
  }
  // A few blocks that the threads would share unevenly (one face's 48x48 layer under avx512: 144
  // tiles, three blocks of 48 on two threads): every block's V first, the channels in chunks
  // across the threads, then the products and outputs of each block in parts of its row panels.
  float* v_all = aligned_thread_scratch(static_cast<size_t>(blocks * points * C * nr), 6);
  parallel_for_parts(blocks, C, 2 * threads, [&](int64_t block, int64_t c0, int64_t c1) {
    transform_input(block, c0, c1 - c0, v_all + block * points * C * nr);
  });
  parallel_for_parts(blocks, row_panels, 2 * threads, [&](int64_t block, int64_t p0, int64_t p1) {
    float* m = aligned_thread_scratch(static_cast<size_t>(points * K_pad * nr), 4);
    multiply_and_store(block, v_all + block * points * C * nr, m, p0, p1);
  });
}

// ---- The weight gradient --------------------------------------------------------------------
//
// With U = G g G^T and Y = A^T [U .* V] A per tile, the gradient of the loss with respect to U is
// a sum over tiles of (A dY A^T) .* V, and the kernel's gradient is G^T (that) G:
//
//   dU[xi][k, c] = sum over tiles t of  dM[xi][k, t] * V[xi][c, t],   dM = A dY A^T per tile,
//   dW[k, c] = G^T dU[.][k, c] G                                      (6x6 -> 3x3)
//
// 36 products of depth "tiles", each thread adding the blocks of NR tiles it takes into its own
// dU^T [xi][C][K_pad] (C rows, output channels across): V[xi] as it comes out of the input
// transform ([C][NR], read in place as the micro-kernel's A rows, depth = tiles), dM written by
// its transform straight as B panels (depth = tiles, NR output channels across).

// Measured against the direct weight gradient (2 threads): on Ice Lake (avx512, NR = 48)
// 128 -> 128 at 12x12 1.5x, 256 -> 256 at 6x6 1.1x, 64 -> 64 at 24x24 even (its output channels
// padded from 64 to the panel width's 96, and the output-gradient transform gathers across
// channels); on Zen 3 (avx2, NR = 24: 64 padded to 72 only) 64 -> 64 at 24x24 1.6-1.9x
// (33-42 -> 21-24 ms); on a Zen 1-class EPYC (avx2) 32 -> 32 at 48x48, its 32 channels padded to
// 48, 49-52 -> 38-42 ms. So it is taken where whole panels of output channels add at most half
// to them under avx2, an eighth under avx512 (whose 1.5x measured even).
double max_channel_padding(int64_t nr) { return nr <= 24 ? 1.5 : 1.125; }

bool conv2d_winograd_weight_applies(const Conv2dGeometry& g) {
  const GemmMicroKernel* uk = active_gemm_microkernel();
  if (!conv2d_winograd_applies(g) || weight_gradient_plan(g, uk->nr).few_tiles ||
      g.C % uk->mr != 0 ||  // A rows in place: whole panels of C
      static_cast<double>(round_up(g.K, uk->nr)) > max_channel_padding(uk->nr) * static_cast<double>(g.K))
    return false;
  // The output-gradient transform gathers with 32-bit offsets across one image's channels.
  const Tiles tiles(g, weight_gradient_plan(g, uk->nr).tile);
  return round_up(g.K, uk->nr) * tiles.rows * tiles.side * tiles.cols * tiles.side < (int64_t{1} << 31);
}

void conv2d_winograd_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                     float* dw, float* dbias) {
  weight_calls.fetch_add(1, std::memory_order_relaxed);
  const GemmMicroKernel& uk = *active_gemm_microkernel();
  const VectorKernels& vk = *active_vector_kernels();
  const int mr = uk.mr, nr = uk.nr;
  const int64_t C = g.C, K = g.K, K_pad = round_up(K, nr), panels = K_pad / nr;
  const int tile = weight_gradient_plan(g, nr).tile, side = tile + 2, points = side * side;
  const Tiles tiles(g, tile);
  const int64_t Wp = tiles.cols * tile + 2, padded = (tiles.rows * tile + 2) * Wp;
  const float* xpad = pad_batch(g, tiles, x);

  // dy zero-padded to whole tiles and to K_pad channels (the transform reads panels of NR), in
  // the calling thread's scratch (slot 6); only what dy does not cover is zeroed.
  const int64_t Hq = tiles.rows * tile, Wq = tiles.cols * tile, dplane = Hq * Wq, P = g.OH * g.OW;
  float* dypad = aligned_thread_scratch(static_cast<size_t>(g.N * K_pad * dplane), 6);
  parallel_for(g.N * K_pad, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t n = i / K_pad, k = i % K_pad;
      float* dst = dypad + i * dplane;
      if (k >= K) {
        std::memset(dst, 0, dplane * sizeof(float));
        continue;
      }
      for (int64_t h = 0; h < g.OH; ++h) {
        std::memcpy(dst + h * Wq, dy + (n * K + k) * P + h * g.OW, g.OW * sizeof(float));
        std::memset(dst + h * Wq + g.OW, 0, (Wq - g.OW) * sizeof(float));
      }
      std::memset(dst + g.OH * Wq, 0, (Hq - g.OH) * Wq * sizeof(float));
    }
  });

  const int64_t blocks = (tiles.total + nr - 1) / nr;
  const int threads = static_cast<int>(std::min<int64_t>(cpu_threads(), blocks));
  const int64_t part = points * C * K_pad;  // one thread's dU^T
  std::vector<float> partial(static_cast<size_t>(threads * part), 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t_id = omp_get_thread_num(), nt = omp_get_num_threads();
    float* dut = partial.data() + t_id * part;
    float* v = aligned_thread_scratch(static_cast<size_t>(points * C * nr), 3);
    float* dmt = aligned_thread_scratch(static_cast<size_t>(points * K_pad * nr), 4);
    for (int64_t block = blocks * t_id / nt; block < blocks * (t_id + 1) / nt; ++block) {
      const int64_t t0 = block * nr;
      const int n_tiles = static_cast<int>(std::min<int64_t>(nr, tiles.total - t0));
      int32_t offsets[kMaxNr];
      int64_t dy_offsets[kMaxNr];
      for (int j = 0; j < nr; ++j) {
        const int64_t t = t0 + std::min<int64_t>(j, n_tiles - 1);
        const int64_t n = t / tiles.per_image, r = t % tiles.per_image;
        const int64_t th = r / tiles.cols, tw = r % tiles.cols;
        offsets[j] = static_cast<int32_t>(n * C * padded + (th * Wp + tw) * tile);
        dy_offsets[j] = n * K_pad * dplane + (th * Wq + tw) * tile;
      }
      vk.winograd_input(tile, xpad, offsets, nr, C, padded, Wp, v, C * nr);
      vk.winograd_grad(tile, dypad, dy_offsets, n_tiles, nr, dplane, Wq,
                       static_cast<int>(panels), nr, dmt);
      // dU^T[xi][c, k] += V[xi][c, t] dM[xi][k, t] over this block's tiles.
      for (int xi = 0; xi < points; ++xi)
        for (int64_t p = 0; p < C / mr; ++p)
          for (int64_t q = 0; q < panels; ++q)
            uk.run(n_tiles, v + (xi * C + p * mr) * nr, nr, dmt + (xi * panels + q) * nr * nr,
                   nullptr, dut + (xi * C + p * mr) * K_pad + q * nr, K_pad, 1.0f, 1.0f);
    }
  }

  // dW[k, c] = G^T dU G, summing the threads' dU in thread order (deterministic per count), for
  // eight output channels at a time: dU^T's rows hold them side by side (K_pad, a multiple of
  // NR, leaves no partial eight to read).
  constexpr int kLanes = 8;
  parallel_for((K + kLanes - 1) / kLanes, 1, [&](int64_t b0, int64_t b1) {
    double du[kMaxPoints][kLanes];
    for (int64_t k0 = b0 * kLanes; k0 < b1 * kLanes; k0 += kLanes)
      for (int64_t c = 0; c < C; ++c) {
        for (int xi = 0; xi < points; ++xi) {
          double s[kLanes] = {};
          for (int t = 0; t < threads; ++t) {
            const float* p = partial.data() + t * part + (xi * C + c) * K_pad + k0;
            for (int l = 0; l < kLanes; ++l) s[l] += p[l];
          }
          for (int l = 0; l < kLanes; ++l) du[xi][l] = s[l];
        }
        const int n = static_cast<int>(std::min<int64_t>(kLanes, K - k0));
        transform_kernel_gradients<kLanes>(tile, du, n, dw + (k0 * C + c) * 9, C * 9);
      }
  });
  if (dbias)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.0;
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t i = 0; i < P; ++i) s += dy[(n * K + k) * P + i];
      dbias[k] = static_cast<float>(s);
    }
}

}  // namespace fer::cpu
