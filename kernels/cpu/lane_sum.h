// Float sums over contiguous runs of values, in kLaneCount independent partial sums added together
// at the end. One running sum makes every add wait for the one before it (4 cycles each on
// current x86 cores), so a plain `s += x[i]` loop runs at a quarter of an add per cycle and the
// compiler may not reorder it; independent lanes pipeline and vectorise. The lanes' fixed order
// keeps a result independent of the thread count.
#pragma once
#include <cstdint>
#include <utility>

namespace fer::cpu {

constexpr int kLaneCount = 16;

// sum over i in [0, n) of term(i).
template <typename Term>
inline float lane_sum(int64_t n, Term term) {
  float lane[kLaneCount] = {};
  int64_t i = 0;
  for (; i + kLaneCount <= n; i += kLaneCount)
    for (int j = 0; j < kLaneCount; ++j) lane[j] += term(i + j);
  for (; i < n; ++i) lane[i % kLaneCount] += term(i);
  float total = 0.0f;
  for (float v : lane) total += v;
  return total;
}

// Two sums at once over `planes` runs of n values, `stride` apart: term(i) for i = p*stride + j,
// j < n, returns the pair of terms (a std::pair<float, float>), each summed in its own lanes, the
// lanes carried from one run to the next. One pass where two would read the data twice, and one
// call for many short runs (a batchnorm channel's small planes). Runs of up to kShortRun values
// take one lane per position j instead of lane_sum's 16: a 3x3 or 6x6 plane is then a short
// vector loop rather than a scalar tail.
constexpr int64_t kShortRun = 64;
template <typename Terms>
inline std::pair<float, float> lane_sum2(int64_t planes, int64_t n, int64_t stride, Terms terms) {
  const bool short_runs = n <= kShortRun;
  const int64_t lanes = short_runs ? n : kLaneCount;
  float first[kShortRun] = {}, second[kShortRun] = {};
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t base = p * stride;
    if (short_runs) {
      for (int64_t j = 0; j < n; ++j) {
        const auto [u, v] = terms(base + j);
        first[j] += u;
        second[j] += v;
      }
      continue;
    }
    int64_t i = 0;
    for (; i + kLaneCount <= n; i += kLaneCount)
      for (int j = 0; j < kLaneCount; ++j) {
        const auto [u, v] = terms(base + i + j);
        first[j] += u;
        second[j] += v;
      }
    for (; i < n; ++i) {
      const auto [u, v] = terms(base + i);
      first[i % kLaneCount] += u;
      second[i % kLaneCount] += v;
    }
  }
  float total_first = 0.0f, total_second = 0.0f;
  for (int64_t j = 0; j < lanes; ++j) {
    total_first += first[j];
    total_second += second[j];
  }
  return {total_first, total_second};
}

inline float lane_sum(const float* x, int64_t n) {
  return lane_sum(n, [x](int64_t i) { return x[i]; });
}

}  // namespace fer::cpu
