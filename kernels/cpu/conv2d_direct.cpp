// Direct convolution (stride 1, no dilation, one group): matrix products whose right operand is
// read straight from a zero-padded copy of the image, so that nothing like im2col is built.
// The math: conv2d in engine/ops/conv_pool.cpp (contracts: engine/backend.h); this file computes
// its stride-1 case on the padded-width grid below.
//
// The padded-width pixel grid. Pad the image once to Hp x Wp (Hp = H + 2*pad_h, Wp = W + 2*pad_w)
// and number output pixels on a grid as wide as the padded image, q = oh*Wp + ow. Then the input
// pixel under kernel tap (c, kh, kw) of output pixel q is, for every q,
//
//   xpad[c*Hp*Wp + (oh + kh)*Wp + ow + kw] = xpad[q + offset(c, kh, kw)],
//   offset(c, kh, kw) = c*Hp*Wp + kh*Wp + kw,
//
// a fixed shift of q. So row r = (c, kh, kw) of the im2col matrix, over consecutive q, is just
// consecutive floats of xpad starting at offset(r): the GEMM micro-kernel can load its B vectors
// from xpad + offset(r) + q directly (gemm_microkernel.h's b_offsets). The grid has Wp - OW
// columns per row that are not output pixels (4% of the work at 48x48, 25% at 6x6); they are
// computed and dropped when the result is copied out.
//
// Forward, per image:  out[K, q] = W[K, R] * xpad(R, q),  then y[k, oh, ow] = out[k, oh*Wp + ow].
//   Loops: depth blocks of R (that block of the weights stays in L2) > panels of NR grid pixels
//   (the input rows they read stay in L1) > panels of MR output channels (micro-kernel). Both
//   operands are read in place: W row by row, xpad through the tap offsets. Nothing is packed,
//   which matters most for one-face inference, where every weight is used for one image only.
//
// Weight gradient: dW^T[r, k] = sum over images n and grid pixels q of xpad_n[q + offset(r)] * dy'_n[k, q],
//   with dy' the output gradient spread onto the grid (zero in the dropped columns, so they add
//   nothing): a product of depth "pixels x images" whose left operand is again the shifted
//   padded image, read in place, and whose right operand is dy' packed pixel-major
//   (conv2d_microkernel.h). Each thread sums its images into its own dW^T; the sums are added
//   and transposed into dW at the end.
//
// In bf16 (conv2d_bf16_microkernel.h) VDPBF16PS sums pairs of products. The forward pairs input
// channels (its sum runs over taps), the weight gradient pairs neighbouring grid pixels (its sum
// runs over pixels): a plain bf16 padded image serves every tap offset, odd or even, as a pair.
//
// The input gradient needs no kernel of its own: with stride 1 it is a forward convolution of dy
// with the rotated kernels (conv2d.cpp), which lands here again.
#include "kernels/cpu/conv2d_direct.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/conv2d_depthwise.h"
#include "kernels/cpu/conv2d_microkernel.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

// Sizes of the padded image and of the output grid.
struct Grid {
  int64_t Hp, Wp, plane;  // padded image
  int64_t cells;          // OH * Wp grid pixels that hold outputs (and dropped columns)
  int64_t image;          // floats per padded image, with zero slack for reads past the last row
  Grid(const Conv2dGeometry& g, int64_t slack)
      : Hp(g.H + 2 * g.pad_h), Wp(g.W + 2 * g.pad_w), plane(Hp * Wp), cells(g.OH * Wp),
        image(g.C * Hp * Wp + slack) {}
};

// xpad = x with pad_h / pad_w zero rows and columns around every channel, and zero slack after
// (its values rounded to bf16 when the products run in bf16). pad_channels does the channels
// [c0, c1) and, with the last channel, the slack: threads can share one image.
void pad_channels(const Conv2dGeometry& g, const Grid& grid, const float* x, float* xpad, int64_t c0, int64_t c1) {
  const int64_t end = c1 == g.C ? grid.image : c1 * grid.plane;
  std::memset(xpad + c0 * grid.plane, 0, (end - c0 * grid.plane) * sizeof(float));
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t h = 0; h < g.H; ++h) {
      float* row = xpad + c * grid.plane + (h + g.pad_h) * grid.Wp + g.pad_w;
      std::memcpy(row, x + (c * g.H + h) * g.W, g.W * sizeof(float));
      round_operands(row, g.W);
    }
}
void pad_image(const Conv2dGeometry& g, const Grid& grid, const float* x, float* xpad) {
  pad_channels(g, grid, x, xpad, 0, g.C);
}

