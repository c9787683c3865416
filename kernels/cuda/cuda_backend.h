// The CUDA backend: every kernel of engine/backend.h on one NVIDIA GPU. Convolutions go through
// cuDNN (conv2d.cu), GEMMs through cuBLAS (dense.cu), everything else through the backend's own
// kernels, one family per file as in kernels/cpu: elementwise.cu, pool2d.cu, batchnorm.cu,
// softmax_loss.cu, geometry.cu (dropout, resize, padding), optim.cu, memory.cu (copies and the
// pinned upload path). allocator.{h,cpp} is the caching allocator, graph.cu records CUDA graphs,
// context.cpp probes the GPU and creates the backend.
//
// Execution model: all work runs in order on one CUDA stream, asynchronously to the host. The
// calls that hand a value to the host (copy_to_host, sum, sum_squares, nll_loss_forward) wait for
// the stream; copy_from_host returns as soon as the host data sits in a pinned staging buffer, so
// the host prepares the next batch while the GPU still works on this one. Callers see the same
// semantics as on the CPU: every call behaves as if it had completed when it returns.
//
// Numerics: results match the CPU backend to float rounding (tests/test_cuda_parity.cpp states the
// tolerances). Reductions accumulate in double, in a fixed order, so a run is reproducible.
// cuDNN may pick non-deterministic algorithms for the convolution gradients: FER_CUDNN_DETERMINISTIC=1
// restricts it to deterministic ones. TF32 is off unless set_allow_tf32(true) or FER_CUDA_TF32=1.
//
// Environment: FER_CUDA_DEVICE=N (which GPU, default 0), FER_CUDA_SYNC=1 (wait after every op:
// errors name the op that faulted), FER_CUDA_TF32=1, FER_CUDNN_DETERMINISTIC=1,
// FER_CUDNN_BENCHMARK=0 (pick convolution algorithms by cuDNN's heuristics instead of timing them).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/backend.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"

