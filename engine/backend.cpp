#include "engine/backend.h"

#include <omp.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "engine/error.h"
#include "engine/random.h"

namespace fer {

Backend* make_cpu_backend();  // kernels/cpu/memory.cpp

// The CUDA backend is probed on first use, never at static initialisation, so a CPU-only run of
// a CUDA build never touches the driver. With FER_HAVE_CUDA (set on this file by CMake when the
// build has kernels/cuda) the probe lives in kernels/cuda/context.cpp; otherwise there is none.
#ifdef FER_HAVE_CUDA
Backend* make_cuda_backend(std::string& status);  // nullptr, with the reason in status
#else
static Backend* make_cuda_backend(std::string& status) {
  status = "this build has no CUDA backend (configure with -DFER_CUDA=ON where nvcc and cuDNN are installed)";
  return nullptr;
}
#endif

namespace {
Backend* g_cuda_backend = nullptr;
std::string g_cuda_status;
std::once_flag g_cuda_probe;

void probe_cuda() {
  std::call_once(g_cuda_probe, [] {
    if (!g_cuda_backend) g_cuda_backend = make_cuda_backend(g_cuda_status);
  });
}
}  // namespace

void register_backend(Device device, Backend* b) {
  FER_CHECK(device == Device::CUDA, "only the CUDA backend registers itself");
  probe_cuda();
  g_cuda_backend = b;
  if (b) g_cuda_status = "registered CUDA backend";
}

bool cuda_available() {
  probe_cuda();
  return g_cuda_backend != nullptr;
}

std::string cuda_status() {
  probe_cuda();
  return g_cuda_status;
}

Backend& backend(Device device) {
  if (device == Device::CPU) {
    static Backend* cpu = make_cpu_backend();
    return *cpu;
  }
  probe_cuda();
  FER_CHECK(g_cuda_backend != nullptr, "device 'cuda' requested, but CUDA is unavailable: ",
            g_cuda_status);
  return *g_cuda_backend;
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
