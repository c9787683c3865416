// The per-element math of the GPU pooling kernels, as __host__ __device__ functions: the CUDA
// kernels (pool2d.cu) run them on the GPU, and tests/test_cuda_parity.cpp runs them on the host
// against the CPU backend, so their index arithmetic is checked even on machines without a GPU.
// What they compute (windows, divisor, argmax, NaN) is specified above max_pool2d and avg_pool2d
// in engine/ops/conv_pool.cpp.
//
// Forward: one output per call, its window visited in row-major order (the first maximum wins,
// as on the CPU).
// Backward, as a gather instead of the CPU's scatter: the thread of input (ih, iw) visits the
// outputs whose window contains it, in the same row-major order in which the CPU adds their
// contributions, so the sums are bit-identical and no atomics are needed:
//   max: dx[i] = sum of dy[o] over outputs o with argmax[o] == i
//   avg: dx[i] = sum of dy[o] / divisor(o) over outputs o whose window holds i
// Output row oh covers input rows [oh*s - p, oh*s - p + KH), so input row ih lies in the windows
// of oh in [ceil((ih + p - KH + 1) / s), floor((ih + p) / s)], clipped to [0, OH).
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/backend.h"
#include "engine/host_device.h"

namespace fer::cuda {

struct PoolWindow {
  int64_t h0, h1, w0, w1;  // input rows [h0, h1) and columns [w0, w1), clipped to the image
  int64_t divisor;         // average-pool divisor: the window clipped to the padded image
};

FER_HOST_DEVICE inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
FER_HOST_DEVICE inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

FER_HOST_DEVICE inline PoolWindow pool_window(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  const int64_t h1 = min64(h0 + g.KH, g.H + g.pad_h), w1 = min64(w0 + g.KW, g.W + g.pad_w);
  return {max64(h0, 0), min64(h1, g.H), max64(w0, 0), min64(w1, g.W), (h1 - h0) * (w1 - w0)};
}

// Outputs [lo, hi] along one axis whose windows contain input index i (empty when lo > hi).
FER_HOST_DEVICE inline void covering_outputs(int64_t i, int64_t kernel, int64_t stride, int64_t pad,
                                             int64_t out, int64_t* lo, int64_t* hi) {
  const int64_t first = i + pad - kernel + 1;  // the window starting here still reaches i
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  *hi = min64((i + pad) / stride, out - 1);
}

// y and argmax of output (oh, ow) of one plane.
FER_HOST_DEVICE inline float max_pool_at(const Pool2dGeometry& g, const float* plane, int64_t oh,
                                         int64_t ow, int32_t* argmax) {
  const PoolWindow win = pool_window(g, oh, ow);
  float best = -INFINITY;
  int32_t best_i = -1;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) {
      const float v = plane[ih * g.W + iw];
      if (v > best || best_i < 0 || v != v) {  // v != v: NaN
        best = v;
        best_i = static_cast<int32_t>(ih * g.W + iw);
      }
    }
  *argmax = best_i;
  return best;
}

FER_HOST_DEVICE inline float avg_pool_at(const Pool2dGeometry& g, const float* plane, int64_t oh,
                                         int64_t ow) {
  const PoolWindow win = pool_window(g, oh, ow);
  float s = 0.0f;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) s += plane[ih * g.W + iw];
  return s / static_cast<float>(win.divisor);
}

// dx at input (ih, iw) of one plane, from that plane's dy and argmax.
FER_HOST_DEVICE inline float max_pool_grad_at(const Pool2dGeometry& g, const float* dy_plane,
                                              const int32_t* argmax_plane, int64_t ih, int64_t iw) {
  int64_t oh0, oh1, ow0, ow1;
  covering_outputs(ih, g.KH, g.stride_h, g.pad_h, g.OH, &oh0, &oh1);
  covering_outputs(iw, g.KW, g.stride_w, g.pad_w, g.OW, &ow0, &ow1);
  const int32_t self = static_cast<int32_t>(ih * g.W + iw);
  float acc = 0.0f;
  for (int64_t oh = oh0; oh <= oh1; ++oh)
    for (int64_t ow = ow0; ow <= ow1; ++ow)
      if (argmax_plane[oh * g.OW + ow] == self) acc += dy_plane[oh * g.OW + ow];
  return acc;
}

FER_HOST_DEVICE inline float avg_pool_grad_at(const Pool2dGeometry& g, const float* dy_plane,
                                              int64_t ih, int64_t iw) {
  int64_t oh0, oh1, ow0, ow1;
  covering_outputs(ih, g.KH, g.stride_h, g.pad_h, g.OH, &oh0, &oh1);
  covering_outputs(iw, g.KW, g.stride_w, g.pad_w, g.OW, &ow0, &ow1);
  float acc = 0.0f;
  for (int64_t oh = oh0; oh <= oh1; ++oh)
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const PoolWindow win = pool_window(g, oh, ow);
      if (ih < win.h0 || ih >= win.h1 || iw < win.w0 || iw >= win.w1) continue;
      acc += dy_plane[oh * g.OW + ow] / static_cast<float>(win.divisor);
    }
  return acc;
}

}  // namespace fer::cuda
