// Backend: the seam between the op API (engine/ops) and the kernels that do the math.
//
// Each device has one Backend object; ops look it up with backend(tensor.device()) and call the
// kernel they need with raw pointers on that device and plain shape descriptors. The CPU backend
// (kernels/cpu) implements every kernel with its own packed GEMM and OpenMP; the CUDA backend (kernels/cuda)
// implements the same interface with cuDNN, cuBLAS and its own kernels. Nothing above this file
// knows which backend runs; nothing below it knows about autograd.
//
// Conventions: images are NCHW, float32, contiguous. Sizes are int64_t. "dx" is the gradient of
// the loss w.r.t. x. Backward kernels that produce parameter gradients *accumulate* (+=) only
// where the comment says so; otherwise outputs are overwritten.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/device.h"

namespace fer {

// Shape of a 2-d convolution. Output size: OH = (H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h + 1.
struct Conv2dGeometry {
  int64_t N, C, H, W;    // input
  int64_t K, KH, KW;     // output channels, kernel size
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t groups;
  int64_t OH, OW;        // output spatial size
};

// Shape of a 2-d pooling window (max or average); average pooling counts padded zeros
// (PyTorch's count_include_pad=True), max pooling ignores them.
struct Pool2dGeometry {
  int64_t N, C, H, W;
  int64_t KH, KW, stride_h, stride_w, pad_h, pad_w;
  int64_t OH, OW;
};

enum class Activation { ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh };

struct AdamHyper {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW: decay the weights directly instead of adding wd*param to the gradient
  int64_t step;    // 1-based, for bias correction
};

struct SgdHyper {
  float lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // momentum buffer starts as the gradient (as in PyTorch)
};

// A recorded sequence of device work that runs again without the host (a CUDA graph); made by
// Backend::capture. Tensors allocated while recording keep their storage, and every replay
// rewrites them in place.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  // Runs the recorded work again (asynchronously, in order with the device's other work).
  // `seed` feeds the random kernels recorded in it (dropout masks): a new seed per replay gives
  // fresh masks, the same seed the same masks.
  virtual void replay(uint64_t seed) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- Memory --------------------------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // same device
  // rows x cols block copy between two row-major matrices with their own row strides (elements).
  virtual void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                       int64_t rows, int64_t cols, bool accumulate) = 0;
  virtual void synchronize() {}

  // ---- Elementwise ---------------------------------------------------------------------------
  virtual void fill(float* y, int64_t n, float value) = 0;
  virtual void add(const float* a, const float* b, float* y, int64_t n) = 0;         // y = a + b
  virtual void mul(const float* a, const float* b, float* y, int64_t n) = 0;         // y = a * b
  virtual void axpby(float alpha, const float* x, float beta, float* y, int64_t n) = 0;  // y = a*x + b*y
  virtual void scale(const float* x, float alpha, float* y, int64_t n) = 0;          // y = alpha * x
  virtual double sum(const float* x, int64_t n) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;

  // ---- Activations ---------------------------------------------------------------------------
  virtual void activation_forward(Activation act, float alpha, const float* x, float* y,
                                  int64_t n) = 0;
  // dx from x, y = f(x) and dy (each activation uses whichever is cheaper).
  virtual void activation_backward(Activation act, float alpha, const float* x, const float* y,
                                   const float* dy, float* dx, int64_t n) = 0;

  // ---- Dense ---------------------------------------------------------------------------------
  // C[M,N] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is [M,K], op(B) is [K,N].
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, const float* B, float beta, float* C) = 0;
  virtual void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) = 0;
  virtual void sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols,
                        bool accumulate) = 0;  // dbias[c] (+)= sum_r dy[r,c]

  // ---- Convolution ---------------------------------------------------------------------------
  virtual void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias /*nullable*/, float* y) = 0;
  virtual void conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                     float* dx) = 0;
  // dw (and dbias when non-null) are overwritten.
  virtual void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                      float* dw, float* dbias /*nullable*/) = 0;

  // ---- Pooling -------------------------------------------------------------------------------
  virtual void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y,
                                  int32_t* argmax) = 0;
  virtual void max_pool2d_backward(const Pool2dGeometry& g, const float* dy, const int32_t* argmax,
                                   float* dx) = 0;
  virtual void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) = 0;
  virtual void avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) = 0;

  // ---- Batch normalisation (per channel of NCHW; HW = H*W) -----------------------------------
  // Training: normalise with the batch statistics, save mean and 1/sqrt(var+eps) for backward,
  // and update running_mean/var with momentum (running_var gets the unbiased variance).
  virtual void batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                       const float* gamma, const float* beta, float eps,
                                       float momentum, float* running_mean, float* running_var,
                                       float* y, float* save_mean, float* save_invstd) = 0;
  virtual void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                      const float* gamma, const float* beta,
                                      const float* running_mean, const float* running_var,
                                      float eps, float* y) = 0;
  // dx (when non-null) is overwritten; dgamma/dbeta (when non-null) are overwritten.
  virtual void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                  const float* dy, const float* gamma, const float* save_mean,
                                  const float* save_invstd, float* dx, float* dgamma,
                                  float* dbeta) = 0;

  // ---- Softmax family (over the last dimension of a rows x cols matrix) ----------------------
  virtual void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) = 0;
  virtual void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                                int64_t cols, bool log) = 0;
  // Weighted, label-smoothed negative log-likelihood over log-probabilities logp[rows, cols]
  // with class ids in `target` (as floats). Returns the mean loss (divided by sum of w[target]);
  // weights may be null (all ones). dlogp receives d(loss)/d(logp) scaled by grad_scale.
  virtual float nll_loss_forward(const float* logp, const float* target, const float* weight,
                                 int64_t rows, int64_t cols, float smoothing) = 0;
  virtual void nll_loss_backward(const float* target, const float* weight, int64_t rows,
                                 int64_t cols, float smoothing, float grad_scale, float* dlogp) = 0;

  // ---- Dropout -------------------------------------------------------------------------------
  // mask[i] = (u(seed, offset + i) >= p) / (1 - p), with u a counter-based uniform in [0, 1) that
  // both backends compute identically, so a seed gives the same mask on CPU and GPU.
  virtual void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) = 0;

  // ---- Geometry ------------------------------------------------------------------------------
  // Bilinear resize of NCHW planes (PyTorch's align_corners=False convention).
  virtual void resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                       const float* x, float* y) = 0;
  virtual void resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                        const float* dy, float* dx) = 0;
  // Zero padding of NCHW planes: top/bottom/left/right >= 0.
  virtual void pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                             int64_t left, int64_t right, const float* x, float* y) = 0;
  virtual void pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                              int64_t left, int64_t right, const float* dy, float* dx) = 0;

  // ---- Optimizer updates (fused, in place) ---------------------------------------------------
  virtual void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n,
                          const SgdHyper& h) = 0;
  virtual void adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                           const AdamHyper& h) = 0;

  // ---- Device controls (the CPU backend has nothing to control: defaults) --------------------
  // TF32 tensor-core math for float32 GEMMs and convolutions (CUDA, Ampere and newer): several
  // times the throughput with 10-bit mantissas in the products. Off by default, for CPU parity.
  virtual void set_allow_tf32(bool allow) {}
  virtual bool allow_tf32() const { return false; }
  // One line on the memory this backend holds (the CUDA caching allocator's statistics).
  virtual std::string memory_summary() const { return {}; }
  // Records the device work that body() launches into a graph for DeviceGraph::replay (CUDA
  // graphs); nullptr when this backend cannot (the CPU). Memory allocated inside body comes from
  // a pool private to `pool`: graphs recorded with one pool id may hand tensors to each other (a
  // forward graph's saved activations to a backward graph) and must replay in recording order;
  // that memory stays reserved while any of them lives. Inside body nothing may wait for the
  // device or read host memory at replay time (copy_to_host, copy_from_host, sum, item(),
  // nll_loss_forward): those throw a fer::Error naming the op, and the recording is abandoned.
  virtual std::unique_ptr<DeviceGraph> capture(const std::function<void()>& body, int pool = 0) {
    return nullptr;
  }
};

// The backend of a device. CUDA throws a clear error when the build or the machine has no GPU.
Backend& backend(Device device);
// True when the CUDA backend is usable. The first call probes the GPU (kernels/cuda, when the
// build has it): no driver, no device or no kernels for this GPU leave CUDA unavailable, and
// cuda_status() says why in one line; otherwise it names the GPU and the libraries.
bool cuda_available();
std::string cuda_status();
// Registration hook for backends compiled in separately; it replaces the probed CUDA backend.
void register_backend(Device device, Backend* backend);

// Threads used by the CPU kernels: FER_THREADS, else OMP_NUM_THREADS, else all cores.
int cpu_threads();
void set_cpu_threads(int n);

}  // namespace fer
