// Weight layouts of other frameworks -> the engine's (PyTorch's) layouts. Pure index shuffles on
// CPU tensors; each checks the rank it expects and names the tensor when it is wrong.
//
//   Keras / TensorFlow                      engine
//   conv kernel       [KH, KW, In, Out]  -> [Out, In, KH, KW]          (HWIO -> OIHW)
//   depthwise kernel  [KH, KW, C, M]     -> [C*M, 1, KH, KW]           output channel c*M + m
//   dense kernel      [In, Out]          -> [Out, In]
#pragma once
#include <string>

#include "engine/tensor.h"

namespace fer::convert {

Tensor hwio_to_oihw(const Tensor& kernel, const std::string& name_for_errors);
Tensor depthwise_to_oihw(const Tensor& kernel, const std::string& name_for_errors);
Tensor dense_to_out_in(const Tensor& kernel, const std::string& name_for_errors);

}  // namespace fer::convert
