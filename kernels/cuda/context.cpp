// The CUDA backend's lifetime: probing the GPU (make_cuda_backend, called by engine/backend.cpp on
// the first CUDA request), creating the stream, the cuBLAS and cuDNN handles and the pinned
// staging buffers, and the error messages of kernels/cuda/check.h.
//
// A machine without a driver or a GPU, a GPU this binary has no code for, or libraries that fail
// to load leave CUDA unavailable: make_cuda_backend returns nullptr and one line saying why, which
// cuda_status() hands to the apps for their "using the CPU" message. It never throws.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cuda/conv_plan.h"
#include "kernels/cuda/cuda_backend.h"

#ifndef FER_CUDA_ARCHITECTURES
#define FER_CUDA_ARCHITECTURES "unknown"
#endif

namespace fer {

Backend* make_cuda_backend(std::string& status) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    status = std::string("no usable CUDA GPU: cudaGetDeviceCount: ") + cudaGetErrorName(e) + ", " +
             cudaGetErrorString(e);
    if (e == cudaErrorInsufficientDriver)
      status += " (no NVIDIA driver is loaded, or it is older than this CUDA runtime)";
    return nullptr;
  }
  if (count == 0) {
    status = "no CUDA GPU on this machine";
    return nullptr;
  }
  int index = 0;
  if (const char* v = std::getenv("FER_CUDA_DEVICE")) {
    char* end = nullptr;
    const long parsed = std::strtol(v, &end, 10);
    if (!*v || *end || parsed < 0 || parsed >= count) {
      status = std::string("FER_CUDA_DEVICE='") + v + "' is not a GPU index of this machine (it has " +
               std::to_string(count) + ")";
      return nullptr;
    }
    index = static_cast<int>(parsed);
  }
  try {
    auto* b = new cuda::CudaBackend(index);  // lives as long as the process (tensors may outlive main)
    status = b->describe();
    return b;
  } catch (const std::exception& ex) {
    status = std::string("the GPU could not be initialised: ") + ex.what();
    return nullptr;
  }
}

}  // namespace fer

namespace fer::cuda {

namespace {
constexpr size_t kCublasWorkspace = size_t(32) << 20;  // cuBLAS's recommendation for Hopper

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strcmp(v, "0") != 0 && std::strcmp(v, "false") != 0 && std::strcmp(v, "off") != 0;
}

// Errors after which the CUDA context is unusable; they often come from an earlier kernel.
bool is_sticky(const char* name) {
  for (const char* s : {"cudaErrorIllegalAddress", "cudaErrorLaunchFailure", "cudaErrorMisalignedAddress",
                        "cudaErrorIllegalInstruction", "cudaErrorAssert", "cudaErrorLaunchTimeout",
                        "cudaErrorHardwareStackError", "cudaErrorInvalidPc"})
    if (std::strcmp(name, s) == 0) return true;
  return false;
}
}  // namespace

void raise_error(const char* op, const char* call, const char* error_name, const char* error_text,
                 const std::string& detail) {
  std::string c = call;
  const size_t paren = c.find('(');
  if (paren != std::string::npos) c = c.substr(0, paren) + "(...)";
  std::string msg = std::string("cuda ") + op + ": " + c + " failed: " + error_name;
  if (error_text && *error_text && std::strcmp(error_text, error_name) != 0)
    msg += std::string(" (") + error_text + ")";
  if (!detail.empty()) msg += " [" + detail + "]";
  if (is_sticky(error_name))
    msg += "; the GPU context is now unusable. Kernels run asynchronously, so the faulting kernel "
           "may be an earlier one: rerun with FER_CUDA_SYNC=1 to have the error name it";
  throw Error(msg);
}

std::string cudnn_last_error() {
  char buf[1024] = {0};
  cudnnGetLastErrorString(buf, sizeof buf);
  return buf[0] ? std::string(buf) : std::string("cuDNN");
}

std::string conv_str(const Conv2dGeometry& g) {
  return detail_str("x [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "], w [", g.K, ", ", g.C / g.groups,
                    ", ", g.KH, ", ", g.KW, "] -> y [", g.N, ", ", g.K, ", ", g.OH, ", ", g.OW,
                    "], stride ", g.stride_h, "x", g.stride_w, ", pad ", g.pad_h, "x", g.pad_w,
                    ", dilation ", g.dil_h, "x", g.dil_w, ", groups ", g.groups);
}

