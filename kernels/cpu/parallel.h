// Threading helpers for the CPU kernels (OpenMP underneath; the count is fer::cpu_threads()).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/backend.h"

namespace fer::cpu {

// x rounded up to a multiple of m (x >= 0, m > 0): panel, tile and block sizes.
constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Calls body(begin, end) on contiguous chunks of [0, n) in parallel. Chunks hold at least `grain`
// items, so small loops stay on one thread instead of paying for a fork.
template <typename Body>
void parallel_for(int64_t n, int64_t grain, Body body) {
  const int64_t threads = std::min<int64_t>(cpu_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (threads <= 1 || omp_in_parallel()) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) body(begin, end);
  }
}

// Work items that split: calls body(item, begin, end) for every item in [0, items) and every part
// [begin, end) of [0, extent) that it is cut into, the pieces in parallel. Each item is cut into
// as few equal parts as make at least `pieces` pieces in all (at most `extent` parts), so that a
// few large items still keep every thread busy: the Winograd convolution's blocks of tiles, cut
// along their channels or their panels of output channels when there are fewer blocks than twice
// the threads.
template <typename Body>
void parallel_for_parts(int64_t items, int64_t extent, int64_t pieces, Body body) {
  if (items <= 0 || extent <= 0) return;
  const int64_t parts = std::clamp<int64_t>((pieces + items - 1) / items, 1, extent);
  parallel_for(items * parts, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t part = i % parts, begin = extent * part / parts, end = extent * (part + 1) / parts;
      if (begin < end) body(i / parts, begin, end);
    }
  });
}

// A 64-byte aligned scratch buffer per thread and slot, grown on demand and kept (so that vector
// loads of packed panels never straddle two cache lines). Slots: 0-2 the GEMM driver (gemm.cpp)
// and the AMX convolution (conv2d_amx.cpp), which never runs a GEMM; 3-6 and 9 the Winograd
// convolution (conv2d_winograd.cpp); 7-8 the GEMM driver's bf16 pair panels. Defined in memory.cpp.
constexpr int kAlignedScratchSlots = 10;
float* aligned_thread_scratch(size_t floats, int slot);

// A per-thread scratch buffer that grows as needed and is reused across calls (im2col columns).
inline float* thread_scratch(size_t floats, int slot = 0) {
  thread_local std::vector<float> buffers[2];
  auto& b = buffers[slot];
  if (b.size() < floats) b.resize(floats);
  return b.data();
}

}  // namespace fer::cpu
