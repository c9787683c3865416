// The exporter: one traced forward pass -> an ONNX graph (the translation table is in
// onnx_export.h). GraphBuilder walks the trace in order (the order the ops ran in is a valid
// topological order for ONNX), names every value it meets and emits nodes and initializers.
#include "models/export/onnx_export.h"

#include <cstdio>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/random.h"
#include "engine/trace.h"
#include "models/export/onnx_proto.h"

namespace fer {

namespace {

using onnx::attr_float;
using onnx::attr_int;
using onnx::attr_ints;
using onnx::attr_string;
using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

const TensorImpl* key(const Tensor& t) { return t.impl_ptr().get(); }

// Dotted paths of every module of the tree ("features.layer1.0.conv1"; the root is "").
void name_modules(const Module& m, const std::string& path, std::map<const void*, std::string>& out) {
  out.emplace(&m, path);
  for (const auto& [name, child] : m.named_children())
    name_modules(*child, path.empty() ? name : path + "." + name, out);
}

std::string shapes_of(const std::vector<Tensor>& tensors) {
  std::string s;
  for (const Tensor& t : tensors)
    if (t.defined()) s += (s.empty() ? "" : ", ") + t.shape_str();
  return s;
}

class GraphBuilder {
 public:
  GraphBuilder(const Module& model, const std::vector<TracedOp>& ops, const Tensor& input,
               const Tensor& output)
      : ops_(ops), input_(input), output_(output) {
    name_modules(model, "", module_names_);
    for (const auto& [name, t] : model.state_dict()) state_names_[key(t)] = name;
    names_[key(input)] = "input";
    // Consumers of every value: a pad2d whose only consumer is a convolution folds into it.
    for (const TracedOp& op : ops)
      for (const Tensor& t : op.inputs)
        if (t.defined()) ++uses_[key(t)];
  }

  onnx::GraphProto build() {
    for (const TracedOp& op : ops_) translate(op);
    FER_CHECK(names_.count(key(output_)) && !output_.same(input_),
              "ONNX export: the model's output ", output_.shape_str(),
              " was not computed by the op API (engine/ops.h) from its input");
    return std::move(graph_);
  }

 private:
  // ---- Values -----------------------------------------------------------------------------------
  // The name of an op's input: a value already produced, the graph input, or a new initializer
  // holding the tensor (named after its parameter or buffer, else "const_<k>").
  std::string value(const Tensor& t, const TracedOp& op) {
    if (auto it = names_.find(key(t)); it != names_.end()) return it->second;
    // A leaf that shares memory with the input or a traced result was derived from them outside
    // the op API (detach(), clone(), a loop over data()): freezing it into a constant would be
    // silently wrong for any other input.
    FER_CHECK(!t.shares_storage(input_), "ONNX export: ", where(op), " reads a tensor ",
              t.shape_str(), " derived from the input outside the op API (engine/ops.h)");
    for (const TracedOp& earlier : ops_) {
      if (&earlier == &op) break;
      FER_CHECK(!t.shares_storage(earlier.output), "ONNX export: ", where(op), " reads a tensor ",
                t.shape_str(), " derived from the result of '", earlier.op,
                "' outside the op API (engine/ops.h)");
    }
    auto named = state_names_.find(key(t));
    std::string name =
        named != state_names_.end() ? named->second : "const_" + std::to_string(constants_++);
    graph_.initializers.push_back(TensorProto::floats(name, t.shape(), t.to_vector()));
    return names_[key(t)] = name;
  }

  // Constants the translation itself needs (Clip's bounds, Reshape's shape), one per content.
  std::string int64_constant(const std::vector<int64_t>& values) {
    std::string label = "shape";
    for (int64_t v : values) label += "_" + std::to_string(v);
    if (made_constants_.insert(label).second)
      graph_.initializers.push_back(TensorProto::int64s(label, {static_cast<int64_t>(values.size())}, values));
    return label;
  }
  std::string float_constant(const std::string& label, float v) {
    if (made_constants_.insert(label).second)
      graph_.initializers.push_back(TensorProto::floats(label, {}, {v}));
    return label;
  }

