// The packed, cache-blocked GEMM (the GotoBLAS/BLIS structure) around the micro-kernels of
// gemm_microkernel.h, and the CPU backend's dense kernels built on it.
//
// Five loops around the micro-kernel, each chosen so that one operand stays in one cache level
// while the others stream past it:
//
//   for jc in N step NC                     B block KC x NC, packed once per depth block
//     for pc in K step KC                   (beta applies to the first depth block only)
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide panels
//       for ic in M step MC
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall panels (the A block lives in L2)
//         for jr in NC step NR              B micro-panel KC x NR, lives in L1
//           for ir in MC step MR            A micro-panels stream from L2
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= A panel * B panel
//
// Packing copies each operand once per block into the order the micro-kernel reads it (see
// gemm_microkernel.h), so the inner loop reads memory strictly sequentially whatever the
// transposes and leading dimensions were, and ragged edges are padded with zeros.
//
// Block sizes: KC keeps the B micro-panel (the vector operand, KC x NR floats) at 24 KB, in the
// 48 KB L1 of the Ice Lake and the 32 KB of the Zens while the A micro-panels (4-8 KB each)
// pass: KC = 128 under avx512 (NR = 48; measured on Ice Lake, B panels streamed from L2
// instead, KC 256-512, cost the micro-kernel a third of its speed), 256 under avx2 (NR = 24;
// measured on a Zen 1-class EPYC, 128 left BM_gemm/4096 8% slower: twice the passes over C).
// MC rows of A make a 128 KB block for L2 (256 rows under avx512, 128 under avx2), and NC = 16
// micro-panels of B a block of 96-192 KB.
#include "kernels/cpu/gemm.h"

#include <xmmintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/error.h"
#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

constexpr int64_t NC_PANELS = 16;

// MC: the packed A block, MC x KC floats, at 128 KB (a multiple of every MR).
constexpr int64_t gemm_row_block(int64_t kc) { return 32768 / kc; }
static_assert(gemm_row_block(gemm_depth_block(48)) % 8 == 0 && gemm_row_block(gemm_depth_block(24)) % 4 == 0);
static_assert(gemm_depth_block(24) <= kMaxGemmDepthBlock && gemm_depth_block(48) <= kMaxGemmDepthBlock);

}  // namespace

const GemmMicroKernel* active_gemm_microkernel() {
  return for_fp32_isa<GemmMicroKernel, gemm_microkernel_avx2, gemm_microkernel_avx512>();
}

const GemmMicroKernel* active_few_rows_microkernel() {
  return for_fp32_isa<GemmMicroKernel, few_rows_microkernel_avx2, few_rows_microkernel_avx512>();
}

const VectorKernels* active_vector_kernels() {
  return for_fp32_isa<VectorKernels, vector_kernels_avx2, vector_kernels_avx512>();
}

namespace {

// The driver's scratch buffers (parallel.h's aligned_thread_scratch).
float* aligned_scratch(size_t floats, int slot) { return aligned_thread_scratch(floats, slot); }
enum ScratchSlot { kSlotA = 0, kSlotB = 1, kSlotTile = 2, kSlotPairsA = 7, kSlotPairsB = 8 };

// dst[k * width + r] = src[r * ld + k] for r < rows, k < kc: `rows` rows of a row-major matrix
// written k-major into a panel `width` floats wide (the packing of A untransposed and of B
// transposed). 4x4 blocks go through SSE registers (baseline x86-64): four loads, a transpose
// in registers, four stores, instead of sixteen single-float stores each into another row.
void transpose_into_panel(const float* src, int64_t ld, int64_t rows, int64_t kc, int64_t width, float* dst) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* s0 = src + r * ld;
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
      __m128 a = _mm_loadu_ps(s0 + k), b = _mm_loadu_ps(s0 + ld + k), c = _mm_loadu_ps(s0 + 2 * ld + k),
             d = _mm_loadu_ps(s0 + 3 * ld + k);
      _MM_TRANSPOSE4_PS(a, b, c, d);
      _mm_storeu_ps(dst + k * width + r, a);
      _mm_storeu_ps(dst + (k + 1) * width + r, b);
      _mm_storeu_ps(dst + (k + 2) * width + r, c);
      _mm_storeu_ps(dst + (k + 3) * width + r, d);
    }
    for (; k < kc; ++k)
      for (int64_t i = 0; i < 4; ++i) dst[k * width + r + i] = s0[i * ld + k];
  }
  for (; r < rows; ++r)
    for (int64_t k = 0; k < kc; ++k) dst[k * width + r] = src[r * ld + k];
}

