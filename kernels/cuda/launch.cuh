// Launch helpers shared by the .cu files: grid sizes, a grid-stride loop over n elements that
// runs a __device__ lambda per index, the same over the planes of an NCHW tensor, a walk over
// one channel's values, and a block-wide sum in double.
//
//   launch_for_each(stream, n, [=] __device__(int64_t i) { y[i] = a[i] + b[i]; });
//   launch_planes(stream, N * C, H * W, [=] __device__(int64_t plane, int32_t i) { ... });
//
// 64-bit integer division costs tens of instructions on a GPU, more than the memory traffic of
// an elementwise kernel: the plane launcher hands out (plane, index in plane) without dividing,
// with the index in 32 bits so that the kernels' own in-plane divisions (row, column) are cheap.
//
// The lambdas capture raw device pointers and scalars by value (never `this`: a member read in
// device code would dereference a host pointer).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fer::cuda {

constexpr int kThreads = 256;          // threads per block of the elementwise kernels
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

template <typename F>
__global__ void for_each_index_kernel(int64_t n, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    f(i);
}

// Runs f(i) for i in [0, n) on `stream`; nothing when n == 0 (a grid of 0 blocks is an error).
template <typename F>
void launch_for_each(cudaStream_t stream, int64_t n, F f) {
  if (n <= 0) return;
  for_each_index_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, f);
}

template <typename F>
__global__ void for_each_in_planes_kernel(int64_t plane_size, F f) {
  const int64_t plane = blockIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.y) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < plane_size; i += stride)
    f(plane, static_cast<int32_t>(i));
}

// Runs f(plane, i) for every plane < planes and i < plane_size (which must fit in 32 bits: the
// caller checks, see check_plane_size): one grid column per plane.
template <typename F>
void launch_planes(cudaStream_t stream, int64_t planes, int64_t plane_size, F f) {
  if (planes <= 0 || plane_size <= 0) return;
  const int64_t chunks = (plane_size + kThreads - 1) / kThreads;
  const dim3 grid(static_cast<unsigned>(planes), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
  for_each_in_planes_kernel<<<grid, kThreads, 0, stream>>>(plane_size, f);
}

inline bool plane_fits(int64_t planes, int64_t plane_size) {
  return planes < (int64_t(1) << 31) && plane_size < (int64_t(1) << 31);
}

// Walks the values of one channel c of an NCHW tensor [N, C, HW] from thread `start` in steps of
// `stride`: value m of the channel is x[(m / HW * C + c) * HW + m % HW]; the division happens once.
struct ChannelCursor {
  int64_t n, i, dn, di;
  __device__ ChannelCursor(int64_t start, int64_t stride, int64_t HW)
      : n(start / HW), i(start % HW), dn(stride / HW), di(stride % HW) {}
  __device__ void advance(int64_t HW) {
    n += dn;
    i += di;
    if (i >= HW) i -= HW, ++n;
  }
  __device__ int64_t offset(int64_t C, int64_t c, int64_t HW) const { return (n * C + c) * HW + i; }
};

// The sum of v over the block, returned to every thread. Every thread of the block must call it
// (it synchronises); blockDim.x must be a multiple of 32. The order of the additions depends only
// on blockDim, so results are reproducible.
__device__ inline double block_sum(double v) {
  __shared__ double warp_sums[32];
  __shared__ double total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // a previous call may still be reading warp_sums / total
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + 31) >> 5;
    double s = lane < warps ? warp_sums[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

}  // namespace fer::cuda
