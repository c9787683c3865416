// Dense kernels: GEMM through Eigen (which blocks for the caches, packs panels for its AVX2/FMA
// micro-kernel and splits large products over OpenMP threads), plus the row-bias helpers that
// linear layers need.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/eigen_maps.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

// C[M,N] = alpha * op(A) op(B) + beta * C. A is stored [M,K] (or [K,M] when trans_a), B is
// stored [K,N] (or [N,K] when trans_b), all row-major.
void CpuBackend::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, const float* B, float beta, float* C) {
  MatrixMap c(C, M, N);
  if (K == 0) {
    if (beta == 0.0f) c.setZero(); else c *= beta;
    return;
  }
  ConstMatrixMap a(A, trans_a ? K : M, trans_a ? M : K);
  ConstMatrixMap b(B, trans_b ? N : K, trans_b ? K : N);
  auto run = [&](const auto& opa, const auto& opb) {
    if (beta == 0.0f) {
      c.noalias() = alpha * (opa * opb);
    } else {
      if (beta != 1.0f) c *= beta;
      c.noalias() += alpha * (opa * opb);
    }
  };
  if (!trans_a && !trans_b) run(a, b);
  else if (trans_a && !trans_b) run(a.transpose(), b);
  else if (!trans_a && trans_b) run(a, b.transpose());
  else run(a.transpose(), b.transpose());
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
