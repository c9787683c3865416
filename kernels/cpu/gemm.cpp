// Dense kernels: the shared sgemm (OpenBLAS or Eigen) and the row-bias helpers of linear layers.
#include "kernels/cpu/gemm.h"

#include <Eigen/Core>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

#ifdef FER_HAVE_BLAS
#include <cblas.h>
#endif

namespace fer::cpu {

namespace {
using Stride = Eigen::OuterStride<>;
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstView = Eigen::Map<const RowMajor, 0, Stride>;
using View = Eigen::Map<RowMajor, 0, Stride>;

void eigen_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  View c(C, M, N, Stride(ldc));
  ConstView a(A, ta ? K : M, ta ? M : K, Stride(lda));
  ConstView b(B, tb ? N : K, tb ? K : N, Stride(ldb));
  auto run = [&](const auto& opa, const auto& opb) {
    if (beta == 0.0f) {
      c.noalias() = alpha * (opa * opb);
    } else {
      if (beta != 1.0f) c *= beta;
      c.noalias() += alpha * (opa * opb);
    }
  };
  if (!ta && !tb) run(a, b);
  else if (ta && !tb) run(a.transpose(), b);
  else if (!ta && tb) run(a, b.transpose());
  else run(a.transpose(), b.transpose());
}
}  // namespace

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
#ifdef FER_HAVE_BLAS
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
#else
  eigen_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

const char* gemm_library() {
#ifdef FER_HAVE_BLAS
  return "OpenBLAS";
#else
  return "Eigen";
#endif
}

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