// Packs op(A)[i0:i0+mc, p0:p0+kc] as ceil(mc/MR) panels: dst[panel][k][r] = op(A)(i0+panel*MR+r, p0+k).
void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, int mr, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += mr, dst += mr * kc) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    if (trans) {  // op(A)(i, k) = A[k, i]: each k gives `rows` consecutive floats
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (p0 + k) * lda + i0 + ip;
        float* d = dst + k * mr;
        for (int64_t r = 0; r < rows; ++r) d[r] = src[r];
        for (int64_t r = rows; r < mr; ++r) d[r] = 0.0f;
      }
    } else {  // op(A)(i, k) = A[i, k]: read along rows, write with stride MR
      transpose_into_panel(A + (i0 + ip) * lda + p0, lda, rows, kc, mr, dst);
      for (int64_t r = rows; r < mr; ++r)
        for (int64_t k = 0; k < kc; ++k) dst[k * mr + r] = 0.0f;
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as ceil(nc/NR) panels: dst[panel][k][c] = op(B)(p0+k, j0+panel*NR+c).
void pack_b(bool trans, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, int nr, float* dst) {
  for (int64_t jp = 0; jp < nc; jp += nr, dst += nr * kc) {
    const int64_t cols = std::min<int64_t>(nr, nc - jp);
    if (!trans) {  // op(B)(k, j) = B[k, j]: each k gives `cols` consecutive floats
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (p0 + k) * ldb + j0 + jp;
        float* d = dst + k * nr;
        std::memcpy(d, src, cols * sizeof(float));
        for (int64_t c = cols; c < nr; ++c) d[c] = 0.0f;
      }
    } else {  // op(B)(k, j) = B[j, k]: read along rows of B, write with stride NR
      transpose_into_panel(B + (j0 + jp) * ldb + p0, ldb, cols, kc, nr, dst);
      for (int64_t c = cols; c < nr; ++c)
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = 0.0f;
    }
  }
}

// C[0:m, 0:n] = alpha * tile + beta * C for a tile of rows nr floats apart (C is not read when
// beta == 0, as in the micro-kernels).
void store_tile(const float* tile, int nr, int64_t m, int64_t n, float alpha, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    const float* t = tile + i * nr;
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = alpha * t[j] + 0.0f;
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] = alpha * t[j] + beta * row[j];
    }
  }
}

// C[mc, nc] (+)= packed A block * packed B block, tile by tile. Edge tiles go through a scratch
// tile so that the micro-kernel never writes outside C.
void macro_kernel(const GemmMicroKernel& uk, int64_t mc, int64_t nc, int64_t kc, const float* a,
                  const float* b, float alpha, float beta, float* C, int64_t ldc) {
  const int mr = uk.mr, nr = uk.nr;
  float* tile = aligned_scratch(static_cast<size_t>(mr) * nr, kSlotTile);
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t n = std::min<int64_t>(nr, nc - jr);
    const float* b_panel = b + jr * kc;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int64_t m = std::min<int64_t>(mr, mc - ir);
      const float* a_panel = a + ir * kc;
      float* c = C + ir * ldc + jr;
      if (m == mr && n == nr) {
        uk.run(kc, a_panel, 0, b_panel, nullptr, c, ldc, alpha, beta);
        continue;
      }
      uk.run(kc, a_panel, 0, b_panel, nullptr, tile, nr, 1.0f, 0.0f);
      store_tile(tile, nr, m, n, alpha, beta, c, ldc);
    }
  }
}

