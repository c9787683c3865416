// Per-element math of the GPU bilinear resize, as __host__ __device__ functions (geometry.cu runs
// them on the GPU, tests/test_cuda_parity.cpp on the host against the CPU backend). What they
// compute (PyTorch's align_corners=False sampling) is specified above resize_bilinear in
// engine/ops/shape.cpp; resize_tap is one axis's (i0, i1, 1 - l, l) there, computed with the
// same float operations as the CPU kernel's.
#pragma once
#include <cstdint>

#include "engine/host_device.h"

namespace fer::cuda {

struct ResizeTap {
  int64_t i0, i1;
  float l0, l1;
};

FER_HOST_DEVICE inline ResizeTap resize_tap(int64_t in, int64_t out, int64_t o) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  float src = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int64_t i0 = static_cast<int64_t>(src);
  if (i0 > in - 1) i0 = in - 1;
  const int64_t i1 = i0 + 1 < in - 1 ? i0 + 1 : in - 1;
  const float l = src - static_cast<float>(i0);
  return {i0, i1, 1.0f - l, l};
}

// Output (oh, ow) of one H x W plane resized to OH x OW.
FER_HOST_DEVICE inline float resize_bilinear_at(const float* plane, int64_t H, int64_t W, int64_t OH,
                                                int64_t OW, int64_t oh, int64_t ow) {
  const ResizeTap a = resize_tap(H, OH, oh), b = resize_tap(W, OW, ow);
  const float* r0 = plane + a.i0 * W;
  const float* r1 = plane + a.i1 * W;
  return a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
}

}  // namespace fer::cuda
