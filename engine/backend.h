// Backend: the seam between the op API (engine/ops) and the kernels that do the math.
//
// Each device has one Backend object; ops look it up with backend(tensor.device()) and call the
// kernel they need with raw pointers on that device and plain shape descriptors. The CPU backend
// (kernels/cpu) implements every kernel with its own packed GEMM and OpenMP; the CUDA backend
// (kernels/cuda) implements the same interface with cuDNN, cuBLAS and its own kernels. Nothing
// above this file knows which backend runs; nothing below it knows about autograd.
//
// This file is the specification both backends implement, in the manner of dlib's *_abstract.h:
// each kernel says what it computes, from which arguments, and what it writes. Where a kernel is
// one half of an op, the formula is written once, above that op's forward/backward pair in
// engine/ops/<family>.cpp, and the kernel's comment here names it; the kernel files themselves
// keep only how they compute it (blocking, threads, memory layouts). tests/test_op_cases.cpp
// fails when a kernel declared here is reached by no op case (tests/support/op_cases.h).
//
// Conventions: images are NCHW, float32, contiguous. Sizes are int64_t. "dx" is the gradient of
// the loss w.r.t. x. Outputs are overwritten, never read, unless the comment says the kernel
// accumulates (+=). A nullable output pointer means "not wanted": the kernel skips that work.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/activation.h"
#include "engine/device.h"

namespace fer {

// Shape of a 2-d convolution (the math: conv2d in engine/ops/conv_pool.cpp). Output size:
// OH = (H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h + 1, likewise OW.
struct Conv2dGeometry {
  int64_t N, C, H, W;    // input
  int64_t K, KH, KW;     // output channels, kernel size
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t groups;
  int64_t OH, OW;        // output spatial size
};

// Shape of a 2-d pooling window, max or average (the math, padding and ceil_mode included:
// max_pool2d and avg_pool2d in engine/ops/conv_pool.cpp).
struct Pool2dGeometry {
  int64_t N, C, H, W;
  int64_t KH, KW, stride_h, stride_w, pad_h, pad_w;
  int64_t OH, OW;
};

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

// A frozen layer's weights in the forms a backend rearranged them into, made once and kept (what
// oneDNN and PyTorch's frozen TorchScript call prepacked weights): the Winograd transforms of a
// 3x3 convolution's kernels, say, which the plain call recomputes every time. Owned by the layer
// (Conv2d::freeze in layers/layers.h), filled by the backend at the first call that needs a form,
// valid while the weights stay as they were: the layer drops the forms when its weights are
// loaded again.
class PackedWeights {
 public:
  // The `count` floats kept under `key` (64-byte aligned); fill(floats) makes them at the first
  // call with that key. Calls from several threads are safe: one fills, the others wait.
  const float* get(const std::string& key, size_t count, const std::function<void(float*)>& fill);
  void clear();
  size_t bytes() const;  // what the forms kept so far take

 private:
  struct Form;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Form>> forms_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- Memory -----------------------------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // same device
  // rows x cols block copy between two row-major matrices with their own row strides (elements);
  // accumulate: dst += src instead of dst = src.
  virtual void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                       int64_t rows, int64_t cols, bool accumulate) = 0;
  virtual void synchronize() {}

  // ---- Elementwise (n elements) -----------------------------------------------------------------
  virtual void fill(float* y, int64_t n, float value) = 0;
  virtual void add(const float* a, const float* b, float* y, int64_t n) = 0;         // y = a + b
  virtual void mul(const float* a, const float* b, float* y, int64_t n) = 0;         // y = a * b
  virtual void axpby(float alpha, const float* x, float beta, float* y, int64_t n) = 0;  // y = a*x + b*y
  virtual void scale(const float* x, float alpha, float* y, int64_t n) = 0;          // y = alpha * x
  // sum_i x[i] and sum_i x[i]^2, accumulated in double, returned to the host (a CUDA backend
  // waits for the device).
  virtual double sum(const float* x, int64_t n) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;