// offset(r) for every row r = (c, kh, kw) of the receptive field.
std::vector<int32_t> tap_offsets(const Conv2dGeometry& g, const Grid& grid) {
  std::vector<int32_t> offsets(g.C * g.KH * g.KW);
  for (int64_t c = 0, r = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) offsets[r++] = static_cast<int32_t>(c * grid.plane + kh * grid.Wp + kw);
  return offsets;
}

const ConvWeightGradKernel* active_weight_grad_kernel() {
  return for_fp32_isa<ConvWeightGradKernel, conv_weight_grad_kernel_avx2, conv_weight_grad_kernel_avx512>();
}

// The products run in bf16 and the active set has VDPBF16PS (AMX tiles, where they apply, are
// chosen before the direct convolution, in conv2d.cpp).
bool native_bf16_products() {
  return matmul_precision() == Precision::BF16 && bf16_dot_isa();
}

}  // namespace

const Bf16ConvKernel* active_bf16_conv_kernel() {
  if (!native_bf16_products()) return nullptr;
  static const Bf16ConvKernel native = bf16_conv_kernel_avx512bf16();
  return &native;
}

const Bf16ConvWeightGradKernel* active_bf16_conv_weight_grad_kernel() {
  if (!native_bf16_products()) return nullptr;
  static const Bf16ConvWeightGradKernel native = bf16_conv_weight_grad_kernel_avx512bf16();
  return &native;
}

bool conv2d_direct_applies(const Conv2dGeometry& g) {
  return active_gemm_microkernel() && active_weight_grad_kernel() && g.groups == 1 && g.stride_h == 1 &&
         g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1;
}

namespace {

// y[k, oh, ow] = act(out[k, oh*Wp + ow] + bias[k]) for the channels [k0, k1) of one image: the
// valid cells of the padded-width grid, rows of cells_pad floats per channel.
void copy_out_cells(const Conv2dGeometry& g, int64_t Wp, int64_t cells_pad, const float* out,
                    const ConvOutput& output, float* yn, int64_t k0, int64_t k1) {
  const int64_t P = g.OH * g.OW;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      output.store(out + k * cells_pad + oh * Wp, yn + k * P + oh * g.OW, g.OW, output.bias(k));
}

// dW[k, r] = sum over threads t of dW^T_t[r, k], and dbias likewise: the weight-gradient paths
// keep per thread `part` floats, dW^T [R_pad, K_pad] and then dbias [K]. Added in thread order,
// so a result depends on the thread count only.
void sum_weight_grad_partials(const Conv2dGeometry& g, int64_t R_pad, int64_t K_pad, int threads,
                              const std::vector<float>& partial, float* dw, float* dbias) {
  const int64_t R = g.C * g.KH * g.KW, part = R_pad * K_pad + g.K;
  parallel_for(g.K, 1, [&](int64_t k_begin, int64_t k_end) {
    for (int64_t k = k_begin; k < k_end; ++k)
      for (int64_t r = 0; r < R; ++r) {
        float s = 0.0f;
        for (int t = 0; t < threads; ++t) s += partial[t * part + r * K_pad + k];
        dw[k * R + r] = s;
      }
  });
  if (dbias)
    for (int64_t k = 0; k < g.K; ++k) {
      float s = 0.0f;
      for (int t = 0; t < threads; ++t) s += partial[t * part + R_pad * K_pad + k];
      dbias[k] = s;
    }
}

// Runs accumulate(n0, nb, dwt, db) for every group of `group` images, the groups spread over the
// threads, each thread adding into its own partial sums (dW^T [R_pad, K_pad], then dbias [K]),
// and adds the partials into dw and dbias as above.
template <typename Accumulate>
void weight_grad_by_groups(const Conv2dGeometry& g, int64_t group, int64_t R_pad, int64_t K_pad,
                           Accumulate accumulate, float* dw, float* dbias) {
  const int64_t groups = (g.N + group - 1) / group;
  const int threads = static_cast<int>(std::min<int64_t>(cpu_threads(), groups));
  const int64_t part = R_pad * K_pad + g.K;
  std::vector<float> partial(static_cast<size_t>(threads) * part, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    float* dwt = partial.data() + t * part;
    for (int64_t i = groups * t / nt; i < groups * (t + 1) / nt; ++i)
      accumulate(i * group, std::min(group, g.N - i * group), dwt, dwt + R_pad * K_pad);
  }
  sum_weight_grad_partials(g, R_pad, K_pad, threads, partial, dw, dbias);
}

// ---- bf16 on VDPBF16PS (conv2d_bf16_microkernel.h) ----------------------------------------------

// Two values as one word of a bf16 pair: `even` in the low half, `odd` in the high half.
inline uint32_t bf16_pair(float even, float odd) {
  return static_cast<uint32_t>(to_bf16(even)) | (static_cast<uint32_t>(to_bf16(odd)) << 16);
}

// The reference conversions (Bf16PackKernels in conv2d_bf16_microkernel.h), one value at a time.
void pair_rows_reference(const float* even, const float* odd, int64_t n, uint32_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_pair(even[i], odd ? odd[i] : 0.0f);
}

void round_row_reference(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i]);
}

