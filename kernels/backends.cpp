// The backends this build has, and which one serves each device: the definitions of backend(),
// cuda_available(), cuda_status() and register_backend() that engine/backend.h declares.
//
// This is the one file that sees both sides of the backend interface. The engine declares the
// interface (engine/backend.h) and calls backend(device) from its ops, but includes no kernel
// header; each kernel library implements the interface and depends on the engine; this file
// makes the backends and hands them out. CMake compiles it as an object library (fer_backends)
// that every program links through fer_core, so engine/ and kernels/ never refer to each other
// upwards: engine <- kernels/cpu, kernels/cuda <- this file.
#include <mutex>
#include <string>

#include "engine/backend.h"
#include "engine/error.h"

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

}  // namespace fer
