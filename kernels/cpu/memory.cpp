// CPU memory: 64-byte aligned host buffers (one AVX-512 line: vector loads never straddle two).
//
// A training step allocates and frees the same activation-sized buffers (up to ~20 MB at batch
// 64) every step. glibc would serve those with fresh mmap()s whose pages fault in on first touch,
// which costs as much as a batchnorm pass; raising its mmap and trim thresholds keeps freed
// buffers in the heap for reuse (the CPU counterpart of the CUDA backend's caching allocator).
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer {
Backend* make_cpu_backend() {
  static cpu::CpuBackend instance;
  return &instance;
}
}  // namespace fer

namespace fer::cpu {

float* aligned_thread_scratch(size_t floats, int slot) {
  struct Buffer {
    float* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffers[kAlignedScratchSlots];
  Buffer& b = buffers[slot];
  if (b.size < floats) {
    std::free(b.data);
    b.data = nullptr;
    b.size = (floats + 15) / 16 * 16;
    b.data = static_cast<float*>(std::aligned_alloc(64, b.size * sizeof(float)));
    if (!b.data) {
      b.size = 0;
      throw std::bad_alloc();
    }
  }
  return b.data;
}

void* CpuBackend::allocate(size_t bytes) {
  static const bool heap_tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    return true;
  }();
  (void)heap_tuned;
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}
void CpuBackend::deallocate(void* ptr, size_t) { std::free(ptr); }
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                         int64_t rows, int64_t cols, bool accumulate) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = src + r * src_stride;
      float* d = dst + r * dst_stride;
      if (accumulate) {
        for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
      } else {
        std::memcpy(d, s, cols * sizeof(float));
      }
    }
  });
}

}  // namespace fer::cpu