void pair_cells_reference(const float* dy, int64_t P, int64_t channels, const int32_t* pixel, int64_t pairs,
                          int nr, uint32_t* dyp) {
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t j = 0; j < nr; ++j) {
      auto value = [&](int32_t q) { return j < channels && q >= 0 ? dy[j * P + q] : 0.0f; };
      dyp[p * nr + j] = bf16_pair(value(pixel[2 * p]), value(pixel[2 * p + 1]));
    }
}

}  // namespace

Bf16PackKernels bf16_pack_reference() {
  return {"reference", pair_rows_reference, round_row_reference, pair_cells_reference};
}

const Bf16PackKernels& active_bf16_pack_kernels() {
  static const Bf16PackKernels kernels = isa_supported(Isa::Avx512) ? bf16_pack_avx512() : bf16_pack_reference();
  return kernels;
}

void conv2d_bf16_forward(const Bf16ConvKernel& kernel, const Conv2dGeometry& g, const float* x,
                         const float* w, const ConvOutput& output, float* y) {
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const int64_t C2 = (g.C + 1) / 2;  // channel pairs (an odd last channel pairs with zeros)
  const int64_t pairs = C2 * g.KH * g.KW;
  const int64_t Hp = g.H + 2 * g.pad_h, Wp = g.W + 2 * g.pad_w, plane = Hp * Wp;
  const int64_t cells_pad = round_up(g.OH * Wp, nr), K_pad = round_up(g.K, mr);
  const int64_t image = C2 * plane + 2 * nr + g.KW;  // words, with zero slack past the last row
  // Pair-tap t = (p, kh, kw): its offset in the interleaved image, and its packed weights
  // wpack[((k / mr) * pairs + t) * mr + k % mr], output channels spread over the threads.
  std::vector<int32_t> offsets(static_cast<size_t>(pairs));
  for (int64_t p = 0, t = 0; p < C2; ++p)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw, ++t) offsets[static_cast<size_t>(t)] = static_cast<int32_t>(p * plane + kh * Wp + kw);
  std::vector<uint32_t> wpack(static_cast<size_t>(K_pad * pairs), 0u);
  const int64_t taps = g.KH * g.KW;
  parallel_for(g.K, 8, [&](int64_t k_begin, int64_t k_end) {
    for (int64_t k = k_begin; k < k_end; ++k) {
      uint32_t* dst = wpack.data() + (k / mr) * pairs * mr + k % mr;
      const float* wk = w + k * g.C * taps;
      for (int64_t p = 0; p < C2; ++p)
        for (int64_t tap = 0; tap < taps; ++tap) {
          const float odd = 2 * p + 1 < g.C ? wk[(2 * p + 1) * taps + tap] : 0.0f;
          dst[(p * taps + tap) * mr] = bf16_pair(wk[2 * p * taps + tap], odd);
        }
    }
  });

  const Bf16PackKernels& pack = active_bf16_pack_kernels();
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(std::min<int64_t>(cpu_threads(), g.N)))
  for (int64_t n = 0; n < g.N; ++n) {
    auto* xpad = reinterpret_cast<uint32_t*>(thread_scratch(image, 0));
    float* out = thread_scratch(K_pad * cells_pad, 1);
    // The image with channel pairs interleaved and zero borders.
    std::memset(xpad, 0, static_cast<size_t>(image) * sizeof(uint32_t));
    const float* xn = x + n * g.C * g.H * g.W;
    for (int64_t p = 0; p < C2; ++p)
      for (int64_t h = 0; h < g.H; ++h) {
        const float* even = xn + ((2 * p) * g.H + h) * g.W;
        const float* odd = 2 * p + 1 < g.C ? xn + ((2 * p + 1) * g.H + h) * g.W : nullptr;
        pack.pair_rows(even, odd, g.W, xpad + p * plane + (h + g.pad_h) * Wp + g.pad_w);
      }
    for (int64_t q = 0; q < cells_pad; q += nr)
      for (int64_t k0 = 0; k0 < K_pad; k0 += mr)
        kernel.run(pairs, wpack.data() + k0 * pairs, xpad + q, offsets.data(), out + k0 * cells_pad + q, cells_pad);
    copy_out_cells(g, Wp, cells_pad, out, output, y + n * g.K * g.OH * g.OW, 0, g.K);
  }
}

