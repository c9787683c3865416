#include "engine/backend.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "engine/random.h"

namespace fer {

// One form of a layer's weights: aligned floats, made under the form's own lock so that a layer
// filling a large form does not hold up the others.
struct PackedWeights::Form {
  std::once_flag made;
  std::unique_ptr<float, decltype(&std::free)> floats{nullptr, &std::free};
  size_t count = 0;
};

const float* PackedWeights::get(const std::string& key, size_t count,
                                const std::function<void(float*)>& fill) {
  std::shared_ptr<Form> form;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<Form>& slot = forms_[key];
    if (!slot) slot = std::make_shared<Form>();
    form = slot;
  }
  std::call_once(form->made, [&] {
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    form->floats.reset(static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(bytes, 64))));
    FER_CHECK(form->floats, "packed weights '", key, "': cannot allocate ", bytes, " bytes");
    fill(form->floats.get());
    form->count = count;
  });
  FER_CHECK(form->count == count, "packed weights '", key, "': kept with ", form->count,
            " floats, asked for ", count);
  return form->floats.get();
}

void PackedWeights::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  forms_.clear();
}

size_t PackedWeights::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = 0;
  for (const auto& [key, form] : forms_) total += form->count * sizeof(float);
  return total;
}

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
