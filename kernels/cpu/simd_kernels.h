// The vector micro-kernels, written once as templates over a vector type and compiled once per
// instruction set: simd_avx2.cpp and simd_avx512.cpp each define a small traits struct (the
// register type, its width and five intrinsics) and instantiate these templates with it. Only
// those two files include this header, and everything in it has internal linkage, so each gets
// its own copy compiled for its own instructions (see gemm_microkernel.h for why that matters).
//
// What each kernel computes is specified where it is declared: gemm_microkernel.h (the GEMM
// tile), conv2d_microkernel.h (the convolution weight gradient), fma_peak.h.
#pragma once
#include <cstdint>

namespace fer::cpu {
namespace {  // NOLINT: internal linkage on purpose, one copy per instruction set

// How the micro-kernel reads A (gemm_microkernel.h): packed a[k*MR + i], rows in place
// a[i*lda + k] (lda > 0), or packed panels wider than MR read in place a[k*(-lda) + i] (lda < 0).
enum class AForm { Packed, Rows, Strided };

// The GEMM micro-kernel: an MR x (NV * S::width) tile of C in MR * NV registers.
//   AF:       how A is read (above).
//   BOffsets: row k of B starts at b + b_offsets[k] instead of b + k*NR.
// Per k: NV vector loads of B, MR broadcasts of A, MR*NV FMAs.
template <class S, int MR, int NV, AForm AF, bool BOffsets>
void gemm_tile(int64_t kc, const float* a, int64_t lda, const float* b, const int32_t* b_offsets,
               float* c, int64_t ldc, float alpha, float beta) {
  using V = typename S::V;
  constexpr int W = S::width, NR = NV * W;
  const int64_t a_step = AF == AForm::Strided ? -lda : MR;  // a compile-time MR when packed
  // The tile of C is read (beta) or written only after the kc steps: fetch its lines now, so that
  // a tile far from the last one (GEMM's C is streamed once per depth block) is not a miss then.
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NR - 1, 1);
  }
  // The strided form's B is the transposed Winograd products' transformed kernels (one face's
  // 12x12 and 6x6 layers), which a frozen network streams from memory at every call, 10 MB of
  // them: fetch each row of B a kilobyte ahead of its use. The hardware's prefetchers stop at
  // every 4 KB page. On the Zen 1-class EPYC (2 threads) one face frozen ran 3-6% faster with it
  // (20 of 22 alternated pairs); 128 and 512 floats ahead gained less.
  constexpr int64_t kBAhead = AF == AForm::Strided ? 256 : 0;  // floats
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = BOffsets ? b + b_offsets[k] : b + k * NR;
    if constexpr (kBAhead > 0)
      for (int v = 0; v < NR; v += 16) __builtin_prefetch(bk + kBAhead + v);  // 16 floats a line
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(bk + v * W);
    for (int i = 0; i < MR; ++i) {
      const V ai = S::broadcast(AF == AForm::Rows ? a[i * lda + k] : a[k * a_step + i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
  }
  const V va = S::broadcast(alpha);
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float* p = c + i * ldc + v * W;
      const V scaled = S::mul(va, acc[i][v]);
      S::store(p, beta == 0.0f ? scaled : S::fmadd(S::broadcast(beta), S::load(p), scaled));
    }
}

// The operand forms behind the one GemmMicroKernelFn signature (lda == 0: packed A; lda < 0:
// strided panels, with packed B only).
template <class S, int MR, int NV>
void gemm_microkernel(int64_t kc, const float* a, int64_t lda, const float* b,
                      const int32_t* b_offsets, float* c, int64_t ldc, float alpha, float beta) {
  if (lda == 0 && !b_offsets) return gemm_tile<S, MR, NV, AForm::Packed, false>(kc, a, 0, b, nullptr, c, ldc, alpha, beta);
  if (lda == 0) return gemm_tile<S, MR, NV, AForm::Packed, true>(kc, a, 0, b, b_offsets, c, ldc, alpha, beta);
  if (lda < 0) return gemm_tile<S, MR, NV, AForm::Strided, false>(kc, a, lda, b, nullptr, c, ldc, alpha, beta);
  if (!b_offsets) return gemm_tile<S, MR, NV, AForm::Rows, false>(kc, a, lda, b, nullptr, c, ldc, alpha, beta);
  gemm_tile<S, MR, NV, AForm::Rows, true>(kc, a, lda, b, b_offsets, c, ldc, alpha, beta);
}

// The convolution weight-gradient micro-kernel (conv2d_microkernel.h): MR taps x 2 vectors of
// output channels, summed over pixels and images, added to C.
template <class S, int MR>
void conv_weight_grad(int64_t images, int64_t len, const float* const* x_rows,
                      int64_t x_image_stride, const float* dyT, int64_t dyT_image_stride, float* c,
                      int64_t ldc) {
  using V = typename S::V;
  constexpr int W = S::width, NR = 2 * W;
  V acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = S::zero();
  for (int64_t n = 0; n < images; ++n) {
    const float* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = x_rows[i] + n * x_image_stride;
    const float* b = dyT + n * dyT_image_stride;
    for (int64_t q = 0; q < len; ++q, b += NR) {
      const V b0 = S::load(b), b1 = S::load(b + W);
      for (int i = 0; i < MR; ++i) {
        const V xi = S::broadcast(x[i][q]);
        acc[i][0] = S::fmadd(xi, b0, acc[i][0]);
        acc[i][1] = S::fmadd(xi, b1, acc[i][1]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    S::store(row, S::add(S::load(row), acc[i][0]));
    S::store(row + W, S::add(S::load(row + W), acc[i][1]));
  }
}

// sum_k x[k] * y[k], in four independent vector accumulators (the products of one-row GEMMs).
template <class S>
float dot(int64_t n, const float* x, const float* y) {
  using V = typename S::V;
  constexpr int W = S::width;
  V acc[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
  int64_t k = 0;
  for (; k + 4 * W <= n; k += 4 * W)
    for (int u = 0; u < 4; ++u) acc[u] = S::fmadd(S::load(x + k + u * W), S::load(y + k + u * W), acc[u]);
  for (; k + W <= n; k += W) acc[0] = S::fmadd(S::load(x + k), S::load(y + k), acc[0]);
  if (k < n) {  // the tail, in masked lanes (short rows of small feature maps are mostly tail)
    const int rest = static_cast<int>(n - k);
    acc[1] = S::fmadd(S::load_n(x + k, rest), S::load_n(y + k, rest), acc[1]);
  }
  float lanes[W];
  S::store(lanes, S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3])));
  float sum = 0.0f;
  for (int l = 0; l < W; ++l) sum += lanes[l];
  return sum;
}

// y[j] += a * x[j] for j < n.
template <class S>
void axpy(int64_t n, float a, const float* x, float* y) {
  constexpr int W = S::width;
  const auto va = S::broadcast(a);
  int64_t j = 0;
  for (; j + W <= n; j += W) S::store(y + j, S::fmadd(va, S::load(x + j), S::load(y + j)));
  if (j < n) {
    const int rest = static_cast<int>(n - j);
    S::store_n(y + j, S::fmadd(va, S::load_n(x + j, rest), S::load_n(y + j, rest)), rest);
  }
}

// y[q] = sum over taps t of w[t] * x[q + offsets[t]] for q < len: one output row of a depthwise
// convolution, every tap's input row a shifted view of one padded input plane.
template <class S>
void taps_sum(int64_t len, const float* x, const int32_t* offsets, const float* w, int taps, float* y) {
  constexpr int W = S::width;
  int64_t q = 0;
  for (; q + W <= len; q += W) {
    auto acc = S::zero();
    for (int t = 0; t < taps; ++t) acc = S::fmadd(S::broadcast(w[t]), S::load(x + q + offsets[t]), acc);
    S::store(y + q, acc);
  }
  if (q < len) {  // the tail, in masked lanes
    const int rest = static_cast<int>(len - q);
    auto acc = S::zero();
    for (int t = 0; t < taps; ++t) acc = S::fmadd(S::broadcast(w[t]), S::load_n(x + q + offsets[t], rest), acc);
    S::store_n(y + q, acc, rest);
  }
}

// sums[t] = sum over q < len of g[q] * x[q + offsets[t]] for t < taps: the depthwise weight
// gradient of one plane, every tap's dot product in one pass over g (a vector of g loaded once
// for up to nine taps, one accumulator each), instead of one pass per tap.
template <class S, int N>
void taps_dot_chunk(int64_t len, const float* g, const float* x, const int32_t* offsets, float* sums) {
  using V = typename S::V;
  constexpr int W = S::width;
  V acc[N];
  for (int i = 0; i < N; ++i) acc[i] = S::zero();
  int64_t q = 0;
  for (; q + W <= len; q += W) {
    const V gv = S::load(g + q);
    for (int i = 0; i < N; ++i) acc[i] = S::fmadd(gv, S::load(x + q + offsets[i]), acc[i]);
  }
  if (q < len) {  // the tail, in masked lanes
    const int rest = static_cast<int>(len - q);
    const V gv = S::load_n(g + q, rest);
    for (int i = 0; i < N; ++i) acc[i] = S::fmadd(gv, S::load_n(x + q + offsets[i], rest), acc[i]);
  }
  for (int i = 0; i < N; ++i) {
    float lanes[W];
    S::store(lanes, acc[i]);
    float sum = 0.0f;
    for (int l = 0; l < W; ++l) sum += lanes[l];
    sums[i] = sum;
  }
}

template <class S>
void taps_dot(int64_t len, const float* g, const float* x, const int32_t* offsets, int taps, float* sums) {
  int t = 0;
  for (; t + 9 <= taps; t += 9) taps_dot_chunk<S, 9>(len, g, x, offsets + t, sums + t);
  switch (taps - t) {  // the rest of a kernel larger than 3x3 (5x5: 25 = 2 x 9 + 7)
    case 8: return taps_dot_chunk<S, 8>(len, g, x, offsets + t, sums + t);
    case 7: return taps_dot_chunk<S, 7>(len, g, x, offsets + t, sums + t);
    case 6: return taps_dot_chunk<S, 6>(len, g, x, offsets + t, sums + t);
    case 5: return taps_dot_chunk<S, 5>(len, g, x, offsets + t, sums + t);
    case 4: return taps_dot_chunk<S, 4>(len, g, x, offsets + t, sums + t);
    case 3: return taps_dot_chunk<S, 3>(len, g, x, offsets + t, sums + t);
    case 2: return taps_dot_chunk<S, 2>(len, g, x, offsets + t, sums + t);
    case 1: return taps_dot_chunk<S, 1>(len, g, x, offsets + t, sums + t);
    default: return;
  }
}

// ---- Winograd transforms (gemm_microkernel.h's VectorKernels; conv2d_winograd.cpp) -------------
// F(M x M, 3x3) for output tiles of M = 4 or 2, input tiles of M + 2. The 1-d transforms are
// written out so that the zeros of the matrices cost nothing.

// t = B^T d over M + 2 vectors. F(4, 3): the rows of B^T are (4 0 -5 0 1 0) (0 -4 -4 1 1 0)
// (0 4 -4 -1 1 0) (0 -2 -1 2 1 0) (0 2 -1 -2 1 0) (0 4 0 -5 0 1). F(2, 3): (1 0 -1 0) (0 1 1 0)
// (0 -1 1 0) (0 1 0 -1).
template <class S, int M>
void winograd_input_1d(const typename S::V* d, typename S::V* t) {
  using V = typename S::V;
  if constexpr (M == 2) {
    t[0] = S::sub(d[0], d[2]);
    t[1] = S::add(d[1], d[2]);
    t[2] = S::sub(d[2], d[1]);
    t[3] = S::sub(d[1], d[3]);
  } else {
    const V four = S::broadcast(4.0f), five = S::broadcast(5.0f), two = S::broadcast(2.0f);
    const V a = S::sub(d[4], S::mul(four, d[2])), b = S::sub(d[3], S::mul(four, d[1]));
    const V c = S::sub(d[4], d[2]), e = S::mul(two, S::sub(d[3], d[1]));
    t[0] = S::add(S::sub(S::mul(four, d[0]), S::mul(five, d[2])), d[4]);
    t[1] = S::add(a, b);
    t[2] = S::sub(a, b);
    t[3] = S::add(c, e);
    t[4] = S::sub(c, e);
    t[5] = S::add(S::sub(S::mul(four, d[1]), S::mul(five, d[3])), d[5]);
  }
}

// y = A^T m over M + 2 vectors. F(4, 3): the rows of A^T are (1 1 1 1 1 0) (0 1 -1 2 -2 0)
// (0 1 1 4 4 0) (0 1 -1 8 -8 1). F(2, 3): (1 1 1 0) (0 1 -1 -1).
template <class S, int M>
void winograd_output_1d(const typename S::V* m, typename S::V* y) {
  using V = typename S::V;
  if constexpr (M == 2) {
    y[0] = S::add(S::add(m[0], m[1]), m[2]);
    y[1] = S::sub(S::sub(m[1], m[2]), m[3]);
  } else {
    const V s12 = S::add(m[1], m[2]), d12 = S::sub(m[1], m[2]);
    const V s34 = S::add(m[3], m[4]), d34 = S::sub(m[3], m[4]);
    y[0] = S::add(S::add(m[0], s12), s34);
    y[1] = S::fmadd(S::broadcast(2.0f), d34, d12);
    y[2] = S::fmadd(S::broadcast(4.0f), s34, s12);
    y[3] = S::add(S::fmadd(S::broadcast(8.0f), d34, d12), m[5]);
  }
}

template <class S, int M>
void winograd_input_tiles(const float* base, const int32_t* offsets, int lanes, int64_t C,
                          int64_t channel_stride, int64_t row_stride, float* v, int64_t point_stride) {
  using V = typename S::V;
  constexpr int W = S::width, A = M + 2;
  for (int j = 0; j < lanes; j += W) {
    for (int64_t c = 0; c < C; ++c) {
      const float* window = base + c * channel_stride;
      V d[A][A];  // d[a][b]: row a, column b of every lane's window
      for (int a = 0; a < A; ++a) S::columns(window + a * row_stride, offsets + j, A, d[a]);
      V rows[A * A];  // B^T d, column by column
      for (int b = 0; b < A; ++b) {
        V col[A], t[A];
        for (int a = 0; a < A; ++a) col[a] = d[a][b];
        winograd_input_1d<S, M>(col, t);
        for (int r = 0; r < A; ++r) rows[r * A + b] = t[r];
      }
      for (int r = 0; r < A; ++r) {  // (B^T d) B, row by row
        V t[A];
        winograd_input_1d<S, M>(rows + r * A, t);
        for (int b = 0; b < A; ++b) S::store(v + (r * A + b) * point_stride + c * lanes + j, t[b]);
      }
    }
  }
}

template <class S, int M>
void winograd_output_tiles(const float* m, int64_t point_stride, int lanes, float* out) {
  using V = typename S::V;
  constexpr int W = S::width, A = M + 2;
  for (int j = 0; j < lanes; j += W) {
    V half[M * A];  // A^T M, column by column
    for (int b = 0; b < A; ++b) {
      V col[A], y[M];
      for (int a = 0; a < A; ++a) col[a] = S::load(m + (a * A + b) * point_stride + j);
      winograd_output_1d<S, M>(col, y);
      for (int r = 0; r < M; ++r) half[r * A + b] = y[r];
    }
    for (int r = 0; r < M; ++r) {  // (A^T M) A, row by row
      V y[M];
      winograd_output_1d<S, M>(half + r * A, y);
      for (int b = 0; b < M; ++b) S::store(out + (r * M + b) * lanes + j, y[b]);
    }
  }
}

// m = A y over M vectors (A = the transpose of A^T above): the weight gradient's transform of an
// output-gradient tile. F(4, 3): m = (y0, y0+y1+y2+y3, y0-y1+y2-y3, y0+2y1+4y2+8y3,
// y0-2y1+4y2-8y3, y3); F(2, 3): (y0, y0+y1, y0-y1, -y1).
template <class S, int M>
void winograd_grad_1d(const typename S::V* y, typename S::V* m) {
  using V = typename S::V;
  if constexpr (M == 2) {
    m[0] = y[0];
    m[1] = S::add(y[0], y[1]);
    m[2] = S::sub(y[0], y[1]);
    m[3] = S::sub(S::zero(), y[1]);
  } else {
    const V e = S::add(y[0], y[2]), o = S::add(y[1], y[3]);
    const V e4 = S::fmadd(S::broadcast(4.0f), y[2], y[0]), o8 = S::fmadd(S::broadcast(4.0f), y[3], y[1]);
    const V two = S::broadcast(2.0f);
    m[0] = y[0];
    m[1] = S::add(e, o);
    m[2] = S::sub(e, o);
    m[3] = S::fmadd(two, o8, e4);
    m[4] = S::sub(e4, S::mul(two, o8));
    m[5] = y[3];
  }
}

// dM = A dY A^T for n_tiles output-gradient tiles, vectorised over output channels: tile t's
// M x M window of channel k is at base + tile_offsets[t] + k * k_stride + a * row_stride + b.
// Writes dmt[((xi * panels + q) * lanes + t) * nr + j] for channel k = q * nr + j (nr a multiple
// of the vector width, panels * nr channels in all): the B panels of the weight gradient's
// products, t their depth.
template <class S, int M>
void winograd_grad_tiles(const float* base, const int64_t* tile_offsets, int n_tiles, int lanes,
                         int64_t k_stride, int64_t row_stride, int panels, int nr, float* dmt) {
  using V = typename S::V;
  constexpr int W = S::width, A = M + 2;
  for (int q = 0; q < panels; ++q)
    for (int u = 0; u < nr; u += W) {
      int32_t idx[W];
      for (int l = 0; l < W; ++l) idx[l] = static_cast<int32_t>((q * nr + u + l) * k_stride);
      for (int t = 0; t < n_tiles; ++t) {
        const float* window = base + tile_offsets[t];
        V half[A * M];  // A dY, column by column
        for (int b = 0; b < M; ++b) {
          V y[M], m[A];
          for (int a = 0; a < M; ++a) y[a] = S::gather(window + a * row_stride + b, idx);
          winograd_grad_1d<S, M>(y, m);
          for (int r = 0; r < A; ++r) half[r * M + b] = m[r];
        }
        for (int r = 0; r < A; ++r) {  // (A dY) A^T, row by row
          V m[A];
          winograd_grad_1d<S, M>(half + r * M, m);
          for (int b = 0; b < A; ++b)
            S::store(dmt + ((static_cast<int64_t>(r * A + b) * panels + q) * lanes + t) * nr + u, m[b]);
        }
      }
    }
}

// r = G d over 3 vectors (the kernel transform, one column or row of a 3x3 kernel), G's zeros
// and repeated entries exploited. F(4, 3): r0 = d0/4, r1,2 = -(d0+d2)/6 -+ d1/6,
// r3,4 = d0/24 + d2/6 +- d1/12, r5 = d2; F(2, 3): r0 = d0, r1,2 = (d0+d2)/2 +- d1/2, r3 = d2.
template <class S, int M>
void winograd_kernel_1d(const typename S::V* d, typename S::V* r) {
  using V = typename S::V;
  if constexpr (M == 2) {
    const V half = S::broadcast(0.5f);
    const V e = S::mul(half, S::add(d[0], d[2])), o = S::mul(half, d[1]);
    r[0] = d[0];
    r[1] = S::add(e, o);
    r[2] = S::sub(e, o);
    r[3] = d[2];
  } else {
    const V e = S::mul(S::broadcast(-1.0f / 6), S::add(d[0], d[2])), o = S::mul(S::broadcast(1.0f / 6), d[1]);
    const V f = S::fmadd(S::broadcast(1.0f / 24), d[0], S::mul(S::broadcast(1.0f / 6), d[2]));
    const V h = S::mul(S::broadcast(1.0f / 12), d[1]);
    r[0] = S::mul(S::broadcast(0.25f), d[0]);
    r[1] = S::sub(e, o);
    r[2] = S::add(e, o);
    r[3] = S::add(f, h);
    r[4] = S::sub(f, h);
    r[5] = d[2];
  }
}

// U = G g G^T of one vector's width of 3x3 kernels side by side, lane i holding the kernel at
// g + i * stride (zero lanes from n on): writes u[xi * point_stride + i] for the (M + 2)^2 points
// xi. The kernels' nine values come into the lanes by the set's taps9 (a transposition in
// registers, or gathers), or through the stack when fewer than a vector's width are left.
template <class S, int M>
void winograd_kernel_tiles(const float* g, int64_t stride, int n, float* u, int64_t point_stride) {
  using V = typename S::V;
  constexpr int W = S::width, A = M + 2;
  V taps[9];
  if (n == W) {
    S::taps9(g, stride, taps);
  } else {
    alignas(64) float in[9][W];
    for (int i = 0; i < W; ++i)
      for (int e = 0; e < 9; ++e) in[e][i] = i < n ? g[i * stride + e] : 0.0f;
    for (int e = 0; e < 9; ++e) taps[e] = S::load(in[e]);
  }
  V t[A][3];  // G g, column by column
  for (int j = 0; j < 3; ++j) {
    const V d[3] = {taps[j], taps[3 + j], taps[6 + j]};
    V r[A];
    winograd_kernel_1d<S, M>(d, r);
    for (int a = 0; a < A; ++a) t[a][j] = r[a];
  }
  for (int a = 0; a < A; ++a) {  // (G g) G^T, row by row
    V r[A];
    winograd_kernel_1d<S, M>(t[a], r);
    for (int b = 0; b < A; ++b) S::store(u + (a * A + b) * point_stride, r[b]);
  }
}

// The VectorKernels entries: the tile size M (4 or 2) chosen at run time.
template <class S>
void winograd_input(int tile, const float* base, const int32_t* offsets, int lanes, int64_t C,
                    int64_t channel_stride, int64_t row_stride, float* v, int64_t point_stride) {
  if (tile == 2) return winograd_input_tiles<S, 2>(base, offsets, lanes, C, channel_stride, row_stride, v, point_stride);
  winograd_input_tiles<S, 4>(base, offsets, lanes, C, channel_stride, row_stride, v, point_stride);
}

template <class S>
void winograd_output(int tile, const float* m, int64_t point_stride, int lanes, float* out) {
  if (tile == 2) return winograd_output_tiles<S, 2>(m, point_stride, lanes, out);
  winograd_output_tiles<S, 4>(m, point_stride, lanes, out);
}

template <class S>
void winograd_kernels(int tile, const float* g, int64_t stride, int n, float* u, int64_t point_stride) {
  if (tile == 2) return winograd_kernel_tiles<S, 2>(g, stride, n, u, point_stride);
  winograd_kernel_tiles<S, 4>(g, stride, n, u, point_stride);
}

template <class S>
void winograd_grad(int tile, const float* base, const int64_t* tile_offsets, int n_tiles, int lanes,
                   int64_t k_stride, int64_t row_stride, int panels, int nr, float* dmt) {
  if (tile == 2) return winograd_grad_tiles<S, 2>(base, tile_offsets, n_tiles, lanes, k_stride, row_stride, panels, nr, dmt);
  winograd_grad_tiles<S, 4>(base, tile_offsets, n_tiles, lanes, k_stride, row_stride, panels, nr, dmt);
}

// The FMA peak loop (fma_peak.h): independent accumulator chains, nothing but FMAs. Enough
// chains to cover the FMA latency times the FMA ports (4 x 2 on current x86-64 cores, 8 chains),
// few enough that they and the two operands stay in registers: 16 chains spilled under AVX2's 16
// ymm registers and measured about half of Zen 3's peak.
template <class S>
double fma_peak(int64_t iterations) {
  using V = typename S::V;
  constexpr int chains = S::registers >= 32 ? 16 : 12;
  V acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = S::broadcast(1.0f + i * 1e-3f);
  const V a = S::broadcast(0.999999f), b = S::broadcast(1e-7f);
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < chains; ++i) acc[i] = S::fmadd(acc[i], a, b);
  float out[S::width * chains];
  for (int i = 0; i < chains; ++i) S::store(out + i * S::width, acc[i]);
  volatile float sink = out[0];  // keeps the loop alive
  (void)sink;
  return 2.0 * S::width * chains * static_cast<double>(iterations);
}

}  // namespace
}  // namespace fer::cpu
