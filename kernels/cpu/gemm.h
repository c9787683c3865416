// The one single-precision GEMM every CPU kernel uses (dense layers, convolutions):
//   C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with leading dimensions (row strides).
// With OpenBLAS found at configure time (FER_HAVE_BLAS) it calls cblas_sgemm, whose AVX2
// micro-kernels run ~1.5x faster than Eigen's on this class of CPU; otherwise Eigen's product.
// Called inside an OpenMP parallel region (threads over the batch) both run single-threaded;
// called outside, both split the product over fer::cpu_threads().
#pragma once
#include <cstdint>

namespace fer::cpu {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

const char* gemm_library();  // "OpenBLAS" or "Eigen", for benchmark reports

}  // namespace fer::cpu