  // ---- Nodes ------------------------------------------------------------------------------------
  // Appends a node run by `op`'s module; returns its output's name ("logits" for the model's
  // output when `final` is set, else "<module path>/<OpType>[_k]", unique).
  std::string node(const TracedOp& op, const std::string& op_type, std::vector<std::string> inputs,
                   std::vector<AttributeProto> attributes, bool final = true) {
    const std::string scope = module_names_.count(op.scope) ? module_names_[op.scope] : "";
    std::string name = (scope.empty() ? "" : scope + "/") + op_type;
    if (const int n = name_counts_[name]++; n > 0) name += "_" + std::to_string(n);
    std::string out = name;
    if (final && op.output.same(output_)) out = "logits";
    graph_.nodes.push_back(NodeProto{std::move(inputs), {out}, name, op_type, std::move(attributes)});
    if (final) names_[key(op.output)] = out;
    return out;
  }

  // "op 'sum' (inputs [2, 7]) in module 'features.3' (Foo())": for error messages.
  std::string where(const TracedOp& op) {
    std::string s = "op '" + op.op + "' (inputs " + shapes_of(op.inputs) + ")";
    if (auto it = module_names_.find(op.scope); it != module_names_.end())
      s += " in module '" + (it->second.empty() ? std::string("<model>") : it->second) + "' (" +
           static_cast<const Module*>(op.scope)->describe() + ")";
    return s;
  }

  // ---- The translation table ----------------------------------------------------------------------
  void translate(const TracedOp& op) {
    const std::string& o = op.op;
    if (o == "conv2d") return conv(op);
    if (o == "pad2d") return pad(op);
    if (o == "batch_norm") {
      FER_CHECK(op.int_attr("training") == 0, "ONNX export: ", where(op),
                " ran in training mode (batch statistics): export needs eval()");
      const auto act = static_cast<BnActivation>(op.int_attr("activation"));
      if (act == BnActivation::None) {
        node(op, "BatchNormalization", inputs(op, 5), {attr_float("epsilon", op.attr("eps"))});
        return;
      }
      // batch_norm_relu, batch_norm_relu6: the two nodes each fuses.
      const std::string normalized = node(op, "BatchNormalization", inputs(op, 5),
                                          {attr_float("epsilon", op.attr("eps"))}, /*final=*/false);
      if (act == BnActivation::ReLU)
        node(op, "Relu", {normalized}, {});
      else
        node(op, "Clip", {normalized, float_constant("clip_min_0", 0.0f), float_constant("clip_max_6", 6.0f)}, {});
      return;
    }
    if (o == "max_pool2d" || o == "avg_pool2d") return pool(op);
    if (o == "linear") {
      node(op, "Gemm", inputs(op, op.inputs[2].defined() ? 3 : 2), {attr_int("transB", 1)});
      return;
    }
    if (o == "matmul" || o == "add" || o == "mul") {  // one to one, no attributes
      node(op, o == "matmul" ? "MatMul" : o == "add" ? "Add" : "Mul", inputs(op, 2), {});
      return;
    }
    if (o == "scale") {
      const float alpha = static_cast<float>(op.attr("alpha"));
      char label[48];  // named by its exact value (%a: hexadecimal, no rounding) to share it
      std::snprintf(label, sizeof label, "scale_%a", alpha);
      node(op, "Mul", {value(op.inputs[0], op), float_constant(label, alpha)}, {});
      return;
    }
    if (o == "activation") return activation(op);
    if (o == "concat") {
      node(op, "Concat", inputs(op, op.inputs.size()), {attr_int("axis", op.int_attr("dim"))});
      return;
    }
    if (o == "reshape") return reshape(op);
    if (o == "resize_bilinear") return resize(op);
    if (o == "softmax") {
      node(op, op.int_attr("log") ? "LogSoftmax" : "Softmax", inputs(op, 1), {attr_int("axis", -1)});
      return;
    }
    if (o == "dropout")
      fail("ONNX export: ", where(op), " ran in training mode: export needs eval()");
    fail("ONNX export: ", where(op), " has no ONNX translation (models/export/onnx_export.h lists "
         "the ops that have)");
  }

  std::vector<std::string> inputs(const TracedOp& op, size_t n) {
    std::vector<std::string> names;
    for (size_t i = 0; i < n; ++i) names.push_back(value(op.inputs[i], op));
    return names;
  }