// ---- bf16 products on VDPBF16PS ---------------------------------------------------------------
//
// Where the products run in bf16 and the CPU has AVX512-BF16, the driver packs its float panels as
// above, then turns each into pairs of consecutive depth steps, two bfloat16 in one 32-bit word
// (the even step in the low half):
//
//   a_pairs[t * MR + r] = (a_panel[2t * MR + r], a_panel[(2t + 1) * MR + r])     t < ceil(kc / 2)
//   b_pairs[t * NR + c] = (b_panel[2t * NR + c], b_panel[(2t + 1) * NR + c])     (zero past kc)
//
// and multiplies them on the bf16 tile of the direct convolution (conv2d_bf16_microkernel.h),
// which sums a[t * MR + r] . b[offset[t] + c] over t: with offset[t] = t * NR it is the MR x NR
// tile of C, each VDPBF16PS doing two depth steps, twice the multiply-adds of an FMA. The tile
// is written to scratch and added into C with alpha and beta (one addition per 64 products of
// a 128-step block).

// The bf16 tile when the products run in bf16 on the avx512-bf16 set and it has the fp32
// micro-kernel's shape (so that the float panels convert in place of one another); else null.
// Not under the amx set: on the one AMX CPU measured (Xeon model 207) VDPBF16PS ran the direct
// convolution slower than fp32 FMAs, so there products keep the fp32 kernels on rounded operands
// until the GEMM has AMX tiles of its own.
const Bf16ConvKernel* bf16_tile_for(const GemmMicroKernel& uk) {
  if (active_isa() != Isa::Avx512Bf16) return nullptr;
  const Bf16ConvKernel* tile = active_bf16_conv_kernel();
  return tile && tile->mr == uk.mr && tile->nr == uk.nr ? tile : nullptr;
}

// The pairs of `panels` consecutive panels of kc x width floats, each ceil(kc / 2) x width words.
void pair_panels(const float* panels_in, int64_t panels, int64_t kc, int width, uint32_t* out) {
  const Bf16PackKernels& pack = active_bf16_pack_kernels();
  const int64_t kc2 = (kc + 1) / 2;
  for (int64_t p = 0; p < panels; ++p) {
    const float* in = panels_in + p * kc * width;
    uint32_t* dst = out + p * kc2 * width;
    for (int64_t t = 0; t < kc2; ++t)
      pack.pair_rows(in + 2 * t * width, 2 * t + 1 < kc ? in + (2 * t + 1) * width : nullptr, width,
                     dst + t * width);
  }
}

// macro_kernel on pair panels.
void macro_kernel_bf16(const Bf16ConvKernel& tile_kernel, int64_t mc, int64_t nc, int64_t kc, const uint32_t* a,
                       const uint32_t* b, float alpha, float beta, float* C, int64_t ldc) {
  const int mr = tile_kernel.mr, nr = tile_kernel.nr;
  const int64_t kc2 = (kc + 1) / 2;
  int32_t offsets[(kMaxGemmDepthBlock + 1) / 2];
  for (int64_t t = 0; t < kc2; ++t) offsets[t] = static_cast<int32_t>(t * nr);
  float* tile = aligned_scratch(static_cast<size_t>(mr) * nr, kSlotTile);
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t n = std::min<int64_t>(nr, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int64_t m = std::min<int64_t>(mr, mc - ir);
      tile_kernel.run(kc2, a + ir * kc2, b + jr * kc2, offsets, tile, nr);
      store_tile(tile, nr, m, n, alpha, beta, C + ir * ldc + jr, ldc);
    }
  }
}

// Where the driver gets its packed A blocks: packed on the fly from A, or read from a PackedA.
struct ASource {
  bool trans;
  const float* A;
  int64_t lda;
  const float* prepacked;  // non-null: panels of a PackedA covering all M rows
  int64_t prepacked_rows;  // M rounded up to MR (the panel stride of one depth block)
};

