// The caching allocator of GPU memory (the policy is described in allocator.h).
#include "kernels/cuda/allocator.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "engine/error.h"
#include "kernels/cuda/check.h"

namespace fer::cuda {

namespace {
constexpr size_t kSmallLimit = size_t(1) << 20;   // 1 MiB
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;   // 2 MiB

size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t unit = bytes <= kSmallLimit ? kSmallRound : kLargeRound;
  return (bytes + unit - 1) / unit * unit;
}
}  // namespace

std::string format_bytes(size_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%zu B", bytes);
  return buf;
}

GraphPool::~GraphPool() { owner->release_pool(this); }

void* CachingAllocator::take(std::multimap<size_t, void*>& cache, size_t size) {
  auto it = cache.lower_bound(size);
  if (it == cache.end() || it->first >= 2 * size) return nullptr;
  void* p = it->second;
  cache.erase(it);
  return p;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.requests;
  void* p = take(capturing_ ? capturing_->free : free_, size);
  if (p) {
    ++stats_.cache_hits;
  } else {
    p = device_malloc(size);
    blocks_[p] = Block{size, capturing_, false};
    stats_.reserved += size;
  }
  Block& b = blocks_.at(p);
  b.in_use = true;
  stats_.in_use += b.size;
  if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
  return p;
}

void CachingAllocator::deallocate(void* ptr) noexcept {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = blocks_.find(ptr);
  if (it == blocks_.end() || !it->second.in_use) return;  // not ours, or freed twice: ignore
  Block& b = it->second;
  b.in_use = false;
  stats_.in_use -= b.size;
  if (capturing_) {
    if (b.pool == capturing_) capturing_->free.emplace(b.size, ptr);
    else capturing_->parked.push_back(ptr);  // a graph recorded in this capture may read it
  } else if (b.pool) {
    b.pool->parked.push_back(ptr);  // the pool's graphs may still replay into it
  } else {
    free_.emplace(b.size, ptr);
  }
}

void* CachingAllocator::device_malloc(size_t size) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation && !capturing_) {
    cudaGetLastError();  // allocation failures are not sticky: clear and retry with an empty cache
    release_cached_locked();
    e = cudaMalloc(&p, size);
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail(oom_message(size, size));
  }
  FER_CUDA_CHECK(e, "allocate", format_bytes(size));
  ++stats_.device_allocs;
  return p;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  FER_CHECK(!capturing_, "cuda: release_cached during a graph capture");
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  if (free_.empty()) return;
  // Cached blocks may still be read by queued kernels: let the device finish before freeing.
  cudaDeviceSynchronize();
  for (const auto& [size, p] : free_) {
    cudaFree(p);
    blocks_.erase(p);
    stats_.reserved -= size;
    ++stats_.device_releases;
  }
  free_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  AllocatorStats s = stats_;
  size_t general_cached = 0;
  for (const auto& [size, p] : free_) general_cached += size;
  s.graph_held = s.reserved - s.in_use - general_cached;
  return s;
}

std::string CachingAllocator::summary() const {
  const AllocatorStats s = stats();
  const double hit = s.requests ? 100.0 * s.cache_hits / s.requests : 0.0;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.1f%%", hit);
  return "GPU memory: " + format_bytes(s.in_use) + " in use (peak " + format_bytes(s.peak_in_use) +
         "), " + format_bytes(s.reserved - s.in_use - s.graph_held) + " cached, " +
         format_bytes(s.graph_held) + " held for graphs; " + std::to_string(s.device_allocs) +
         " cudaMalloc, " + std::to_string(s.requests) + " requests (" + buf + " from the cache)";
}

std::string CachingAllocator::oom_message(size_t bytes, size_t size) const {
  size_t free_b = 0, total_b = 0;
  const bool known = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
  cudaGetLastError();
  return "cuda: out of GPU memory allocating " + format_bytes(bytes) + " (" +
         std::to_string(bytes) + " bytes): the caching allocator holds " +
         format_bytes(stats_.in_use) + " in use (peak " + format_bytes(stats_.peak_in_use) + ") of " +
         format_bytes(stats_.reserved) + " reserved, after " + std::to_string(stats_.device_allocs) +
         " cudaMalloc calls" +
         (known ? "; the device has " + format_bytes(free_b) + " free of " + format_bytes(total_b)
                : std::string()) +
         ". Use a smaller batch size or model." + (capturing_ ? " (during a graph capture)" : "");
}

// ---- Graph pools -------------------------------------------------------------------------------

std::shared_ptr<GraphPool> CachingAllocator::graph_pool(int id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(id);
  if (it != pools_.end())
    if (auto live = it->second.lock()) return live;
  auto pool = std::make_shared<GraphPool>(this, id);
  pools_[id] = pool;
  return pool;
}

void CachingAllocator::begin_capture(GraphPool* pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  FER_CHECK(!capturing_, "cuda: a graph capture is already active");
  capturing_ = pool;
}

void CachingAllocator::end_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  capturing_ = nullptr;
}

bool CachingAllocator::capturing() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return capturing_ != nullptr;
}

void CachingAllocator::release_pool(GraphPool* pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [ptr, b] : blocks_) {
    if (b.pool != pool) continue;
    b.pool = nullptr;  // live tensors of the pool become ordinary blocks
  }
  for (const auto& [size, p] : pool->free) free_.emplace(size, p);
  for (void* p : pool->parked) {
    auto it = blocks_.find(p);
    if (it == blocks_.end() || it->second.in_use) continue;
    // A block of another, still living pool that was freed during this pool's capture stays
    // reserved for that pool.
    if (it->second.pool) it->second.pool->parked.push_back(p);
    else free_.emplace(it->second.size, p);
  }
  pool->free.clear();
  pool->parked.clear();
  auto it = pools_.find(pool->id);
  if (it != pools_.end() && it->second.expired()) pools_.erase(it);
}

}  // namespace fer::cuda