void conv2d_bf16_backward_weight(const Bf16ConvWeightGradKernel& kernel, const Conv2dGeometry& g,
                                 const float* dy, const float* x, float* dw, float* dbias) {
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const int64_t R = g.C * g.KH * g.KW, P = g.OH * g.OW;
  // Zero slack after the padded image: the last tap's last pair on an odd grid reads up to
  // element C*plane + KW - 1. image: words per padded bf16 image (x_stride: its bf16 elements).
  const Grid grid(g, g.KW + 1);
  const int64_t image = (grid.image + 1) / 2, x_stride = 2 * image;
  const int64_t pairs = (grid.cells + 1) / 2;                         // pixel pairs per image
  const int64_t R_pad = round_up(R, mr), K_pad = round_up(g.K, nr);
  const std::vector<int32_t> offsets = tap_offsets(g, grid);

  // Image groups as in the fp32 path: ~256 pairs per kernel call, a group's operands near 1 MB.
  const int64_t per_image = image + K_pad * pairs;
  const int64_t group = std::clamp<int64_t>(std::min((256 + pairs - 1) / pairs, (1 << 18) / per_image), 1, g.N);

  // The output pixel of every grid cell (-1 in the dropped columns and the cell that makes the
  // count even).
  std::vector<int32_t> cell_pixel(static_cast<size_t>(2 * pairs), -1);
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) cell_pixel[static_cast<size_t>(oh * grid.Wp + ow)] = static_cast<int32_t>(oh * g.OW + ow);
  const Bf16PackKernels& pack = active_bf16_pack_kernels();

  // dW^T_t += the contribution of images [n0, n0 + nb).
  auto accumulate = [&](int64_t n0, int64_t nb, float* dwt, float* db) {
    const int64_t panel = nb * pairs * nr;  // words of one channel panel of dyp
    auto* xpads = reinterpret_cast<uint16_t*>(thread_scratch(nb * image, 0));
    auto* dyp = reinterpret_cast<uint32_t*>(thread_scratch((K_pad / nr) * panel, 1));
    std::memset(xpads, 0, static_cast<size_t>(nb * image) * sizeof(uint32_t));
    for (int64_t i = 0; i < nb; ++i) {
      const float* xn = x + (n0 + i) * g.C * g.H * g.W;
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t h = 0; h < g.H; ++h)
          pack.round_row(xn + (c * g.H + h) * g.W, g.W,
                         xpads + i * x_stride + c * grid.plane + (h + g.pad_h) * grid.Wp + g.pad_w);
      // dyp[k / nr][i][q / 2][k % nr], half q % 2 = dy[n0 + i, k, oh, ow] at q = oh*Wp + ow.
      const float* dyn = dy + (n0 + i) * g.K * P;
      for (int64_t k0 = 0; k0 < g.K; k0 += nr)
        pack.pair_cells(dyn + k0 * P, P, std::min(nr, g.K - k0), cell_pixel.data(), pairs, static_cast<int>(nr),
                        dyp + (k0 / nr) * panel + i * pairs * nr);
      if (dbias)
        for (int64_t k = 0; k < g.K; ++k) db[k] += lane_sum(dyn + k * P, P);  // from the fp32 dy
    }
    // Chunks of 128 pairs keep a chunk's dyp panel (16 KB) in L1 while the taps pass.
    constexpr int64_t kChunk = 128;
    const uint16_t* x_rows[16];
    for (int64_t p0 = 0; p0 < pairs; p0 += kChunk) {
      const int64_t len = std::min(kChunk, pairs - p0);
      for (int64_t k0 = 0; k0 < K_pad; k0 += nr)
        for (int64_t r0 = 0; r0 < R_pad; r0 += mr) {
          // Taps past R read a valid row (tap 0); their rows of dW^T are dropped.
          for (int64_t i = 0; i < mr; ++i) x_rows[i] = xpads + 2 * p0 + (r0 + i < R ? offsets[r0 + i] : 0);
          kernel.run(nb, len, x_rows, x_stride, dyp + (k0 / nr) * panel + p0 * nr, pairs * nr,
                     dwt + r0 * K_pad + k0, K_pad);
        }
    }
  };

  weight_grad_by_groups(g, group, R_pad, K_pad, accumulate, dw, dbias);
}

