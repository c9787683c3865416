// The CPU backend: every kernel of engine/backend.h on the host, on the engine's own packed GEMM
// (gemm.h, micro-kernels chosen at run time by isa.h) and OpenMP threads. Each family lives in its own file (conv2d.cpp, pool2d.cpp,
// batchnorm.cpp, ...); this header only declares the class that ties them together.
#pragma once
#include "engine/backend.h"

namespace fer::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols, bool accumulate) override;

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

  void set_matmul_precision(const std::string& name) override;
  std::string matmul_precision() const override;
  std::string kernels_summary() const override;

  void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n,
                  const SgdHyper& h) override;
  void adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                   const AdamHyper& h) override;
};

// The CPU allocator keeps freed buffers of 32 MiB and more for reuse (memory.cpp): the bytes it
// holds so, and a way to give them back to the system.
size_t cached_host_bytes();
void release_cached_host_memory();

}  // namespace fer::cpu
