// Direct convolution for stride 1 and no dilation (every 3x3 and 1x1 layer of the FER CNNs and
// most of the backbones'), on the micro-kernels of the active kernel set. See conv2d_direct.cpp.
#pragma once
#include "engine/backend.h"
#include "kernels/cpu/conv2d_output.h"

namespace fer::cpu {

// True when the direct kernels handle this geometry under the active kernel set.
bool conv2d_direct_applies(const Conv2dGeometry& g);

void conv2d_direct_forward(const Conv2dGeometry& g, const float* x, const float* w,
                           const ConvOutput& output, float* y);
// The forward pass on a bf16 micro-kernel (conv2d_bf16_microkernel.h): operands rounded to
// bfloat16, channel pairs multiplied by VDPBF16PS (or its emulation, in tests), float sums.
// conv2d_direct_forward takes this path itself when active_bf16_conv_kernel() has one.
struct Bf16ConvKernel;
void conv2d_bf16_forward(const Bf16ConvKernel& kernel, const Conv2dGeometry& g, const float* x,
                         const float* w, const ConvOutput& output, float* y);

void conv2d_direct_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                   float* dw, float* dbias);
// The weight gradient on a bf16 micro-kernel: x and dy rounded to bfloat16, pairs of neighbouring
// pixels multiplied by VDPBF16PS (or its emulation), float sums; the bias gradient in fp32 from
// dy. conv2d_direct_backward_weight takes this path when active_bf16_conv_weight_grad_kernel()
// has one.
struct Bf16ConvWeightGradKernel;
void conv2d_bf16_backward_weight(const Bf16ConvWeightGradKernel& kernel, const Conv2dGeometry& g,
                                 const float* dy, const float* x, float* dw, float* dbias);

}  // namespace fer::cpu