// The depth of one pass of the micro-kernel over the taps: every pass loads and stores the output
// tile again, so a pass runs as long as the image rows a tile reads (three padded rows per
// channel, 64 channels of 3x3 taps) stay in L1/L2. 576 against the GEMM's 128: 4-15% faster
// forward on fer_vgg_small's layers (Ice Lake, one thread; 1152 was slower again).
constexpr int64_t kDirectDepthBlock = 576;

void conv2d_direct_forward(const Conv2dGeometry& g, const float* x, const float* w,
                           const ConvOutput& output, float* y) {
  if (const Bf16ConvKernel* bf16 = active_bf16_conv_kernel()) return conv2d_bf16_forward(*bf16, g, x, w, output, y);
  const GemmMicroKernel& uk = *active_gemm_microkernel();
  const int64_t R = g.C * g.KH * g.KW, P = g.OH * g.OW;
  const Grid grid(g, 2 * uk.nr + g.KW);
  const int64_t K_pad = round_up(g.K, uk.mr), cells_pad = round_up(grid.cells, uk.nr);
  const std::vector<int32_t> offsets = tap_offsets(g, grid);
  // The micro-kernel reads W[K, R] in place, MR rows at a time; only a K that is not a multiple
  // of MR needs a copy with zero rows up to K_pad (and bf16 products a rounded copy).
  std::vector<float> w_copy;
  if (K_pad != g.K || matmul_precision() == Precision::BF16) {
    w_copy.assign(K_pad * R, 0.0f);
    std::copy(w, w + g.K * R, w_copy.begin());
    round_operands(w_copy.data(), g.K * R);
    w = w_copy.data();
  }

  // out[i0:i1, :] (+)= W[i0:i1, :] * xpad for the output channels [i0, i1) (multiples of MR).
  auto multiply = [&](const float* xpad, float* out, int64_t i0, int64_t i1) {
    for (int64_t k0 = 0; k0 < R; k0 += kDirectDepthBlock) {
      const int64_t kc = std::min(kDirectDepthBlock, R - k0);
      const float beta = k0 == 0 ? 0.0f : 1.0f;
      for (int64_t q = 0; q < cells_pad; q += uk.nr)
        for (int64_t i = i0; i < i1; i += uk.mr)
          uk.run(kc, w + i * R + k0, R, xpad + q, offsets.data() + k0, out + i * cells_pad + q,
                 cells_pad, 1.0f, beta);
    }
  };
  auto copy_out = [&](const float* out, float* yn, int64_t k0, int64_t k1) {
    copy_out_cells(g, grid.Wp, cells_pad, out, output, yn, k0, k1);
  };

  const int threads = cpu_threads();
  if (g.N >= threads || threads == 1) {  // whole images per thread
    // A 1x1 convolution without padding has the image itself for its grid (no dropped columns):
    // where its pixels fill whole panels, its output channels whole micro-kernel rows (no
    // w_copy: that also means fp32 products), it reads the image and writes its output where they
    // lie, then adds a bias and activation in place (MobileNet's pointwise layers at 48x48 to
    // 12x12: the padded copy and the copy out were a tenth of its inference).
    const bool in_place = g.KH == 1 && g.KW == 1 && g.pad_h == 0 && g.pad_w == 0 && cells_pad == P &&
                          w_copy.empty();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < g.N; ++n) {
      if (in_place) {
        multiply(x + n * g.C * g.H * g.W, y + n * g.K * P, 0, K_pad);
        output.apply(y + n * g.K * P, 0, g.K, P);
        continue;
      }
      float* xpad = thread_scratch(grid.image, 0);
      float* out = thread_scratch(K_pad * cells_pad, 1);
      pad_image(g, grid, x + n * g.C * g.H * g.W, xpad);
      multiply(xpad, out, 0, K_pad);
      copy_out(out, y + n * g.K * P, 0, g.K);
    }
    return;
  }
  // Fewer images than threads (one-face inference): the threads share each image's output
  // channels, so that each reads only its own rows of the weights, after padding a share of its
  // input channels (the calling thread's scratch buffers serve them all).
  float* xpad = thread_scratch(grid.image, 0);
  float* out = thread_scratch(K_pad * cells_pad, 1);
  const int64_t channel_panels = K_pad / uk.mr;
  for (int64_t n = 0; n < g.N; ++n) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      pad_channels(g, grid, x + n * g.C * g.H * g.W, xpad, g.C * t / nt, g.C * (t + 1) / nt);
