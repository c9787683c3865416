// The weight-gradient micro-kernel of the direct convolution (conv2d_direct.cpp).
//
// The weight gradient, transposed, is a matrix product summed over pixels q and images n:
//
//   dW^T[r, k] = sum over n, q of  xpad_n[offset(r) + q] * dy'_n[k, q]
//
// A tile of MR taps r x NR output channels k stays in registers. For each pixel the kernel
// broadcasts the MR tap values (row i of the left operand is the padded image shifted by tap
// i's offset: read where it lies, never packed) and multiplies them with NR channels of dy'
// packed pixel-major (dyT[q * NR + j] = dy'[k0 + j, q]), then adds the tile to C:
//
//   C[i * ldc + j] += sum over n < images, q < len of  x_rows[i][n*x_image_stride + q] *
//                                                       dyT[n*dyT_image_stride + q*NR + j]
//
// Written once in simd_kernels.h, compiled per instruction set as the GEMM micro-kernels are.
#pragma once
#include <cstdint>

namespace fer::cpu {

using ConvWeightGradFn = void (*)(int64_t images, int64_t len, const float* const* x_rows,
                                  int64_t x_image_stride, const float* dyT,
                                  int64_t dyT_image_stride, float* c, int64_t ldc);

struct ConvWeightGradKernel {
  const char* isa;
  int mr, nr;  // taps x output channels per tile
  ConvWeightGradFn run;
};

ConvWeightGradKernel conv_weight_grad_kernel_avx2();    // 6 x 16: 12 ymm accumulators
ConvWeightGradKernel conv_weight_grad_kernel_avx512();  // 12 x 32: 24 zmm accumulators

}  // namespace fer::cpu
