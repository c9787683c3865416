// Winograd convolution F(4x4, 3x3), or F(2x2, 3x3) on small maps, for 3x3 stride-1 layers
// (fp32), on the GEMM micro-kernel of the active kernel set. See conv2d_winograd.cpp.
#pragma once
#include <cstdint>

#include "engine/backend.h"
#include "kernels/cpu/conv2d_output.h"

namespace fer::cpu {

// True when the Winograd path takes this forward convolution: 3x3, stride 1, no dilation, one
// group, padding at most 2, fp32 products, a vector kernel set, at least 32 channels in and out,
// output tiles (4x4, else 2x2) that overhang the map by at most
// half, and at least one and a half panels of the micro-kernel of tiles in the batch (one face:
// its 48x48 and 24x24 layers under avx2), or fewer 4x4 tiles (one face's 12x12 layers), whose
// products run transposed (one face's 12x12 layers in F(4x4, 3x3), its 6x6 layers in F(2x2, 3x3)):
// where it measured faster than the direct convolution. FER_WINOGRAD=0 in the environment turns
// it off (for comparisons; read once).
bool conv2d_winograd_applies(const Conv2dGeometry& g);

// packed: where a frozen layer keeps its kernels' transforms (made at the first call), or null.
void conv2d_winograd_forward(const Conv2dGeometry& g, const float* x, const float* w,
                             const ConvOutput& output, float* y, PackedWeights* packed);

// The weight gradient on the same transforms, where conv2d_winograd_applies() with enough tiles
// for the untransposed products, with the input channels a multiple of the micro-kernel's rows
// and the output channels padded to whole panels by at most half under avx2 (32 channels and
// up), an eighth under avx512 (128 and 256).
bool conv2d_winograd_weight_applies(const Conv2dGeometry& g);
void conv2d_winograd_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                     float* dw, float* dbias);

// How many forward convolutions (input gradients included) and weight gradients the Winograd
// path has run in this process (the tests check that the op cases meant for it reach it).
int64_t conv2d_winograd_calls();
int64_t conv2d_winograd_few_tiles_calls();  // of those, with the products transposed
int64_t conv2d_winograd_packed_calls();     // of those, on packed weights
int64_t conv2d_winograd_weight_calls();

}  // namespace fer::cpu
