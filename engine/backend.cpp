#include "engine/backend.h"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "engine/random.h"

namespace fer {

// backend(), cuda_available(), cuda_status() and register_backend() are defined in
// kernels/backends.cpp, the one file that knows every backend of the build (the engine includes no
// kernel header).

void Backend::set_matmul_precision(const std::string& name) {
  FER_CHECK(name == "fp32", "precision '", name, "': the ", device_name(device()),
            " backend computes matrix products in fp32 only");
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda" || name == "gpu") return Device::CUDA;
  fail("unknown device '", name, "' (expected 'cpu' or 'cuda')");
}

namespace {
int initial_threads() {
  for (const char* var : {"FER_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return omp_get_num_procs();
}
int g_threads = 0;
}  // namespace

int cpu_threads() {
  if (g_threads == 0) set_cpu_threads(initial_threads());
  return g_threads;
}

void set_cpu_threads(int n) {
  FER_CHECK(n > 0, "thread count must be positive, got ", n);
  g_threads = n;
  omp_set_num_threads(n);
}

Generator& default_generator() {
  static Generator gen(0x5EEDull);
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace fer
