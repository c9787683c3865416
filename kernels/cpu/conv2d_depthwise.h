// Depthwise convolution (groups == C == K: one kernel per channel, MobileNet's 3x3 layers) with
// stride 1 or 2, on the vector loops of the active kernel set. See conv2d_depthwise.cpp.
#pragma once
#include "engine/backend.h"
#include "kernels/cpu/conv2d_output.h"

namespace fer::cpu {

// True when these kernels handle the geometry under the active kernel set.
bool conv2d_depthwise_applies(const Conv2dGeometry& g);

void conv2d_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const ConvOutput& output, float* y);
void conv2d_depthwise_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                     float* dx);
void conv2d_depthwise_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                      float* dw, float* dbias);

// An output gradient's plane [rows, width] spread onto the grid the taps kernels (taps_sum,
// taps_dot) run over: row r at r * row floats, zeros in the row - width columns after it. Also
// the few-taps weight gradient's (conv2d_direct.cpp).
void spread_onto_grid(int64_t rows, int64_t width, int64_t row, const float* plane, float* grid);

}  // namespace fer::cpu
