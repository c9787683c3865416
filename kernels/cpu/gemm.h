// The engine's single-precision GEMM, used by every dense layer and convolution:
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C      row-major, leading dimensions lda..
//
// op(X) is X or X^T. beta == 0 overwrites C without reading it.
//
// Two implementations that must agree (tests/test_gemm.cpp):
//   sgemm_reference  three plain loops: what the product means, and the reference of the tests.
//   sgemm            the GotoBLAS/BLIS structure (gemm.cpp): A and B copied into packed panels
//                    sized to the caches, and a register-blocked micro-kernel of the active
//                    instruction set (kernels/cpu/isa.h) computing one small tile of C at a time.
//                    Under the scalar set it is sgemm_reference.
//
// Threads: called outside an OpenMP parallel region, sgemm splits C over fer::cpu_threads();
// called inside one (threads over the images of a batch), it runs on the calling thread.
#pragma once
#include <cstdint>
#include <vector>

namespace fer::cpu {

class PanelSource;  // below

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                     float* C, int64_t ldc);

// op(A) packed once for many products with the same left operand (a convolution's weights,
// multiplied with every image of the batch). Packing is tied to the micro-kernel of the active
// instruction set at the time of packing; sgemm_packed checks that it still matches.
class PackedA {
 public:
  PackedA(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda);
  int64_t rows() const { return M_; }
  int64_t depth() const { return K_; }

 private:
  friend void sgemm_packed(const PackedA&, bool, int64_t, float, const float*, int64_t, float,
                           float*, int64_t);
  friend void sgemm_packed(const PackedA&, const PanelSource&, int64_t, float, float, float*,
                           int64_t);
  int64_t M_, K_;
  int mr_;
  const float* source_;  // the unpacked A under the scalar set (nothing is packed then)
  bool trans_ = false;
  int64_t lda_ = 0;
  std::vector<float> panels_;  // for each depth block: ceil(M/MR) panels of kc x MR floats
};

// C[M,N] = alpha * A * op(B)[K,N] + beta * C with A packed beforehand.
void sgemm_packed(const PackedA& A, bool trans_b, int64_t N, float alpha, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc);

// A right operand that is never stored as a matrix, only packed block by block straight from
// where its values live (a convolution's im2col columns, read from the image: implicit GEMM).
// pack() writes B[p0:p0+kc, j0:j0+nc] as ceil(nc/nr) panels of kc x nr floats, panel-major,
// dst[panel][k][c] = B(p0 + k, j0 + panel*nr + c), zero beyond column N. It is called from
// several threads at once, each with its own dst.
class PanelSource {
 public:
  virtual ~PanelSource() = default;
  virtual void pack(int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const = 0;
};

// C[M,N] = alpha * A * B[K,N] + beta * C with B given by a PanelSource. Needs a vector kernel
// set (the scalar set has no panels): callers take their reference path under it.
void sgemm_packed(const PackedA& A, const PanelSource& B, int64_t N, float alpha, float beta,
                  float* C, int64_t ldc);

}  // namespace fer::cpu