  // ---- Activations (the functions f and f': activation in engine/ops/elementwise.cpp) -----------
  // y = f(x) elementwise; alpha is LeakyReLU's negative slope (unused by the others). y may be x
  // (in place: a frozen convolution's fused activation).
  virtual void activation_forward(Activation act, float alpha, const float* x, float* y,
                                  int64_t n) = 0;
  // dx = f'(x) dy, from x, y = f(x) and dy (each activation reads whichever is cheaper).
  virtual void activation_backward(Activation act, float alpha, const float* x, const float* y,
                                   const float* dy, float* dx, int64_t n) = 0;

  // ---- Dense (the math: matmul and linear in engine/ops/dense.cpp) ------------------------------
  // C[M,N] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is [M,K], op(B) is [K,N], op(X)
  // is X or X^T. With beta == 0, C is not read (it may hold garbage).
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, const float* B, float beta, float* C) = 0;
  // y[r,c] += bias[c] over a rows x cols matrix; dbias[c] = (or += with accumulate) sum_r dy[r,c].
  virtual void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) = 0;
  virtual void sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols,
                        bool accumulate) = 0;

  // ---- Convolution (the math: conv2d in engine/ops/conv_pool.cpp) -------------------------------
  // x [N, C, H, W], w [K, C/groups, KH, KW], bias [K], y and dy [N, K, OH, OW].
  // y = act(conv(x, w) + bias), act none, ReLU or ReLU6 (a frozen model's folded batchnorm and
  // activation: the CPU kernels apply both in their output stores). packed: the forms of w the
  // backend may keep between calls (w then never changes: a frozen layer's), or null.
  virtual void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias /*nullable*/, float* y,
                              PackedWeights* packed /*nullable*/, BnActivation act) = 0;
  // dx = the adjoint of the forward convolution applied to dy.
  virtual void conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                     float* dx) = 0;
  // dw = the correlation of x with dy summed over the batch, and (when non-null) dbias[k] = the
  // sum of dy[n, k, oh, ow] over n, oh, ow.
  virtual void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                      float* dw, float* dbias /*nullable*/) = 0;

  // ---- Pooling (the math: max_pool2d, avg_pool2d in engine/ops/conv_pool.cpp) -------------------
  // x and dx [N, C, H, W]; y, dy and argmax [N, C, OH, OW].
  // argmax[n, c, oh, ow] = ih*W + iw, the position within its plane of the maximum y took.
  virtual void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y,
                                  int32_t* argmax) = 0;
  // dx[n, c, i] = sum of dy[n, c, o] over the outputs o whose argmax is i (zero elsewhere).
  virtual void max_pool2d_backward(const Pool2dGeometry& g, const float* dy, const int32_t* argmax,
                                   float* dx) = 0;
  // y = the mean of each window, divided as avg_pool2d says; dx spreads each dy over its window.
  virtual void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) = 0;
  virtual void avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) = 0;

  // ---- Batch normalisation (the math: batch_norm in engine/ops/norm.cpp) ------------------------
  // x, y, dy, dx [N, C, HW] (HW = H*W; 1 for [N, C] input); gamma, beta, the running statistics,
  // save_mean, save_invstd and the parameter gradients [C].
  //
  // act: the op is relu(batch_norm(x)) or relu6(batch_norm(x)) in one pass (batch_norm_relu,
  // batch_norm_relu6): the forward writes max(z, 0), or min(max(z, 0), 6), for the normalised z,
  // and each backward first zeroes dy where z <= 0 (or z >= 6: the gradients of relu and relu6),
  // recomputing z from x bit for bit as its forward computed it (so it needs beta), instead of
  // reading y.
  //
  // Training: y from the batch statistics of each channel; save_mean = mean and save_invstd =
  // 1/sqrt(var + eps) for batchnorm_backward; running_mean and running_var updated in place with
  // momentum (running_var from the unbiased variance).
  virtual void batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x,
                                       const float* gamma, const float* beta, float eps,
                                       float momentum, float* running_mean, float* running_var,
                                       float* y, float* save_mean, float* save_invstd,
                                       BnActivation act) = 0;
  // Evaluation: y = a x + b per channel, a = gamma / sqrt(running_var + eps),
  // b = beta - running_mean * a. Nothing is saved or updated.
  virtual void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                      const float* gamma, const float* beta,
                                      const float* running_mean, const float* running_var,
                                      float eps, float* y, BnActivation act) = 0;
  // Backward of the training forward, from x and what it saved: dx (through the batch
  // statistics), dgamma and dbeta; each only when non-null. beta is read only with an act.
  virtual void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x,
                                  const float* dy, const float* gamma, const float* beta,
                                  const float* save_mean, const float* save_invstd, float* dx,
                                  float* dgamma, float* dbeta, BnActivation act) = 0;
  // Backward of the evaluation forward, a fixed affine map: dx = a dy with the forward's a,
  // dgamma = sum(dy (x - running_mean)) / sqrt(running_var + eps), dbeta = sum(dy); each only
  // when non-null. beta is read only with an act.
  virtual void batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x,
                                       const float* dy, const float* gamma, const float* beta,
                                       const float* running_mean, const float* running_var,
                                       float eps, float* dx, float* dgamma, float* dbeta,
                                       BnActivation act) = 0;

  // ---- Softmax and loss (the math: engine/ops/softmax_loss.cpp) ---------------------------------
  // Each row of a rows x cols matrix is one sample. log: log_softmax instead of softmax. The
  // backward reads the forward's output y, not x.
  virtual void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) = 0;
  virtual void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                                int64_t cols, bool log) = 0;
  // nll_loss over log-probabilities logp[rows, cols], class ids in `target` (as floats), class
  // weights `weight` [cols] or null (all ones), label smoothing in [0, 1). The forward returns
  // the loss to the host (a CUDA backend waits for the device); the backward writes
  // grad_scale * d(loss)/d(logp) into dlogp [rows, cols] (it needs no logp).
  virtual float nll_loss_forward(const float* logp, const float* target, const float* weight,
                                 int64_t rows, int64_t cols, float smoothing) = 0;
  virtual void nll_loss_backward(const float* target, const float* weight, int64_t rows,
                                 int64_t cols, float smoothing, float grad_scale, float* dlogp) = 0;

  // ---- Dropout ----------------------------------------------------------------------------------
  // mask[i] = (u(seed, offset + i) >= p) / (1 - p), with u a counter-based uniform in [0, 1) that
  // both backends compute identically, so a seed gives the same mask on CPU and GPU.
  virtual void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) = 0;

  // ---- Geometry (the math: resize_bilinear and pad2d in engine/ops/shape.cpp) -------------------
  // Bilinear resize of NC planes [H, W] to [OH, OW] (PyTorch's align_corners=False); the
  // backward adds each dy into dx with the four weights the forward used.
  virtual void resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                       const float* x, float* y) = 0;
  virtual void resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                        const float* dy, float* dx) = 0;
  // Zero padding of NC planes [H, W] to [H + top + bottom, W + left + right] (all >= 0); the
  // backward crops dy back to [H, W].
  virtual void pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                             int64_t left, int64_t right, const float* x, float* y) = 0;
  virtual void pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                              int64_t left, int64_t right, const float* dy, float* dx) = 0;

  // ---- Optimizer updates (the formulas: engine/optim.h) -----------------------------------------
  // One fused pass over n parameters: param (and the state buffers) updated in place from grad.
  virtual void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n,
                          const SgdHyper& h) = 0;
  virtual void adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                           const AdamHyper& h) = 0;

  // ---- Device controls (the CPU backend has nothing to control: defaults) -----------------------
  // TF32 tensor-core math for float32 GEMMs and convolutions (CUDA, Ampere and newer): several
  // times the throughput with 10-bit mantissas in the products. Off by default, for CPU parity.
  virtual void set_allow_tf32(bool allow) {}
  virtual bool allow_tf32() const { return false; }
  // One line on the memory this backend holds (the CUDA caching allocator's statistics).
  virtual std::string memory_summary() const { return {}; }
  // The precision of the matrix products (convolutions and dense layers): "fp32", or "bf16":
  // operands rounded to bfloat16, products summed in fp32 (the CPU backend; kernels/cpu/isa.h).
  // Throws fer::Error for a name this backend cannot run.
  virtual void set_matmul_precision(const std::string& name);
  virtual std::string matmul_precision() const { return "fp32"; }
  // One line naming the kernels this backend runs, for the apps' start-up output
  // ("cpu kernels: avx512, fp32 products, 2 threads"); empty when there is nothing to choose.
  virtual std::string kernels_summary() const { return {}; }
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
// (These four are defined in kernels/backends.cpp, which links the kernel libraries in.)
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
