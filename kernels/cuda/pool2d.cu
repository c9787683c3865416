// Max and average pooling on the GPU: one thread per output element forward, one per input
// element backward (a gather: deterministic and bit-identical to the CPU's scatter). The
// per-element math is in pool2d_math.h, shared with the host test of the index arithmetic.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pool2d_math.h"

namespace fer::cuda {

namespace {
void check_sizes(const Pool2dGeometry& g, const char* op) {
  FER_CHECK(plane_fits(g.N * g.C, g.H * g.W), "cuda ", op, ": ", pool_str(g),
            " exceeds the kernels' 32-bit grid");
}
}  // namespace

void CudaBackend::max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y,
                                     int32_t* argmax) {
  check_sizes(g, "max_pool2d_forward");
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const int32_t OW = static_cast<int32_t>(g.OW);
  launch_planes(stream_, g.N * g.C, P, [=] __device__(int64_t plane, int32_t o) {
    y[plane * P + o] = max_pool_at(g, x + plane * HW, o / OW, o % OW, argmax + plane * P + o);
  });
  launched("max_pool2d_forward", [&] { return pool_str(g); });
}

void CudaBackend::max_pool2d_backward(const Pool2dGeometry& g, const float* dy,
                                      const int32_t* argmax, float* dx) {
  check_sizes(g, "max_pool2d_backward");
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const int32_t W = static_cast<int32_t>(g.W);
  launch_planes(stream_, g.N * g.C, HW, [=] __device__(int64_t plane, int32_t at) {
    dx[plane * HW + at] = max_pool_grad_at(g, dy + plane * P, argmax + plane * P, at / W, at % W);
  });
  launched("max_pool2d_backward", [&] { return pool_str(g); });
}

void CudaBackend::avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  check_sizes(g, "avg_pool2d_forward");
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const int32_t OW = static_cast<int32_t>(g.OW);
  launch_planes(stream_, g.N * g.C, P, [=] __device__(int64_t plane, int32_t o) {
    y[plane * P + o] = avg_pool_at(g, x + plane * HW, o / OW, o % OW);
  });
  launched("avg_pool2d_forward", [&] { return pool_str(g); });
}

void CudaBackend::avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  check_sizes(g, "avg_pool2d_backward");
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const int32_t W = static_cast<int32_t>(g.W);
  launch_planes(stream_, g.N * g.C, HW, [=] __device__(int64_t plane, int32_t at) {
    dx[plane * HW + at] = avg_pool_grad_at(g, dy + plane * P, at / W, at % W);
  });
  launched("avg_pool2d_backward", [&] { return pool_str(g); });
}

}  // namespace fer::cuda