// A plain row-major op(B) as a PanelSource.
class MatrixSource final : public PanelSource {
 public:
  MatrixSource(bool trans, const float* B, int64_t ldb) : trans_(trans), B_(B), ldb_(ldb) {}
  void pack(int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const override {
    pack_b(trans_, B_, ldb_, p0, kc, j0, nc, nr, dst);
  }

 private:
  bool trans_;
  const float* B_;
  int64_t ldb_;
};

// One thread's GEMM on the columns [n0, n1) of C[M, :] (the driver's five loops). C points at
// column 0; column indices passed to the PanelSource are absolute.
void gemm_serial(const GemmMicroKernel& uk, const ASource& src, const PanelSource& B, int64_t M,
                 int64_t n0, int64_t n1, int64_t K, float alpha, float beta, float* C, int64_t ldc) {
  const int64_t nc_max = NC_PANELS * uk.nr, KC = gemm_depth_block(uk.nr), MC = gemm_row_block(KC);
  const Bf16ConvKernel* bf16 = bf16_tile_for(uk);
  float* b_block = aligned_scratch(static_cast<size_t>(KC) * nc_max, kSlotB);
  float* a_block = src.prepacked ? nullptr : aligned_scratch(static_cast<size_t>(KC) * round_up(MC, uk.mr), kSlotA);
  auto* b_pairs = bf16 ? reinterpret_cast<uint32_t*>(aligned_scratch(static_cast<size_t>(KC) / 2 * nc_max, kSlotPairsB)) : nullptr;
  auto* a_pairs = bf16 ? reinterpret_cast<uint32_t*>(aligned_scratch(static_cast<size_t>(KC) / 2 * round_up(MC, uk.mr), kSlotPairsA)) : nullptr;
  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const float beta_block = pc == 0 ? beta : 1.0f;
      B.pack(pc, kc, jc, nc, uk.nr, b_block);
      if (bf16) {
        pair_panels(b_block, round_up(nc, uk.nr) / uk.nr, kc, uk.nr, b_pairs);
      } else {
        round_operands(b_block, kc * round_up(nc, uk.nr));
      }
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        const float* a;
        if (src.prepacked) {
          a = src.prepacked + pc * src.prepacked_rows + ic * kc;
        } else {
          pack_a(src.trans, src.A, src.lda, ic, mc, pc, kc, uk.mr, a_block);
          if (!bf16) round_operands(a_block, kc * round_up(mc, uk.mr));
          a = a_block;
        }
        if (bf16) {
          pair_panels(a, round_up(mc, uk.mr) / uk.mr, kc, uk.mr, a_pairs);
          macro_kernel_bf16(*bf16, mc, nc, kc, a_pairs, b_pairs, alpha, beta_block, C + ic * ldc + jc, ldc);
        } else {
          macro_kernel(uk, mc, nc, kc, a, b_block, alpha, beta_block, C + ic * ldc + jc, ldc);
        }
      }
    }
  }
}

// C = beta * C for the degenerate K == 0 product.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

// How many threads a product deserves: one per ~4 MFLOP, none inside a parallel region.
int gemm_threads(int64_t M, int64_t N, int64_t K) {
  if (omp_in_parallel()) return 1;
  const double flops = 2.0 * M * N * K;
  return static_cast<int>(std::clamp<double>(flops / 4e6, 1.0, cpu_threads()));
}

// Splits C's columns over threads in whole micro-panels (or its rows, when N is the smaller
// side and A is a plain matrix), each thread running the serial driver on its part.
void gemm_parallel(const GemmMicroKernel& uk, const ASource& src, const PanelSource& B, int64_t M,
                   int64_t N, int64_t K, float alpha, float beta, float* C, int64_t ldc) {
  const int threads = gemm_threads(M, N, K);
  if (threads <= 1) return gemm_serial(uk, src, B, M, 0, N, K, alpha, beta, C, ldc);
  const bool split_rows = !src.prepacked && M > N;
  const int64_t unit = split_rows ? uk.mr : uk.nr, extent = split_rows ? M : N;
  const int64_t units = (extent + unit - 1) / unit;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = std::min(extent, units * t / nt * unit);
    const int64_t end = std::min(extent, units * (t + 1) / nt * unit);
    if (begin < end) {
      if (split_rows) {
        ASource part = src;
        part.A = src.trans ? src.A + begin : src.A + begin * src.lda;
        gemm_serial(uk, part, B, end - begin, 0, N, K, alpha, beta, C + begin * ldc, ldc);
      } else {
        gemm_serial(uk, src, B, M, begin, end, K, alpha, beta, C, ldc);
      }
    }
  }
}

