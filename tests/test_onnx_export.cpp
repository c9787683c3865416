// ONNX export (models/export/): the protobuf writer against bytes worked out by hand (and the
// examples of the protobuf encoding guide), the op trace (engine/trace.h), and the exporter on a
// small model: which nodes it emits and the errors for what it cannot export. Whether the files
// compute what the engine computes is the CTest onnx_export (tests/onnx/: onnxruntime and the
// ONNX checker on every registry model).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/trace.h"
#include "layers/blocks.h"
#include "models/export/onnx_export.h"
#include "models/export/onnx_proto.h"
#include "models/registry.h"
#include "tests/support/errors.h"

using namespace fer;
using fer::testing::throws_naming;

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

std::string ascii(const char* text) { return text; }

}  // namespace

TEST_CASE("protobuf writer: varints, fixed32, length-delimited and packed fields") {
  onnx::ProtoWriter w;
  w.varint_field(1, 150);  // the encoding guide's first example: 08 96 01
  CHECK(w.bytes() == bytes({0x08, 0x96, 0x01}));

  onnx::ProtoWriter big;
  big.varint_field(1, 300);  // 300 = 0b10'0101100 -> AC 02
  CHECK(big.bytes() == bytes({0x08, 0xAC, 0x02}));

  onnx::ProtoWriter negative;  // int64 -1: ten bytes of two's complement
  negative.varint_field(3, -1);
  CHECK(negative.bytes() == bytes({0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));

  onnx::ProtoWriter text;  // field 2, "testing": 12 07 74 65 73 74 69 6e 67
  text.bytes_field(2, "testing");
  CHECK(text.bytes() == bytes({0x12, 0x07}) + ascii("testing"));

  onnx::ProtoWriter packed;  // the guide's packed example: field 4 = [3, 270, 86942]
  packed.packed_varints(4, {3, 270, 86942});
  CHECK(packed.bytes() == bytes({0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05}));

  onnx::ProtoWriter f;  // fixed32: key (2 << 3 | 5) = 0x15, then 1.0f little-endian
  f.float_field(2, 1.0f);
  CHECK(f.bytes() == bytes({0x15, 0x00, 0x00, 0x80, 0x3F}));

  onnx::ProtoWriter outer, inner;  // an embedded message is its bytes, length-prefixed
  inner.varint_field(1, 150);
  outer.message_field(3, inner);
  CHECK(outer.bytes() == bytes({0x1A, 0x03, 0x08, 0x96, 0x01}));
}

TEST_CASE("ONNX messages: TensorProto, AttributeProto, NodeProto, ValueInfoProto") {
  // dims = 1 (packed [2]), data_type = 2 (FLOAT = 1), name = 8, raw_data = 9 (1.0f, 2.0f).
  CHECK(onnx::TensorProto::floats("w", {2}, {1.0f, 2.0f}).encode().bytes() ==
        bytes({0x0A, 0x01, 0x02, 0x10, 0x01, 0x42, 0x01, 'w', 0x4A, 0x08,
               0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40}));
  // An int64 scalar: no dims, data_type INT64 = 7.
  CHECK(onnx::TensorProto::int64s("s", {}, {5}).encode().bytes() ==
        bytes({0x10, 0x07, 0x42, 0x01, 's', 0x4A, 0x08, 5, 0, 0, 0, 0, 0, 0, 0}));
  // name = 1, ints = 8 (packed), type = 20 (key 20 << 3 = 160 -> A0 01) INTS = 7.
  CHECK(onnx::attr_ints("pads", {1, 0, 1, 0}).encode().bytes() ==
        bytes({0x0A, 0x04}) + ascii("pads") + bytes({0x42, 0x04, 1, 0, 1, 0, 0xA0, 0x01, 0x07}));
  // f = 2 (fixed32), type FLOAT = 1.
  CHECK(onnx::attr_float("epsilon", 0.5f).encode().bytes() ==
        bytes({0x0A, 0x07}) + ascii("epsilon") + bytes({0x15, 0x00, 0x00, 0x00, 0x3F, 0xA0, 0x01, 0x01}));
  // input = 1, output = 2, name = 3, op_type = 4; an omitted optional input is "".
  const onnx::NodeProto node{{"x", ""}, {"y"}, "n", "Relu", {}};
  CHECK(node.encode().bytes() == bytes({0x0A, 0x01, 'x', 0x0A, 0x00, 0x12, 0x01, 'y', 0x1A, 0x01, 'n',
                                        0x22, 0x04}) + ascii("Relu"));
  // name = 1, type = 2 { tensor_type = 1 { elem_type = 1, shape = 2 { dim { dim_param "N" },
  // dim { dim_value 7 } } } }.
  const onnx::ValueInfoProto value{"y", {{0, "N"}, {7, ""}}};
  CHECK(value.encode().bytes() ==
        bytes({0x0A, 0x01, 'y', 0x12, 0x0F, 0x0A, 0x0D, 0x08, 0x01, 0x12, 0x09,
               0x0A, 0x03, 0x12, 0x01, 'N', 0x0A, 0x02, 0x08, 0x07}));
}

TEST_CASE("OpTrace records the ops a forward pass runs, with attributes and their module") {
  auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 2, 3, 1, 1), ReLU(), std::make_shared<Flatten>()});
  model->eval();
  NoGradGuard no_grad;
  const Tensor x = Tensor::ones({1, 1, 4, 4});
  {
    OpTrace trace;
    const Tensor y = (*model)(x);
    REQUIRE(trace.ops().size() == 3);
    const TracedOp& conv = trace.ops()[0];
    CHECK(conv.op == "conv2d");
    CHECK(conv.inputs[0].same(x));
    CHECK(conv.int_attr("pad_h") == 1);
    CHECK(conv.scope == (*model)[0].get());
    CHECK(trace.ops()[1].op == "activation");
    CHECK(trace.ops()[1].inputs[0].same(conv.output));
    CHECK(trace.ops()[2].op == "reshape");
    CHECK(trace.ops()[2].output.same(y));
    CHECK(throws_naming([&] { conv.attr("nonexistent"); }, "nonexistent"));
  }
  CHECK(active_trace() == nullptr);  // the normal path records nothing
}

