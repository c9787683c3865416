// ONNX export of any Module: trace one forward pass at the op level, translate each op.
//
// As torch.onnx.export does, the exporter runs the model once (eval mode, no gradients) on a
// dummy input under an OpTrace (engine/trace.h), which records every op the pass runs with its
// attributes and tensor handles. That list is already a data-flow graph: each traced op becomes
// one ONNX node (two or three for a few), each tensor that no op produced becomes a constant
// (an initializer named after its parameter or buffer, "features.0.weight", or "const_<k>" for a
// constant the forward built itself), the traced input becomes the graph input "input" and the
// result the output "logits". No model needs code of its own: whatever the registry's models
// are built from is exported by what they run.
//
// The graph (ONNX opset 13, IR version 7):
//   input          float [N, C, H, W]: what the Module's forward takes (for the FER models the
//                  preprocessed 48x48 faces); N is symbolic, C, H and W those of the export
//   logits         float [N, classes]
//   probabilities  softmax(logits / T), when temperature > 0 (the checkpoint's calibration)
// Translations (engine op -> ONNX):
//   conv2d -> Conv (groups: depthwise and grouped); a pad2d feeding only a convolution is folded
//   into its pads (TensorFlow's asymmetric "SAME"), else Pad; batch_norm (eval) ->
//   BatchNormalization (batch_norm_relu: BatchNormalization + Relu); max_pool2d -> MaxPool;
//   avg_pool2d -> AveragePool (count_include_pad=1), or GlobalAveragePool when the window is the whole map; linear -> Gemm (transB=1); matmul ->
//   MatMul; add, mul -> Add, Mul; scale -> Mul by a constant; activation -> Relu, Clip(0, 6),
//   LeakyRelu, Sigmoid, Tanh; concat -> Concat; reshape -> Reshape (the batch dimension kept
//   symbolic: 0 = "as the input's" or -1 = "the rest"); resize_bilinear -> Resize (linear,
//   half_pixel, output sizes from the input's shape); softmax -> Softmax / LogSoftmax. Dropout in
//   eval mode is the identity and leaves no op in the trace.
// Anything else (a loss, a batch slice, an op the model ran in training mode) is an error naming
// the op, its input shapes and the module whose forward ran it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace fer {

struct OnnxExportOptions {
  Shape input_shape{1, 1, 48, 48};  // of the traced pass; dimension 0 is exported as "N"
  float temperature = 0.0f;         // > 0: also output "probabilities" = softmax(logits / T)
  std::string graph_name = "fer_model";
  std::string doc_string;
  std::vector<std::pair<std::string, std::string>> metadata;  // into metadata_props
};

struct OnnxExportResult {
  std::string bytes;                       // the .onnx file
  std::map<std::string, int> node_counts;  // by ONNX op type
  int64_t initializer_count = 0, parameter_count = 0;
};

// Traces `model` (put in eval mode for the pass and left as it was) and builds the ONNX model.
OnnxExportResult export_onnx(Module& model, const OnnxExportOptions& options);

// Writes `bytes` to `path` atomically (a temporary file, then rename), failing with the path.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace fer