// C[M, N] for M smaller than a micro-tile: each row of C is a vector-matrix product, computed
// without packing (dot products with the rows of B^T, or rows of B added up), threads over N.
void gemm_few_rows(const VectorKernels& vk, bool trans_a, bool trans_b, int64_t M, int64_t N,
                   int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float beta, float* C, int64_t ldc) {
  std::vector<float> a_row(K), c_row(trans_b ? 0 : N);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t k = 0; k < K; ++k) a_row[k] = trans_a ? A[k * lda + i] : A[i * lda + k];
    float* c = C + i * ldc;
    auto finish = [&](int64_t j, float product) { c[j] = alpha * product + (beta == 0.0f ? 0.0f : beta * c[j]); };
    if (trans_b) {  // C(i, j) = a_row . B[j, :]
      parallel_for(N, std::max<int64_t>(1, 65536 / K), [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) finish(j, vk.dot(K, a_row.data(), B + j * ldb));
      });
    } else {  // C(i, :) = sum_k a_row[k] * B[k, :]
      std::fill(c_row.begin(), c_row.end(), 0.0f);
      for (int64_t k = 0; k < K; ++k) vk.axpy(N, a_row[k], B + k * ldb, c_row.data());
      for (int64_t j = 0; j < N; ++j) finish(j, c_row[j]);
    }
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  const GemmMicroKernel* uk = active_gemm_microkernel();
  if (!uk) return sgemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // (bf16 takes the tiled path: its packing rounds the operands)
  if (M < uk->mr && matmul_precision() == Precision::FP32) return gemm_few_rows(*active_vector_kernels(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_parallel(*uk, ASource{trans_a, A, lda, nullptr, 0}, MatrixSource(trans_b, B, ldb), M, N, K,
                alpha, beta, C, ldc);
}

PackedA::PackedA(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda)
    : M_(M), K_(K), mr_(0), source_(A), trans_(trans_a), lda_(lda) {
  const GemmMicroKernel* uk = active_gemm_microkernel();
  if (!uk) return;  // the scalar set multiplies from A itself
  mr_ = uk->mr;
  const int64_t rows = round_up(M, mr_);
  panels_.resize(static_cast<size_t>(rows) * K);
  const int64_t KC = gemm_depth_block(uk->nr);
  // Depth block pc starts at pc * rows; within it, panel p of kc x MR floats at p * MR * kc:
  // exactly the layout pack_a writes for a whole column of blocks.
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    pack_a(trans_a, A, lda, 0, M, pc, kc, mr_, panels_.data() + pc * rows);
  }
  round_operands(panels_.data(), static_cast<int64_t>(panels_.size()));
  source_ = nullptr;
}

void sgemm_packed(const PackedA& A, bool trans_b, int64_t N, float alpha, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!A.source_ || A.M_ == 0 || A.K_ == 0)
    return sgemm_packed(A, MatrixSource(trans_b, B, ldb), N, alpha, beta, C, ldc);
  sgemm_reference(A.trans_, trans_b, A.M_, N, A.K_, alpha, A.source_, A.lda_, B, ldb, beta, C, ldc);
}

void sgemm_packed(const PackedA& A, const PanelSource& B, int64_t N, float alpha, float beta,
                  float* C, int64_t ldc) {
  const int64_t M = A.M_, K = A.K_;
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  const GemmMicroKernel* uk = active_gemm_microkernel();
  const int packed_for = A.source_ ? 0 : A.mr_;
  FER_CHECK((uk ? uk->mr : 0) == packed_for,
            "sgemm_packed: A was packed for another kernel set than the active one (",
            isa_name(fp32_isa()), ")");
  FER_CHECK(uk, "sgemm_packed: a PanelSource needs a vector kernel set (active: scalar)");
  // MC is a multiple of every MR, so the ic blocks of the driver start on panel boundaries.
  gemm_parallel(*uk, ASource{false, nullptr, 0, A.panels_.data(), round_up(M, A.mr_)}, B, M, N, K,
                alpha, beta, C, ldc);
}

// ---- The CPU backend's dense kernels -------------------------------------------------------

void CpuBackend::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, const float* B, float beta, float* C) {
  sgemm(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

void CpuBackend::add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) {
  parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += bias[c];
  });
}

void CpuBackend::sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols,
                          bool accumulate) {
  if (!accumulate) std::fill(dbias, dbias + cols, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dbias[c] += dy[r * cols + c];
}

}  // namespace fer::cpu
