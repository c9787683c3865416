// CPU memory: 64-byte aligned host buffers (one AVX-512 line: vector loads never straddle two).
//
// A training step allocates and frees the same activation-sized buffers every step. glibc serves
// a buffer with a fresh mmap() when it is larger than its mmap threshold, and every page of a
// fresh mapping faults in, zeroed by the kernel, on first touch: that costs as much as a
// batchnorm pass over the buffer. Two measures keep that off the step:
// - the mmap and trim thresholds are raised to glibc's ceiling (32 MiB), so freed buffers below
//   it stay in the heap for reuse;
// - buffers from 32 MiB up (MobileNetV2 at 96x96 has 56 MiB ones at batch 64) are kept by a
//   small cache of our own when freed and handed out again for a request of about their size,
//   as the CUDA backend's caching allocator does for device memory. They are 2 MiB aligned and
//   advised as huge pages: 512x fewer faults the first time, fewer TLB misses after.
#include <sys/mman.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
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

namespace {

constexpr size_t kLargeBlock = size_t(32) << 20;  // glibc's mmap threshold ceiling (64-bit)
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kCacheLimit = size_t(2) << 30;   // cached bytes held at most

// Freed large blocks by size (a multiple of 2 MiB). A request takes the smallest cached block
// that is at least its size and less than 1.5 times it; when holding a freed block would take
// the cache past its limit, the largest blocks go back to the system first.
class LargeBlockCache {
 public:
  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(size);
    if (it == free_.end() || it->first >= size + size / 2) return nullptr;
    void* p = it->second;
    cached_ -= it->first;
    free_.erase(it);
    return p;
  }
  void give(void* p, size_t size) {
    if (size > kCacheLimit) {  // never cached: it would evict everything else
      std::free(p);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    while (!free_.empty() && cached_ + size > kCacheLimit) {
      auto largest = std::prev(free_.end());
      cached_ -= largest->first;
      std::free(largest->second);
      free_.erase(largest);
    }
    free_.emplace(size, p);
    cached_ += size;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [size, p] : free_) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

LargeBlockCache& large_blocks() {  // never destroyed: tensors freed at exit may still reach it
  static LargeBlockCache* cache = new LargeBlockCache;
  return *cache;
}

size_t large_block_size(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

void* allocate_large(size_t bytes) {
  const size_t size = large_block_size(bytes);
  if (void* p = large_blocks().take(size)) return p;
  void* p = std::aligned_alloc(kHugePage, size);
  if (!p) {  // the cache may hold what the system lacks: give it back and try once more
    large_blocks().release();
    p = std::aligned_alloc(kHugePage, size);
    if (!p) throw std::bad_alloc();
  }
  madvise(p, size, MADV_HUGEPAGE);  // advice only: its failure (no THP) changes nothing else
  return p;
}

}  // namespace

size_t cached_host_bytes() { return large_blocks().cached(); }
void release_cached_host_memory() { large_blocks().release(); }

void* CpuBackend::allocate(size_t bytes) {
  static const bool heap_tuned = [] {
    mallopt(M_MMAP_THRESHOLD, kLargeBlock);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    return true;
  }();
  (void)heap_tuned;
  if (bytes >= kLargeBlock) return allocate_large(bytes);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}
void CpuBackend::deallocate(void* ptr, size_t bytes) {
  if (bytes >= kLargeBlock) large_blocks().give(ptr, large_block_size(bytes));
  else std::free(ptr);
}
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