#pragma omp barrier
      const int64_t i0 = channel_panels * t / nt * uk.mr, i1 = channel_panels * (t + 1) / nt * uk.mr;
      multiply(xpad, out, i0, i1);
      copy_out(out, y + n * g.K * P, std::min(i0, g.K), std::min(i1, g.K));
    }
  }
}

namespace {

// ---- Few taps: the grayscale stem's weight gradient -------------------------------------------
//
// With at most nine rows r = (c, kh, kw) (the grayscale stem: one channel, 3x3), dW^T [R, K] is a
// product of a few rows, and the general path below spent more on its pixel-major copy of dy (a
// strided store per value) than on the products. Per output
// channel k instead: dy_n[k] spread onto the grid, then every tap's dot product with the padded
// image in one pass over it (VectorKernels::taps_dot), the image (a few KB) read from L1 by every
// channel. Output channels over the threads, each summing its own over the images (in double).
bool few_taps(const Conv2dGeometry& g) {
  return g.C * g.KH * g.KW <= 9 && matmul_precision() == Precision::FP32;
}

void weight_grad_few_taps(const Conv2dGeometry& g, const float* dy, const float* x, float* dw, float* dbias) {
  const VectorKernels& vk = *active_vector_kernels();
  const Grid grid(g, 0);
  const std::vector<int32_t> offsets = tap_offsets(g, grid);
  const int taps = static_cast<int>(offsets.size());
  const int64_t P = g.OH * g.OW;
  parallel_for(g.K, 1, [&](int64_t k0, int64_t k1) {
    float* xpad = thread_scratch(grid.image, 0);
    float* dy_grid = thread_scratch(grid.cells, 1);  // dy_n[k] at q = oh * Wp + ow, zero elsewhere
    std::vector<double> sums((k1 - k0) * taps, 0.0), bias_sums(k1 - k0, 0.0);
    float part[9];
    for (int64_t n = 0; n < g.N; ++n) {
      pad_image(g, grid, x + n * g.C * g.H * g.W, xpad);
      for (int64_t k = k0; k < k1; ++k) {
        const float* plane = dy + (n * g.K + k) * P;
        spread_onto_grid(g.OH, g.OW, grid.Wp, plane, dy_grid);
        vk.taps_dot(grid.cells, dy_grid, xpad, offsets.data(), taps, part);
        for (int r = 0; r < taps; ++r) sums[(k - k0) * taps + r] += part[r];
        if (dbias) bias_sums[k - k0] += lane_sum(plane, P);
      }
    }
    for (int64_t k = k0; k < k1; ++k) {
      for (int r = 0; r < taps; ++r) dw[k * taps + r] = static_cast<float>(sums[(k - k0) * taps + r]);
      if (dbias) dbias[k] = static_cast<float>(bias_sums[k - k0]);
    }
  });
}

}  // namespace