TEST_CASE("export_onnx: a small model's nodes, initializers and symbolic batch") {
  auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 4, 3, 1, 1), std::make_shared<BatchNorm2d>(4), ReLU6(),
      std::make_shared<MaxPool2d>(2), std::make_shared<Dropout>(0.5f), std::make_shared<Flatten>(),
      std::make_shared<Linear>(4 * 4 * 4, 7)});
  OnnxExportOptions options;
  options.input_shape = {2, 1, 8, 8};
  options.temperature = 1.5f;
  const OnnxExportResult r = export_onnx(*model, options);
  CHECK(model->is_training());  // the export's eval() is undone
  CHECK(r.node_counts.at("Conv") == 1);
  CHECK(r.node_counts.at("BatchNormalization") == 1);
  CHECK(r.node_counts.at("Clip") == 1);
  CHECK(r.node_counts.at("MaxPool") == 1);
  CHECK(r.node_counts.at("Reshape") == 1);
  CHECK(r.node_counts.at("Gemm") == 1);
  CHECK(r.node_counts.at("Div") == 1);  // probabilities = softmax(logits / T)
  CHECK(r.node_counts.at("Softmax") == 1);
  CHECK(r.node_counts.count("Dropout") == 0);  // the identity at inference
  CHECK(r.parameter_count == model->parameter_count() + 4 + 4 + 1 + 2);  // + BN stats, T, Clip's bounds
  for (const char* name : {"0.weight", "1.running_var", "6.bias", "logits", "probabilities", "input"})
    CHECK(r.bytes.find(name) != std::string::npos);
  // The flatten's target keeps the batch symbolic: [0, 64] ("copy dimension 0"), not [2, 64].
  CHECK(r.bytes.find("shape_0_64") != std::string::npos);
}

