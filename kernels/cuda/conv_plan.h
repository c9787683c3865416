// The cuDNN state of one convolution geometry: descriptors of x, w, y and the convolution, and the
// algorithm chosen for each direction (forward, backward data, backward filter) with its
// workspace size and math type. CudaBackend::conv_plan() keeps one per geometry (and TF32 mode);
// the algorithms are chosen on first use (kernels/cuda/conv2d.cu).
#pragma once
#include <cudnn.h>

#include <cstddef>

namespace fer::cuda {

struct ConvAlgo {
  bool chosen = false;
  int algo = 0;                 // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

struct ConvPlan {
  ConvPlan() = default;
  ~ConvPlan() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool tf32 = false;
  ConvAlgo forward, backward_data, backward_filter;
};

}  // namespace fer::cuda