  // Conv: pads are [top, left, bottom, right]; a folded pad2d adds its (maybe asymmetric) sides.
  void conv(const TracedOp& op) {
    const Tensor& w = op.inputs[1];
    const int64_t ph = op.int_attr("pad_h"), pw = op.int_attr("pad_w");
    std::vector<int64_t> pads{ph, pw, ph, pw};
    Tensor x = op.inputs[0];
    if (auto it = folded_pads_.find(key(x)); it != folded_pads_.end()) {
      const TracedOp& p = *it->second;
      pads = {ph + p.int_attr("top"), pw + p.int_attr("left"), ph + p.int_attr("bottom"),
              pw + p.int_attr("right")};
      x = p.inputs[0];
    }
    std::vector<std::string> in{value(x, op), value(w, op)};
    if (op.inputs[2].defined()) in.push_back(value(op.inputs[2], op));
    node(op, "Conv", in,
         {attr_ints("kernel_shape", {w.size(2), w.size(3)}),
          attr_ints("strides", {op.int_attr("stride_h"), op.int_attr("stride_w")}),
          attr_ints("dilations", {op.int_attr("dil_h"), op.int_attr("dil_w")}),
          attr_ints("pads", pads), attr_int("group", op.int_attr("groups"))});
  }

  // Zero padding: folded into the convolution that is its only consumer, else a Pad node
  // (pads input = [begin of each dim..., end of each dim...]).
  void pad(const TracedOp& op) {
    if (uses_[key(op.output)] == 1 && !op.output.same(output_)) {
      for (const TracedOp& later : ops_)
        if (later.op == "conv2d" && later.inputs[0].same(op.output)) {
          folded_pads_[key(op.output)] = &op;
          return;
        }
    }
    const std::vector<int64_t> pads{0, 0, op.int_attr("top"), op.int_attr("left"),
                                    0, 0, op.int_attr("bottom"), op.int_attr("right")};
    node(op, "Pad", {value(op.inputs[0], op), int64_constant(pads)}, {attr_string("mode", "constant")});
  }

  void pool(const TracedOp& op) {
    const Tensor& x = op.inputs[0];
    const int64_t kh = op.int_attr("kernel_h"), kw = op.int_attr("kernel_w");
    const int64_t ph = op.int_attr("pad_h"), pw = op.int_attr("pad_w");
    const bool avg = op.op == "avg_pool2d";
    if (avg && kh == x.size(2) && kw == x.size(3) && ph == 0 && pw == 0) {  // one window: the mean
      node(op, "GlobalAveragePool", inputs(op, 1), {});
      return;
    }
    std::vector<AttributeProto> attributes{
        attr_ints("kernel_shape", {kh, kw}),
        attr_ints("strides", {op.int_attr("stride_h"), op.int_attr("stride_w")}),
        attr_ints("pads", {ph, pw, ph, pw}), attr_int("ceil_mode", op.int_attr("ceil_mode"))};
    if (avg) attributes.push_back(attr_int("count_include_pad", 1));
    node(op, avg ? "AveragePool" : "MaxPool", inputs(op, 1), std::move(attributes));
  }

  void activation(const TracedOp& op) {
    const auto kind = static_cast<Activation>(op.int_attr("kind"));
    switch (kind) {
      case Activation::ReLU: node(op, "Relu", inputs(op, 1), {}); return;
      case Activation::ReLU6:
        node(op, "Clip", {value(op.inputs[0], op), float_constant("clip_min_0", 0.0f),
                          float_constant("clip_max_6", 6.0f)}, {});
        return;
      case Activation::LeakyReLU:
        node(op, "LeakyRelu", inputs(op, 1), {attr_float("alpha", static_cast<float>(op.attr("alpha")))});
        return;
      case Activation::Sigmoid: node(op, "Sigmoid", inputs(op, 1), {}); return;
      case Activation::Tanh: node(op, "Tanh", inputs(op, 1), {}); return;
    }
    fail("ONNX export: ", where(op), ": activation kind ", static_cast<int>(kind), " has no translation");
  }

  // The traced shapes hold the export's batch size; the graph's batch is symbolic. Dimension 0 of
  // the target is therefore written as 0 ("copy the input's") when it was the input's dimension 0,
  // else as -1 ("whatever the rest leaves"): [N, C, 1, 1] -> [0, C] and AvgPool2dSame's
  // [N, C, H, W] -> [-1, H*W] -> [-1, C, H, W] hold for every N.
  void reshape(const TracedOp& op) {
    const Tensor& x = op.inputs[0];
    std::vector<int64_t> target = op.output.shape();
    FER_CHECK(!target.empty() && x.dim() > 0, "ONNX export: ", where(op), ": a reshape to or from a scalar");
    target[0] = target[0] == x.size(0) ? 0 : -1;
    node(op, "Reshape", {value(x, op), int64_constant(target)}, {});
  }