std::string pool_str(const Pool2dGeometry& g) {
  return detail_str("x [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "] -> [", g.N, ", ", g.C, ", ",
                    g.OH, ", ", g.OW, "], window ", g.KH, "x", g.KW, ", stride ", g.stride_h, "x",
                    g.stride_w, ", pad ", g.pad_h, "x", g.pad_w);
}

CudaBackend::CudaBackend(int device_index) : device_(device_index) {
  FER_CUDA_CHECK(cudaSetDevice(device_), "init", "device ", device_);
  FER_CUDA_CHECK(cudaGetDeviceProperties(&props_, device_), "init", "device ", device_);
  const cudaError_t image = check_kernel_image();
  if (image != cudaSuccess) {
    cudaGetLastError();
    fail("cuda init: this binary has GPU code for CUDA architectures ", FER_CUDA_ARCHITECTURES,
         " only, and ", props_.name, " is sm_", props_.major, props_.minor, " (", cudaGetErrorName(image),
         "); rebuild with -DCMAKE_CUDA_ARCHITECTURES=", props_.major, props_.minor);
  }
  FER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "init");
  FER_CUBLAS_CHECK(cublasCreate(&cublas_), "init");
  FER_CUBLAS_CHECK(cublasSetStream(cublas_, stream_), "init");
  // An explicit workspace keeps cuBLAS from allocating on its own, which graph capture forbids.
  FER_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspace), "init", "cuBLAS workspace");
  FER_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace), "init");
  FER_CUDNN_CHECK(cudnnCreate(&cudnn_), "init");
  FER_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_), "init");
  for (Staging& s : staging_) {
    FER_CUDA_CHECK(cudaHostAlloc(&s.host, kStagingBytes, cudaHostAllocDefault), "init",
                   "pinned staging buffer of ", format_bytes(kStagingBytes));
    FER_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "init");
  }
  sync_each_op_ = env_flag("FER_CUDA_SYNC", false);
  cudnn_deterministic_ = env_flag("FER_CUDNN_DETERMINISTIC", false);
  cudnn_benchmark_ = env_flag("FER_CUDNN_BENCHMARK", true);
  set_allow_tf32(env_flag("FER_CUDA_TF32", false));

  // A kernel and a round trip: proves the context works before CUDA is reported available.
  float* probe = static_cast<float*>(allocate(sizeof(float)));
  fill(probe, 1, 1.5f);
  const float back = fetch(probe, "init");
  deallocate(probe, sizeof(float));
  FER_CHECK(back == 1.5f, "cuda init: a test kernel wrote ", back, " instead of 1.5");
}

CudaBackend::~CudaBackend() {
  // Best effort, errors ignored: make_cuda_backend never destroys its backend (tensors in static
  // storage may be freed after main), so this runs only for backends created by hand.
  if (stream_) cudaStreamSynchronize(stream_);
  conv_plans_.clear();
  for (Staging& s : staging_) {
    if (s.done) cudaEventDestroy(s.done);
    if (s.host) cudaFreeHost(s.host);
  }
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string CudaBackend::describe() const {
  int runtime = 0, driver = 0, cublas_version = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  cublasGetVersion(cublas_, &cublas_version);
  const size_t cudnn_version = cudnnGetVersion();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s (sm_%d%d, %s, %d SMs); CUDA runtime %d.%d, driver %d.%d; cuBLAS %d.%d.%d; "
                "cuDNN %zu.%zu.%zu; TF32 %s",
                props_.name, props_.major, props_.minor, format_bytes(props_.totalGlobalMem).c_str(),
                props_.multiProcessorCount, runtime / 1000, (runtime % 1000) / 10, driver / 1000,
                (driver % 1000) / 10, cublas_version / 10000, (cublas_version % 10000) / 100,
                cublas_version % 100, cudnn_version / 10000, (cudnn_version % 10000) / 100,
                cudnn_version % 100, tf32_ ? "on" : "off");
  return buf;
}

void CudaBackend::set_allow_tf32(bool allow) {
  FER_CUBLAS_CHECK(cublasSetMathMode(cublas_, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                   "set_allow_tf32");
  tf32_ = allow;  // convolutions: plans are keyed by the mode (conv2d.cu)
}

void CudaBackend::require_not_capturing(const char* op) const {
  if (capture_)
    fail("cuda ", op, ": not allowed while a CUDA graph is being recorded (it waits for the device "
         "or reads host memory that a replay would not see); do it outside the captured function");
}

void CudaBackend::wait(const char* op) {
  FER_CUDA_CHECK(cudaStreamSynchronize(stream_), op,
                 "waiting for the GPU; the error may come from an earlier kernel (FER_CUDA_SYNC=1 names it)");
}

}  // namespace fer::cuda
