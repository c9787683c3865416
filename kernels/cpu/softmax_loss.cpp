// Softmax, log-softmax and the negative log-likelihood loss on the CPU (the math:
// engine/ops/softmax_loss.cpp; the kernels' contracts: engine/backend.h).
//
// Softmax: threads over rows (samples), each row's sums in double. Loss: one pass on the calling
// thread (a batch of labels is small), summed in double in row order, so the loss does not
// depend on the thread count.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

void CpuBackend::softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* in = x + r * cols;
      float* out = y + r * cols;
      float mx = in[0];
      for (int64_t c = 1; c < cols; ++c) mx = std::max(mx, in[c]);
      double total = 0.0;
      for (int64_t c = 0; c < cols; ++c) total += std::exp(static_cast<double>(in[c] - mx));
      if (log) {
        const float lse = static_cast<float>(std::log(total));
        for (int64_t c = 0; c < cols; ++c) out[c] = in[c] - mx - lse;
      } else {
        const float inv = static_cast<float>(1.0 / total);
        for (int64_t c = 0; c < cols; ++c) out[c] = std::exp(in[c] - mx) * inv;
      }
    }
  });
}

void CpuBackend::softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                                  int64_t cols, bool log) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* out = dx + r * cols;
      double s = 0.0;
      if (log) {
        for (int64_t c = 0; c < cols; ++c) s += gr[c];
        for (int64_t c = 0; c < cols; ++c) out[c] = gr[c] - std::exp(yr[c]) * static_cast<float>(s);
      } else {
        for (int64_t c = 0; c < cols; ++c) s += gr[c] * yr[c];
        for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - static_cast<float>(s));
      }
    }
  });
}

float CpuBackend::nll_loss_forward(const float* logp, const float* target, const float* weight,
                                   int64_t rows, int64_t cols, float smoothing) {
  double total = 0.0, weight_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = static_cast<int64_t>(target[r]);
    const float* row = logp + r * cols;
    const double wt = weight ? weight[t] : 1.0;
    weight_sum += wt;
    double smooth = 0.0;
    if (smoothing > 0.0f)
      for (int64_t c = 0; c < cols; ++c) smooth += (weight ? weight[c] : 1.0) * -row[c];
    total += (1.0 - smoothing) * wt * -row[t] + smoothing / cols * smooth;
  }
  return weight_sum > 0 ? static_cast<float>(total / weight_sum) : 0.0f;
}

void CpuBackend::nll_loss_backward(const float* target, const float* weight, int64_t rows,
                                   int64_t cols, float smoothing, float grad_scale, float* dlogp) {
  double weight_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) weight_sum += weight ? weight[static_cast<int64_t>(target[r])] : 1.0;
  const float k = weight_sum > 0 ? static_cast<float>(-grad_scale / weight_sum) : 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = static_cast<int64_t>(target[r]);
    float* row = dlogp + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = k * smoothing / cols * (weight ? weight[c] : 1.0f);
    row[t] += k * (1.0f - smoothing) * (weight ? weight[t] : 1.0f);
  }
}

}  // namespace fer::cpu
