// Dense kernels on the GPU: the GEMM through cuBLAS, and the row-bias helpers of linear layers.
//
// cuBLAS is column-major, the interface row-major. A row-major [M, N] matrix is the column-major
// [N, M] matrix of its transpose, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T:
//   cublasSgemm(op_b, op_a, N, M, K, alpha, B, ldb, A, lda, beta, C, N)
// with the leading dimensions of the row-major storage: lda = trans_a ? M : K, ldb = trans_b ? K : N.
// Math mode: plain FP32 (CUBLAS_DEFAULT_MATH) unless TF32 is allowed (set_allow_tf32).
#include <climits>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

void CudaBackend::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // C = beta * C; with beta == 0 C may hold garbage (NaN * 0 = NaN): overwrite
    if (beta == 0.0f) fill(C, M * N, 0.0f);
    else scale(C, beta, C, M * N);
    return;
  }
  FER_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "cuda gemm: dimensions M=", M, " N=", N,
            " K=", K, " exceed cuBLAS's 32-bit sizes");
  const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
  FER_CUBLAS_CHECK(cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                               trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B,
                               trans_b ? k : n, A, trans_a ? m : k, &beta, C, n),
                   "gemm", "C[", M, ", ", N, "] = ", trans_a ? "A^T" : "A", " * ", trans_b ? "B^T" : "B",
                   ", K=", K);
  library_done("gemm", [&] { return detail_str("M=", M, " N=", N, " K=", K); });
}

void CudaBackend::add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  launch_for_each(stream_, rows * cols, [=] __device__(int64_t i) { y[i] += bias[i % cols]; });
  launched("add_row_bias", [&] { return detail_str(rows, " x ", cols); });
}

// dbias[c] (+)= sum_r dy[r, c]. One thread per column adds the rows in order in float, exactly as
// the CPU does: rows are a batch (tens to hundreds), so this is short, and it is bit-identical.
void CudaBackend::sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols,
                           bool accumulate) {
  launch_for_each(stream_, cols, [=] __device__(int64_t c) {
    float s = accumulate ? dbias[c] : 0.0f;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + c];
    dbias[c] = s;
  });
  launched("sum_rows", [&] { return detail_str(rows, " x ", cols); });
}

}  // namespace fer::cuda