namespace fer::cuda {

struct ConvPlan;  // conv2d.cu: cuDNN descriptors and the chosen algorithms of one geometry

// The state of an active graph capture (graph.cu).
struct CaptureState {
  std::shared_ptr<GraphPool> pool;
  uint64_t* replay_seed = nullptr;  // device word the recorded random kernels read
};

// A device buffer from the caching allocator, returned to it when the scope ends. Kernels queued
// on the backend's stream before the return still see valid memory: the next user of the block
// is queued after them.
class ScratchBuffer {
 public:
  ScratchBuffer(CachingAllocator& a, size_t bytes) : a_(a), p_(bytes ? a.allocate(bytes) : nullptr) {}
  ~ScratchBuffer() { a_.deallocate(p_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  void* get() const { return p_; }

 private:
  CachingAllocator& a_;
  void* p_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols, bool accumulate) override;
  void synchronize() override;

  void fill(float* y, int64_t n, float value) override;
  void add(const float* a, const float* b, float* y, int64_t n) override;
  void mul(const float* a, const float* b, float* y, int64_t n) override;
  void axpby(float alpha, const float* x, float beta, float* y, int64_t n) override;
  void scale(const float* x, float alpha, float* y, int64_t n) override;
  double sum(const float* x, int64_t n) override;
  double sum_squares(const float* x, int64_t n) override;

  void activation_forward(Activation act, float alpha, const float* x, float* y,
                          int64_t n) override;
  void activation_backward(Activation act, float alpha, const float* x, const float* y,
                           const float* dy, float* dx, int64_t n) override;

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, const float* B, float beta, float* C) override;
  void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) override;
  void sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols,
                bool accumulate) override;

  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, PackedWeights* packed, BnActivation act) override;
  void conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                             float* dx) override;
  void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* dbias) override;

  void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y,
                          int32_t* argmax) override;
  void max_pool2d_backward(const Pool2dGeometry& g, const float* dy, const int32_t* argmax,
                           float* dx) override;
  void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override;
  void avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override;

  void batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                               const float* gamma, const float* beta, float eps, float momentum,
                               float* running_mean, float* running_var, float* y,
                               float* save_mean, float* save_invstd, BnActivation act) override;
  void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, const float* running_mean,
                              const float* running_var, float eps, float* y, BnActivation act) override;
  void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy,
                          const float* gamma, const float* beta, const float* save_mean,
                          const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                          BnActivation act) override;
  void batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* dx, float* dgamma,
                               float* dbeta, BnActivation act) override;

  void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) override;
  void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols,
                        bool log) override;
  float nll_loss_forward(const float* logp, const float* target, const float* weight, int64_t rows,
                         int64_t cols, float smoothing) override;
  void nll_loss_backward(const float* target, const float* weight, int64_t rows, int64_t cols,
                         float smoothing, float grad_scale, float* dlogp) override;

  void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) override;

  void resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               const float* x, float* y) override;
  void resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                const float* dy, float* dx) override;
  void pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom, int64_t left,
                     int64_t right, const float* x, float* y) override;
  void pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom, int64_t left,
                      int64_t right, const float* dy, float* dx) override;

  void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n,
                  const SgdHyper& h) override;
  void adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                   const AdamHyper& h) override;

  void set_allow_tf32(bool allow) override;
  bool allow_tf32() const override { return tf32_; }
  std::string memory_summary() const override { return allocator_.summary(); }
  std::unique_ptr<DeviceGraph> capture(const std::function<void()>& body, int pool) override;

  // ---- Shared by the kernel files ------------------------------------------------------------
  // "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB, 132 SMs); CUDA runtime 13.0, driver 13.0; cuDNN 9.19.0"
  std::string describe() const;
  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator() { return allocator_; }
  const CaptureState* capture_state() const { return capture_.get(); }
  // Throws a fer::Error naming `op` when a graph is being recorded: the op needs the host.
  void require_not_capturing(const char* op) const;
  // After a kernel launch: checks the launch, and with FER_CUDA_SYNC=1 waits for the kernel, so
  // that a fault is reported with this op's name. `detail()` formats the shapes for the message.
  template <typename DetailFn>
  void launched(const char* op, DetailFn&& detail) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
      raise_error(op, "kernel launch", cudaGetErrorName(e), cudaGetErrorString(e), detail());
    if (sync_each_op_ && !capture_) {
      const cudaError_t s = cudaStreamSynchronize(stream_);
      if (s != cudaSuccess)
        raise_error(op, "kernel (FER_CUDA_SYNC)", cudaGetErrorName(s), cudaGetErrorString(s),
                    detail());
    }
  }
  // After a cuBLAS or cuDNN call (whose status was checked): clears any error the library left in
  // the runtime's last-error slot (libraries may probe features and handle the failure), so that
  // the next kernel launch check does not blame the wrong op; waits with FER_CUDA_SYNC=1.
  template <typename DetailFn>
  void library_done(const char* op, DetailFn&& detail) {
    cudaGetLastError();
    if (sync_each_op_ && !capture_) {
      const cudaError_t s = cudaStreamSynchronize(stream_);
      if (s != cudaSuccess)
        raise_error(op, "library kernel (FER_CUDA_SYNC)", cudaGetErrorName(s), cudaGetErrorString(s),
                    detail());
    }
  }
  // Waits for the stream; `op` names the caller in the error (which may come from an earlier
  // kernel: then FER_CUDA_SYNC=1 finds the culprit).
  void wait(const char* op);
  // Copies one value produced on the device to the host (waits for the stream).
  template <typename T>
  T fetch(const T* device_value, const char* op) {
    require_not_capturing(op);
    T host{};
    FER_CUDA_CHECK(cudaMemcpyAsync(&host, device_value, sizeof(T), cudaMemcpyDeviceToHost, stream_),
                   op, "reading the result back");
    wait(op);
    return host;
  }
  cublasHandle_t cublas() const { return cublas_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  bool cudnn_deterministic() const { return cudnn_deterministic_; }
  bool cudnn_benchmark() const { return cudnn_benchmark_; }
  ConvPlan& conv_plan(const Conv2dGeometry& g);  // conv2d.cu

 private:
  static constexpr int kStagingBuffers = 4;
  static constexpr size_t kStagingBytes = size_t(4) << 20;
  struct Staging {
    void* host = nullptr;       // pinned
    cudaEvent_t done = nullptr; // recorded after the upload that last read it
  };

  int device_;
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  void* cublas_workspace_ = nullptr;
  CachingAllocator allocator_;
  std::array<Staging, kStagingBuffers> staging_{};
  int next_staging_ = 0;
  std::mutex staging_mutex_;
  bool tf32_ = false;
  bool sync_each_op_ = false;
  bool cudnn_deterministic_ = false;
  bool cudnn_benchmark_ = true;
  std::map<std::array<int64_t, 15>, std::unique_ptr<ConvPlan>> conv_plans_;
  std::unique_ptr<CaptureState> capture_;
};

// Kernels whose presence in the binary proves that it carries code for this GPU (memory.cu).
cudaError_t check_kernel_image();

}  // namespace fer::cuda