  // Resize (opset 13) takes the full output size [N, C, OH, OW]; N is known only at run time, so
  // the sizes are Concat(Shape(x)[0:2], [OH, OW]). half_pixel + linear is PyTorch's bilinear with
  // align_corners=False (source = (dst + 0.5) * in/out - 0.5, clamped at 0), the engine's.
  void resize(const TracedOp& op) {
    const std::string x = value(op.inputs[0], op);
    const std::string shape = node(op, "Shape", {x}, {}, /*final=*/false);
    const std::string nc = node(op, "Slice", {shape, int64_constant({0}), int64_constant({2})}, {},
                                /*final=*/false);
    const std::string sizes =
        node(op, "Concat", {nc, int64_constant({op.output.size(2), op.output.size(3)})},
             {attr_int("axis", 0)}, /*final=*/false);
    node(op, "Resize", {x, "", "", sizes},
         {attr_string("mode", "linear"), attr_string("coordinate_transformation_mode", "half_pixel")});
  }

  const std::vector<TracedOp>& ops_;
  Tensor input_, output_;
  onnx::GraphProto graph_;
  std::map<const void*, std::string> module_names_;
  std::map<const TensorImpl*, std::string> state_names_, names_;
  std::map<const TensorImpl*, int> uses_;
  std::map<const TensorImpl*, const TracedOp*> folded_pads_;
  std::map<std::string, int> name_counts_;
  std::set<std::string> made_constants_;
  int constants_ = 0;
};

onnx::ValueInfoProto value_info(const std::string& name, const Shape& shape) {
  onnx::ValueInfoProto v{name, {}};
  for (size_t d = 0; d < shape.size(); ++d)
    v.shape.push_back(d == 0 ? onnx::ValueInfoProto::Dim{0, "N"} : onnx::ValueInfoProto::Dim{shape[d], ""});
  return v;
}

}  // namespace

OnnxExportResult export_onnx(Module& model, const OnnxExportOptions& options) {
  FER_CHECK(options.input_shape.size() == 4 && shape_numel(options.input_shape) > 0,
            "ONNX export: the input shape must be [N, C, H, W], got ", shape_str(options.input_shape));
  // The traced pass: eval mode, no autograd, on the CPU, with a fixed pseudo-random input (not
  // zeros: a model whose result did not depend on its input would look right on zeros).
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  Generator gen(0x0E5EED);
  const Tensor input = Tensor::uniform(options.input_shape, 0.0f, 1.0f, gen);
  OpTrace trace;
  Tensor output;
  try {
    output = model(input);
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  FER_CHECK(output.dim() == 2, "ONNX export: the model returns ", output.shape_str(),
            ", expected [N, classes] logits");

  onnx::ModelProto proto;
  proto.producer_name = "fer_engine";
  proto.producer_version = "fer_convert";
  proto.doc_string = options.doc_string;
  proto.metadata = options.metadata;
  proto.graph = GraphBuilder(model, trace.ops(), input, output).build();
  proto.graph.name = options.graph_name;
  proto.graph.inputs.push_back(value_info("input", input.shape()));
  proto.graph.outputs.push_back(value_info("logits", output.shape()));
  if (options.temperature > 0) {  // probabilities = softmax(logits / T), the apps' calibration
    proto.graph.initializers.push_back(TensorProto::floats("temperature", {}, {options.temperature}));
    proto.graph.nodes.push_back(NodeProto{{"logits", "temperature"}, {"scaled_logits"}, "calibration/Div", "Div", {}});
    proto.graph.nodes.push_back(NodeProto{{"scaled_logits"}, {"probabilities"}, "calibration/Softmax",
                                          "Softmax", {attr_int("axis", -1)}});
    proto.graph.outputs.push_back(value_info("probabilities", output.shape()));
  }

  OnnxExportResult result;
  for (const NodeProto& n : proto.graph.nodes) ++result.node_counts[n.op_type];
  result.initializer_count = static_cast<int64_t>(proto.graph.initializers.size());
  for (const TensorProto& t : proto.graph.initializers)
    if (t.data_type == onnx::DataType::FLOAT) result.parameter_count += static_cast<int64_t>(t.raw_data.size() / 4);
  result.bytes = proto.encode().bytes();
  return result;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  FER_CHECK(f, path, ": cannot create the temporary file '", tmp, "'");
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool synced = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  if (std::fclose(f) != 0 || !written || !synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": cannot write ", bytes.size(), " bytes (disk full? permissions?)");
  }
}

}  // namespace fer
