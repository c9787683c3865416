// The caching allocator of GPU memory.
//
// cudaMalloc and cudaFree are slow (cudaFree waits for the whole device), and a training step
// allocates and frees the same few dozen activation-sized buffers every step. This allocator
// keeps freed blocks and hands them out again:
//   - a request is rounded up to its size class: a multiple of 512 B up to 1 MiB, of 2 MiB above;
//   - it takes the smallest cached block of at least that size and less than twice it (best fit,
//     bounded waste), else a fresh cudaMalloc;
//   - a freed block goes back to the cache, never to the driver. The backend runs all its work
//     on one stream, so whoever gets the block next is ordered after its last user: no events;
//   - when cudaMalloc fails, the cache is returned to the driver and the request retried once;
//     if it still fails, a fer::Error says "out of GPU memory" with the requested size and the
//     statistics below.
//
// Graph pools (CUDA graph capture, kernels/cuda/graph.cu): while a capture is active, blocks come
// from the capturing pool's own cache and new ones are tagged with the pool, so the addresses a
// graph recorded stay reserved for it. A block freed during a capture becomes reusable within
// that pool (later in the same graph, or in a later graph of the same pool, which replays after
// it); a block allocated outside the pool, or freed outside any capture while the pool lives, is
// parked until the pool dies, since a graph may still read it. When the last graph of a pool is
// destroyed, the pool's blocks return to the general cache.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace fer::cuda {

struct AllocatorStats {
  size_t in_use = 0;        // bytes handed out and not yet freed
  size_t peak_in_use = 0;
  size_t reserved = 0;      // bytes obtained from cudaMalloc and not yet released
  size_t graph_held = 0;    // cached bytes reserved for graph pools (part of reserved - in_use)
  int64_t requests = 0;     // allocate() calls
  int64_t cache_hits = 0;   // requests served from the cache
  int64_t device_allocs = 0;    // cudaMalloc calls
  int64_t device_releases = 0;  // cudaFree calls
};

std::string format_bytes(size_t bytes);  // "18.9 MiB"

class CachingAllocator;

// The memory of the graphs recorded with one pool id (see above).
struct GraphPool {
  GraphPool(CachingAllocator* owner, int id) : owner(owner), id(id) {}
  ~GraphPool();
  GraphPool(const GraphPool&) = delete;
  GraphPool& operator=(const GraphPool&) = delete;

  CachingAllocator* owner;
  int id;
  std::multimap<size_t, void*> free;  // reusable within the pool
  std::vector<void*> parked;          // reserved until the pool dies
};

class CachingAllocator {
 public:
  CachingAllocator() = default;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes);        // throws fer::Error ("out of GPU memory")
  void deallocate(void* ptr) noexcept; // back to the cache; never calls the driver
  // Returns every cached block of the general cache to the driver (waits for the device first).
  void release_cached();

  AllocatorStats stats() const;
  std::string summary() const;  // one line of the statistics

  // ---- Graph capture ---------------------------------------------------------------------------
  std::shared_ptr<GraphPool> graph_pool(int id);  // the live pool of that id, or a new one
  void begin_capture(GraphPool* pool);
  void end_capture();
  bool capturing() const;

 private:
  friend struct GraphPool;
  struct Block {
    size_t size;
    GraphPool* pool;  // the graph pool that owns the block, or null (general)
    bool in_use;
  };
  static void* take(std::multimap<size_t, void*>& cache, size_t size);
  void* device_malloc(size_t size);  // with one retry after release_cached
  void release_cached_locked();
  void release_pool(GraphPool* pool);  // from ~GraphPool
  std::string oom_message(size_t bytes, size_t size) const;

  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::multimap<size_t, void*> free_;
  std::map<int, std::weak_ptr<GraphPool>> pools_;
  GraphPool* capturing_ = nullptr;
  AllocatorStats stats_;
};

}  // namespace fer::cuda
