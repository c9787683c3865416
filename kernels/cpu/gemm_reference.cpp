// The reference GEMM: the definition of the product, summed in double so that it is a
// trustworthy yardstick for the fast kernels' float sums. Row i of C accumulates
// op(A)(i, k) * op(B)(k, :) over k, which reads B row by row (fast enough to serve as the
// scalar kernel set of whole-network tests). In bf16 precision (isa.h) each operand is rounded to
// bf16 first, which is the definition of a bf16 product with float sums.
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/isa.h"

namespace fer::cpu {

void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                     float* C, int64_t ldc) {
  const bool bf16 = matmul_precision() == Precision::BF16;
  auto operand = [bf16](float x) { return static_cast<double>(bf16 ? round_to_bf16(x) : x); };
  std::vector<double> row(N);
  for (int64_t i = 0; i < M; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    for (int64_t k = 0; k < K; ++k) {
      const double a = operand(trans_a ? A[k * lda + i] : A[i * lda + k]);
      for (int64_t j = 0; j < N; ++j) row[j] += a * operand(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
    }
    for (int64_t j = 0; j < N; ++j) {
      float& c = C[i * ldc + j];
      c = static_cast<float>(alpha * row[j] + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c));
    }
  }
}

}  // namespace fer::cpu