void conv2d_direct_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw, float* dbias) {
  if (const Bf16ConvWeightGradKernel* bf16 = active_bf16_conv_weight_grad_kernel())
    return conv2d_bf16_backward_weight(*bf16, g, dy, x, dw, dbias);
  if (few_taps(g)) return weight_grad_few_taps(g, dy, x, dw, dbias);
  const ConvWeightGradKernel& kernel = *active_weight_grad_kernel();
  const int64_t R = g.C * g.KH * g.KW, P = g.OH * g.OW;
  const Grid grid(g, kernel.mr + g.KW);
  const int64_t R_pad = round_up(R, kernel.mr), K_pad = round_up(g.K, kernel.nr);
  const std::vector<int32_t> offsets = tap_offsets(g, grid);

  // Images per group: enough grid pixels (~512) per kernel call that the tile's load and store
  // are cheap, and no more than keeps a group's padded images and packed dy' near the L2 size.
  const int64_t per_image = grid.image + K_pad * grid.cells;
  const int64_t group = std::clamp<int64_t>(
      std::min((512 + grid.cells - 1) / grid.cells, (1 << 18) / per_image), 1, g.N);

  // dW^T_t += the contribution of images [n0, n0 + nb).
  auto accumulate = [&](int64_t n0, int64_t nb, float* dwt, float* db) {
    const int64_t nr = kernel.nr, panel = nb * grid.cells * nr;  // one channel panel of dyT
    float* xpads = thread_scratch(nb * grid.image, 0);
    float* dyT = thread_scratch((K_pad / nr) * panel, 1);
    std::memset(dyT, 0, (K_pad / nr) * panel * sizeof(float));
    for (int64_t i = 0; i < nb; ++i) {
      pad_image(g, grid, x + (n0 + i) * g.C * g.H * g.W, xpads + i * grid.image);
      // dyT[k / nr][i][q][k % nr] = dy[n0 + i, k, oh, ow] at q = oh*Wp + ow (zero elsewhere),
      // one output row of a panel's channels at a time: the row's cells (nr floats each) are
      // filled while they are in L1, where a whole channel at a time left every store a miss on
      // the larger maps.
      const float* dyn = dy + (n0 + i) * g.K * P;
      for (int64_t k0 = 0; k0 < g.K; k0 += nr)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t k = k0; k < std::min(g.K, k0 + nr); ++k) {
            const float* src = dyn + k * P + oh * g.OW;
            float* dst = dyT + (k / nr) * panel + (i * grid.cells + oh * grid.Wp) * nr + k % nr;
            for (int64_t ow = 0; ow < g.OW; ++ow) dst[ow * nr] = src[ow];
          }
      // The bias gradient only when there is a bias: a plain running sum would be a chain of
      // dependent adds as long as the image, the slowest part of this copy.
      if (dbias)
        for (int64_t k = 0; k < g.K; ++k) db[k] += lane_sum(dyn + k * P, P);
    }
    round_operands(dyT, (K_pad / nr) * panel);
    // Chunks of 128 grid pixels keep a chunk's dyT panel (16 KB) in L1 while the taps pass.
    constexpr int64_t kChunk = 128;
    const float* x_rows[16];
    for (int64_t q0 = 0; q0 < grid.cells; q0 += kChunk) {
      const int64_t len = std::min(kChunk, grid.cells - q0);
      for (int64_t k0 = 0; k0 < K_pad; k0 += nr)
        for (int64_t r0 = 0; r0 < R_pad; r0 += kernel.mr) {
          // Taps past R read a valid row (tap 0); their rows of dW^T are dropped.
          for (int i = 0; i < kernel.mr; ++i) x_rows[i] = xpads + q0 + (r0 + i < R ? offsets[r0 + i] : 0);
          kernel.run(nb, len, x_rows, grid.image, dyT + (k0 / nr) * panel + q0 * nr, grid.cells * nr,
                     dwt + r0 * K_pad + k0, K_pad);
        }
    }
  };

  weight_grad_by_groups(g, group, R_pad, K_pad, accumulate, dw, dbias);
}

}  // namespace fer::cpu
