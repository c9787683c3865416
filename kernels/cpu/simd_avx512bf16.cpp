// The AVX512-BF16 kernels: the bf16 direct-convolution tile on VDPBF16PS (conv2d_bf16_microkernel.h),
// compiled with this set's flags (CMakeLists.txt) and called only when CPUID reports AVX512-BF16
// (isa.cpp). 8 output channels x 48 pixels: 24 zmm accumulators, each VDPBF16PS 32 multiply-adds.
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

}  // namespace fer::cpu
