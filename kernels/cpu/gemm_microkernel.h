// The register-blocked heart of the GEMM (kernels/cpu/gemm.cpp): one MR x NR tile of C.
//
// The driver packs A into panels of MR rows and B into panels of NR columns, each laid out so
// that step k of the product reads MR consecutive floats of A and NR consecutive floats of B:
//
//   a_panel[k * MR + i] = A(i, k)        b_panel[k * NR + j] = B(k, j)        k in [0, kc)
//
// A micro-kernel keeps the whole MR x NR tile of C in vector registers, and for each k
// broadcasts one A value per row and multiplies it with the NR values of B (rank-1 update):
//
//   acc[i][j] += a_panel[k*MR + i] * b_panel[k*NR + j]
//
// then writes  C(i, j) = alpha * acc[i][j] + beta * C(i, j)  (C is not read when beta == 0, so
// it may hold garbage such as NaN). The tile is always full: the driver handles the ragged edges
// of C by running the kernel into a scratch tile and copying the part that exists.
//
// Either operand may instead be read where it lies, without packing, as the direct convolution
// does (conv2d_direct.cpp):
//   lda > 0:    row i of A is a + i*lda, so A(i, k) = a[i*lda + k] (a weight matrix in place);
//   lda < 0:    A(i, k) = a[k*(-lda) + i], a panel wider than MR read in place (the Winograd
//               input transform's vectors of tiles, conv2d_winograd.cpp); b_offsets null then;
//   b_offsets:  row k of B is the NR floats at b + b_offsets[k] (shifted rows of a padded image).
//
// The kernels are templates written once over a vector type (simd_kernels.h) and compiled once
// per instruction set (simd_avx2.cpp, simd_avx512.cpp); nothing else of the engine is compiled
// with those sets' flags, and those files use no inline function of a shared header (the linker
// could otherwise keep their AVX-512 copy for the whole program).
#pragma once
#include <cstdint>

namespace fer::cpu {

using GemmMicroKernelFn = void (*)(int64_t kc, const float* a, int64_t lda, const float* b,
                                   const int32_t* b_offsets /*nullable*/, float* c, int64_t ldc,
                                   float alpha, float beta);

struct GemmMicroKernel {
  const char* isa;
  int mr, nr;             // tile of C held in registers
  GemmMicroKernelFn run;
};

// Loops over vectors that are not tiles: one-row products (one-face inference), which would
// waste most of a tile and all of the packing, and the depthwise convolution.
struct VectorKernels {
  const char* isa;
  int width;  // floats per vector
  float (*dot)(int64_t n, const float* x, const float* y);        // sum x[i] * y[i]
  void (*axpy)(int64_t n, float a, const float* x, float* y);      // y[i] += a * x[i]
  // y[q] = sum over t < taps of w[t] * x[q + offsets[t]], q < len
  void (*taps_sum)(int64_t len, const float* x, const int32_t* offsets, const float* w, int taps,
                   float* y);
  // sums[t] = sum over q < len of g[q] * x[q + offsets[t]], t < taps (offsets may be negative)
  void (*taps_dot)(int64_t len, const float* g, const float* x, const int32_t* offsets, int taps,
                   float* sums);
  // Winograd F(M x M, 3x3)'s transforms (conv2d_winograd.cpp; M = tile, 4 or 2) for `lanes`
  // tiles side by side (a multiple of the vector width), lane j holding tile j; A = M + 2:
  //   winograd_input:  V = B^T d B of every channel c < C, where tile j's A x A window d is at
  //                    base + offsets[j] + c * channel_stride + a * row_stride + b (a, b < A);
  //                    writes v[xi * point_stride + c * lanes + j] for the A*A points
  //                    xi = a * A + b (point_stride >= C * lanes).
  //                    Reads up to 8 floats from each window row's start: 8 - A past its end,
  //                    which must be readable (kWinogradInputSlack past the last window).
  //   winograd_output: Y = A^T M A of one output channel, M's point xi for tile j at
  //                    m[xi * point_stride + j]; writes out[(a * M + b) * lanes + j], a, b < M.
  void (*winograd_input)(int tile, const float* base, const int32_t* offsets, int lanes, int64_t C,
                         int64_t channel_stride, int64_t row_stride, float* v, int64_t point_stride);
  void (*winograd_output)(int tile, const float* m, int64_t point_stride, int lanes, float* out);
  //   winograd_kernels: U = G g G^T of one vector's width of 3x3 kernels, lane i the kernel at
  //                    g + i * stride (zero lanes from n on); writes u[xi * point_stride + i].
  void (*winograd_kernels)(int tile, const float* g, int64_t stride, int n, float* u, int64_t point_stride);
  //   winograd_grad:   dM = A dY A^T of n_tiles output-gradient tiles, vectorised over output
  //                    channels: tile t's M x M window of channel k at base + tile_offsets[t] +
  //                    k * k_stride + a * row_stride + b; writes
  //                    dmt[((xi * panels + q) * lanes + t) * nr + j] for k = q * nr + j.
  void (*winograd_grad)(int tile, const float* base, const int64_t* tile_offsets, int n_tiles,
                        int lanes, int64_t k_stride, int64_t row_stride, int panels, int nr,
                        float* dmt);
};

// The depth of one packed block (the driver's KC), by the micro-kernel's panel width: a B
// micro-panel of KC x NR floats is 24 KB, for an L1 of 32-48 KB with A micro-panels streaming
// past (128 steps under avx512's 48-wide panels, 256 under avx2's 24-wide). A panels of a
// PackedA hold KC steps of k.
constexpr int64_t gemm_depth_block(int nr) { return 6144 / nr; }
constexpr int64_t kMaxGemmDepthBlock = 256;

// Floats winograd_input may read past the end of the last window's rows (see above).
constexpr int64_t kWinogradInputSlack = 8;

// The micro-kernel and vector loops of the active fp32 kernel set (isa.h); null under the
// scalar set, whose callers take their reference paths.
const GemmMicroKernel* active_gemm_microkernel();
const VectorKernels* active_vector_kernels();
// The same product on a tile of three rows and four vectors, for products with few rows: one
// face's nine Winograd tiles as the rows of the transposed products (conv2d_winograd.cpp) fill
// three of its panels exactly, where the main kernel's MR computes 12 rows (avx2) or 16
// (avx512), and its 32 or 64 columns divide the FER networks' channel counts.
const GemmMicroKernel* active_few_rows_microkernel();

// Defined in simd_<isa>.cpp; call only after isa_supported() said yes.
GemmMicroKernel gemm_microkernel_avx2();      // 4 x 24: 12 of the 16 ymm registers accumulate
GemmMicroKernel gemm_microkernel_avx512();    // 8 x 48: 24 of the 32 zmm registers accumulate
GemmMicroKernel few_rows_microkernel_avx2();  // 3 x 32: 12 ymm accumulators
GemmMicroKernel few_rows_microkernel_avx512();  // 3 x 64: 12 zmm accumulators
VectorKernels vector_kernels_avx2();
VectorKernels vector_kernels_avx512();

}  // namespace fer::cpu
