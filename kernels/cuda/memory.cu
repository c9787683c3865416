// Device memory and copies: allocation through the caching allocator, uploads through pinned
// staging buffers, downloads, device-to-device copies and the strided 2-d block copy.
//
// Upload (copy_from_host): the host bytes are copied into one of kStagingBuffers pinned buffers
// and an asynchronous copy to the device is queued on the stream; the call returns at once, so
// the caller may reuse or free its host memory, and the host goes on (the next batch's decoding,
// the next ops' launches) while the GPU copies. A staging buffer is reused only after the event
// recorded behind its last copy has fired. Bigger uploads go through the ring in chunks.
// Download (copy_to_host) waits for the stream: the host needs the values.
#include <algorithm>
#include <cstring>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {
__global__ void image_probe_kernel(float* p) {
  if (p) *p = 0.0f;
}
}  // namespace

cudaError_t check_kernel_image() {
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, image_probe_kernel);
}

void* CudaBackend::allocate(size_t bytes) { return allocator_.allocate(bytes); }

void CudaBackend::deallocate(void* ptr, size_t) { allocator_.deallocate(ptr); }

void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  require_not_capturing("copy_from_host");
  std::lock_guard<std::mutex> lock(staging_mutex_);
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  for (size_t done = 0; done < bytes;) {
    Staging& s = staging_[next_staging_];
    next_staging_ = (next_staging_ + 1) % kStagingBuffers;
    const size_t n = std::min(kStagingBytes, bytes - done);
    FER_CUDA_CHECK(cudaEventSynchronize(s.done), "copy_from_host", "waiting for a staging buffer");
    std::memcpy(s.host, in + done, n);
    FER_CUDA_CHECK(cudaMemcpyAsync(out + done, s.host, n, cudaMemcpyHostToDevice, stream_),
                   "copy_from_host", format_bytes(bytes), " to ", dst);
    FER_CUDA_CHECK(cudaEventRecord(s.done, stream_), "copy_from_host");
    done += n;
  }
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  require_not_capturing("copy_to_host");
  if (bytes == 0) return;
  FER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy_to_host",
                 format_bytes(bytes), " from ", src);
  wait("copy_to_host");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (dst == src || bytes == 0) return;
  FER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy",
                 format_bytes(bytes));
}

// dst[r * dst_stride + c] (+)= src[r * src_stride + c] for r < rows, c < cols.
void CudaBackend::copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                          int64_t rows, int64_t cols, bool accumulate) {
  if (rows <= 0 || cols <= 0) return;
  launch_for_each(stream_, rows * cols, [=] __device__(int64_t i) {
    const int64_t r = i / cols, c = i - r * cols;
    const float v = src[r * src_stride + c];
    if (accumulate) dst[r * dst_stride + c] += v;
    else dst[r * dst_stride + c] = v;
  });
  launched("copy_2d", [&] {
    return detail_str(rows, " x ", cols, " block, strides ", src_stride, " -> ", dst_stride);
  });
}

void CudaBackend::synchronize() { wait("synchronize"); }

}  // namespace fer::cuda
