// Max and average pooling on the CPU (the math: max_pool2d and avg_pool2d in
// engine/ops/conv_pool.cpp; the kernels' contracts: engine/backend.h).
//
// Threads over the N*C planes. Forward visits each output's window clipped to the image, in
// row-major order; backward scatters: each output adds its dy (max: into its argmax; avg: dy /
// divisor into every input of its window) into a zeroed plane of dx, in output order. The 2x2,
// stride 2 windows of every VGG stage have a path of their own without the general window logic.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {
// Input rows [h0, h1) and columns [w0, w1) of output (oh, ow), clipped to the image, and the
// average-pool divisor (window clipped to the padded image).
struct Window {
  int64_t h0, h1, w0, w1, divisor;
};
Window window(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  int64_t h1 = std::min(h0 + g.KH, g.H + g.pad_h), w1 = std::min(w0 + g.KW, g.W + g.pad_w);
  const int64_t divisor = (h1 - h0) * (w1 - w0);
  return {std::max<int64_t>(h0, 0), std::min(h1, g.H), std::max<int64_t>(w0, 0),
          std::min(w1, g.W), divisor};
}
constexpr int64_t kPlaneGrain = 8;
}  // namespace

// The 2x2 / stride 2 / no padding case of every VGG stage, without the general window logic.
static void max_pool_2x2(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  parallel_for(g.N * g.C, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = x + p * g.H * g.W;
      float* out = y + p * g.OH * g.OW;
      int32_t* idx = argmax + p * g.OH * g.OW;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const float* r0 = in + 2 * oh * g.W;
        const float* r1 = r0 + g.W;
        const int32_t top = static_cast<int32_t>(2 * oh * g.W), bottom = top + static_cast<int32_t>(g.W);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          // First maximum in window order (row 0 then row 1), as the general path picks it. The
          // comparisons are selects, not branches (a random image mispredicts half of them), so
          // the compiler vectorizes the row.
          const int32_t col = static_cast<int32_t>(2 * ow);
          float v = r0[2 * ow];
          int32_t best = top + col;
          const float b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          best = b > v ? top + col + 1 : best;
          v = b > v ? b : v;
          best = c > v ? bottom + col : best;
          v = c > v ? c : v;
          best = d > v ? bottom + col + 1 : best;
          v = d > v ? d : v;
          out[oh * g.OW + ow] = v;
          idx[oh * g.OW + ow] = best;
        }
      }
    }
  });
}

void CpuBackend::max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y,
                                    int32_t* argmax) {
  if (g.KH == 2 && g.KW == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 &&
      g.pad_w == 0 && 2 * g.OH <= g.H && 2 * g.OW <= g.W) {
    max_pool_2x2(g, x, y, argmax);
    return;
  }
  parallel_for(g.N * g.C, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = x + p * g.H * g.W;
      float* out = y + p * g.OH * g.OW;
      int32_t* idx = argmax + p * g.OH * g.OW;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window win = window(g, oh, ow);
          float best = -std::numeric_limits<float>::infinity();
          int32_t best_i = -1;
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) {
              const float v = in[ih * g.W + iw];
              if (v > best || best_i < 0 || std::isnan(v)) {
                best = v;
                best_i = static_cast<int32_t>(ih * g.W + iw);
              }
            }
          out[oh * g.OW + ow] = best;
          idx[oh * g.OW + ow] = best_i;
        }
      }
    }
  });
}

void CpuBackend::max_pool2d_backward(const Pool2dGeometry& g, const float* dy,
                                     const int32_t* argmax, float* dx) {
  parallel_for(g.N * g.C, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* grad_in = dx + p * g.H * g.W;
      std::memset(grad_in, 0, g.H * g.W * sizeof(float));
      const float* grad_out = dy + p * g.OH * g.OW;
      const int32_t* idx = argmax + p * g.OH * g.OW;
      for (int64_t i = 0; i < g.OH * g.OW; ++i)
        if (idx[i] >= 0) grad_in[idx[i]] += grad_out[i];
    }
  });
}

void CpuBackend::avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  parallel_for(g.N * g.C, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = x + p * g.H * g.W;
      float* out = y + p * g.OH * g.OW;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window win = window(g, oh, ow);
          float s = 0.0f;
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) s += in[ih * g.W + iw];
          out[oh * g.OW + ow] = s / static_cast<float>(win.divisor);
        }
    }
  });
}

void CpuBackend::avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  parallel_for(g.N * g.C, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* grad_in = dx + p * g.H * g.W;
      std::memset(grad_in, 0, g.H * g.W * sizeof(float));
      const float* grad_out = dy + p * g.OH * g.OW;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window win = window(g, oh, ow);
          const float share = grad_out[oh * g.OW + ow] / static_cast<float>(win.divisor);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) grad_in[ih * g.W + iw] += share;
        }
    }
  });
}

}  // namespace fer::cpu
