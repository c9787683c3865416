// The AVX512-BF16 kernels: the bf16 direct-convolution tiles on VDPBF16PS (conv2d_bf16_microkernel.h),
// compiled with this set's flags (CMakeLists.txt) and called only when CPUID reports AVX512-BF16
// (isa.cpp). Forward: 8 output channels x 48 pixels; weight gradient: 12 taps x 32 output
// channels. 24 zmm accumulators each, every VDPBF16PS 32 multiply-adds.
#include <immintrin.h>

#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/conv2d_bf16_tile.h"

namespace fer::cpu {

namespace {
struct NativeDotPair {
  static __m512 dot(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(a), reinterpret_cast<__m512bh&>(b));
  }
};
}  // namespace

Bf16ConvKernel bf16_conv_kernel_avx512bf16() {
  return {"avx512-bf16", 8, 3 * 16, bf16_conv_tile<NativeDotPair, 8, 3>};
}

Bf16ConvWeightGradKernel bf16_conv_weight_grad_kernel_avx512bf16() {
  return {"avx512-bf16", 12, 2 * 16, bf16_conv_weight_grad_tile<NativeDotPair, 12, 2>};
}

}  // namespace fer::cpu
