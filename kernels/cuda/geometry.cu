// Dropout masks, bilinear resize and zero padding on the GPU.
//
// Dropout: mask[i] = (u(seed, offset + i) >= p) / (1 - p) with engine/random.h's counter_uniform,
// the very function the CPU uses (it is __host__ __device__), so a seed gives the same mask on
// both. Inside a CUDA graph capture the kernel also reads the graph's replay seed from device
// memory and mixes it into the seed, so every replay draws a fresh mask (DeviceGraph::replay).
// Resize: forward one thread per output (geometry_math.h); backward scatters each dy with the
// four bilinear weights through atomicAdd into a zeroed dx (the order of the additions varies,
// so dx matches the CPU to rounding, not bit for bit).
// Padding: forward one thread per output (zero outside the copy), backward one per input.
#include "engine/random.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/geometry_math.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

void CudaBackend::dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float keep_scale = 1.0f / (1.0f - p);
  if (capture_) {
    const uint64_t* replay_seed = capture_->replay_seed;
    launch_for_each(stream_, n, [=] __device__(int64_t i) {
      const uint64_t s = seed ^ splitmix64(*replay_seed);
      mask[i] = counter_uniform(s, offset + static_cast<uint64_t>(i)) >= p ? keep_scale : 0.0f;
    });
  } else {
    launch_for_each(stream_, n, [=] __device__(int64_t i) {
      mask[i] = counter_uniform(seed, offset + static_cast<uint64_t>(i)) >= p ? keep_scale : 0.0f;
    });
  }
  launched("dropout_mask", [&] { return detail_str("n=", n, ", p=", p); });
}

void CudaBackend::resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                          const float* x, float* y) {
  const int64_t P = OH * OW;
  launch_for_each(stream_, NC * P, [=] __device__(int64_t i) {
    const int64_t plane = i / P, o = i - plane * P;
    y[i] = resize_bilinear_at(x + plane * H * W, H, W, OH, OW, o / OW, o % OW);
  });
  launched("resize_bilinear_forward", [&] {
    return detail_str(NC, " planes of ", H, "x", W, " -> ", OH, "x", OW);
  });
}

void CudaBackend::resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH,
                                           int64_t OW, const float* dy, float* dx) {
  auto shapes = [&] { return detail_str(NC, " planes of ", H, "x", W, " -> ", OH, "x", OW); };
  if (NC * H * W == 0) return;
  FER_CUDA_CHECK(cudaMemsetAsync(dx, 0, NC * H * W * sizeof(float), stream_), "resize_bilinear_backward",
                 shapes());
  const int64_t P = OH * OW;
  launch_for_each(stream_, NC * P, [=] __device__(int64_t i) {
    const int64_t plane = i / P, o = i - plane * P;
    const ResizeTap a = resize_tap(H, OH, o / OW), b = resize_tap(W, OW, o % OW);
    const float g = dy[i];
    float* gin = dx + plane * H * W;
    atomicAdd(gin + a.i0 * W + b.i0, a.l0 * b.l0 * g);
    atomicAdd(gin + a.i0 * W + b.i1, a.l0 * b.l1 * g);
    atomicAdd(gin + a.i1 * W + b.i0, a.l1 * b.l0 * g);
    atomicAdd(gin + a.i1 * W + b.i1, a.l1 * b.l1 * g);
  });
  launched("resize_bilinear_backward", shapes);
}

void CudaBackend::pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                                int64_t left, int64_t right, const float* x, float* y) {
  const int64_t OH = H + top + bottom, OW = W + left + right, P = OH * OW;
  launch_for_each(stream_, NC * P, [=] __device__(int64_t i) {
    const int64_t plane = i / P, o = i - plane * P;
    const int64_t h = o / OW - top, w = o % OW - left;
    y[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(plane * H + h) * W + w] : 0.0f;
  });
  launched("pad2d_forward", [&] {
    return detail_str(NC, " planes of ", H, "x", W, ", padding t", top, " b", bottom, " l", left, " r", right);
  });
}

void CudaBackend::pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                                 int64_t left, int64_t right, const float* dy, float* dx) {
  const int64_t OH = H + top + bottom, OW = W + left + right, HW = H * W;
  launch_for_each(stream_, NC * HW, [=] __device__(int64_t i) {
    const int64_t plane = i / HW, at = i - plane * HW;
    dx[i] = dy[plane * OH * OW + (at / W + top) * OW + at % W + left];
  });
  launched("pad2d_backward", [&] {
    return detail_str(NC, " planes of ", H, "x", W, ", padding t", top, " b", bottom, " l", left, " r", right);
  });
}

}  // namespace fer::cuda