TEST_CASE("export_onnx: a BatchNorm and the ReLU after it, fused in the engine, are two nodes") {
  auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 4, 3, 1, 1), std::make_shared<BatchNorm2d>(4), ReLU(),
      std::make_shared<Flatten>(), std::make_shared<Linear>(4 * 6 * 6, 7)});
  OnnxExportOptions options;
  options.input_shape = {1, 1, 6, 6};
  {
    model->eval();
    OpTrace trace;
    (*model)(Tensor::zeros({1, 1, 6, 6}));
    REQUIRE(trace.ops().size() == 4);  // conv2d, batch_norm (relu fused), reshape, linear
    CHECK(trace.ops()[1].op == "batch_norm");
    CHECK(trace.ops()[1].int_attr("activation") == static_cast<int>(BnActivation::ReLU));
  }
  const OnnxExportResult r = export_onnx(*model, options);
  CHECK(r.node_counts.at("BatchNormalization") == 1);
  CHECK(r.node_counts.at("Relu") == 1);
  CHECK(r.bytes.find("1/Relu") != std::string::npos);  // named by the BatchNorm's module
}

TEST_CASE("export_onnx: the TensorFlow-SAME padding folds into the convolution") {
  FlexConv2dConfig c{3, 4, 3, 3, 2};
  c.tf_same = true;  // 8x8, stride 2: pad 0 at the top/left, 1 at the bottom/right
  auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<FlexConv2d>(c), std::make_shared<GlobalAvgPool>()});
  OnnxExportOptions options;
  options.input_shape = {1, 3, 8, 8};
  const OnnxExportResult r = export_onnx(*model, options);
  CHECK(r.node_counts.count("Pad") == 0);
  CHECK(r.node_counts.at("Conv") == 1);
  CHECK(r.node_counts.at("GlobalAveragePool") == 1);
  // pads = [top 0, left 0, bottom 1, right 1] as a packed INTS attribute.
  CHECK(r.bytes.find(bytes({0x0A, 0x04}) + ascii("pads") + bytes({0x42, 0x04, 0, 0, 1, 1})) != std::string::npos);
}

namespace {
// Modules that do what the exporter cannot follow.
struct SlicesTheBatch : Module {
  Tensor forward(const Tensor& x) override { return x.flatten(1).slice_batch(0, 1); }
  std::string describe() const override { return "SlicesTheBatch()"; }
};
struct Halves : Module {
  Tensor forward(const Tensor& x) override { return scale(x.flatten(1), 0.5f); }
  std::string describe() const override { return "Halves()"; }
};
struct DetachesItsInput : Module {
  Tensor forward(const Tensor& x) override { return scale(x.flatten(1).detach(), 2.0f); }
  std::string describe() const override { return "DetachesItsInput()"; }
};
}  // namespace

TEST_CASE("export_onnx: scale becomes Mul by a constant named by its exact value") {
  Halves halves;
  OnnxExportOptions options;
  options.input_shape = {1, 1, 2, 2};
  const OnnxExportResult r = export_onnx(halves, options);
  CHECK(r.node_counts.at("Mul") == 1);
  CHECK(r.bytes.find("scale_0x1p-1") != std::string::npos);
}

TEST_CASE("export_onnx: an op without translation, or one bypassing the op API, names the op and module") {
  auto slicing = std::make_shared<Sequential>();
  slicing->add("head", std::make_shared<SlicesTheBatch>());
  OnnxExportOptions options;
  options.input_shape = {1, 1, 4, 4};
  CHECK(throws_naming([&] { export_onnx(*slicing, options); }, "op 'slice_batch'"));
  CHECK(throws_naming([&] { export_onnx(*slicing, options); }, "in module 'head' (SlicesTheBatch())"));
  DetachesItsInput detaching;
  CHECK(throws_naming([&] { export_onnx(detaching, options); }, "outside the op API"));
}

TEST_CASE("export_onnx: every registry model traces and translates") {
  // Only that the translation succeeds; the numbers are checked by the onnx_export CTest.
  for (const std::string& name : model_names()) {
    CAPTURE(name);
    ModelConfig c;
    c.input_size = name.find("inception") != std::string::npos ? 75 : name.rfind("fer_", 0) == 0 ? 48 : 32;
    auto model = create_model(name, c);
    OnnxExportOptions options;
    options.input_shape = {1, 1, 48, 48};
    const OnnxExportResult r = export_onnx(*model, options);
    CHECK(r.node_counts.at("Gemm") >= 1);
    CHECK(r.bytes.size() > static_cast<size_t>(4 * model->parameter_count()));
  }
}
