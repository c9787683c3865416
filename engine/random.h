// Random numbers.
//
// Generator: a seeded stream for initialisation, shuffling and augmentation (SplitMix64 state,
// Box-Muller normals), identical on every platform so a seed reproduces a run.
//
// counter_uniform: a stateless, counter-based uniform in [0, 1): the value at position `index`
// of stream `seed` is a hash of (seed, index). Kernels on any backend compute the same mask for
// the same (seed, index) in any order and any thread layout, which is what dropout needs for
// reproducibility and for CPU-vs-GPU parity.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/host_device.h"

namespace fer {

FER_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

FER_HOST_DEVICE inline float counter_uniform(uint64_t seed, uint64_t index) {
  const uint64_t bits = splitmix64(splitmix64(seed) ^ index);
  return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // top 24 bits -> [0, 1)
}

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5EEDull) : state_(seed) {}
  void seed(uint64_t s) { state_ = s; }
  uint64_t state() const { return state_; }

  uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 bits of precision.
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float low, float high) { return low + (high - low) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next_u64() % n; }
  float normal() {
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
    const float u1 = 1.0f - uniform(), u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.283185307179586f * u2);
  }

 private:
  uint64_t state_;
};

// The process-wide generator used when no other is given (layer init, dropout seeds).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace fer
