// Weight converters (models/convert/): layout shuffles, Keras weight roles, the torchvision and
// Keras name maps on in-memory files, and the error messages for missing, unexpected and
// mis-shaped weights. Needs neither Python nor HDF5 (tests/test_backbones.cpp compares whole
// converted networks against PyTorch and Keras's computation).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/random.h"
#include "models/backbones.h"
#include "models/convert/keras.h"
#include "models/convert/layout.h"
#include "models/convert/torchvision.h"
#include "tests/support/errors.h"

using namespace fer;
using namespace fer::convert;
using fer::testing::throws_naming;

namespace {

Tensor iota(const Shape& shape) {
  std::vector<float> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(shape, v);
}

float at4(const Tensor& t, int64_t a, int64_t b, int64_t c, int64_t d) {
  return t.to_vector()[((a * t.size(1) + b) * t.size(2) + c) * t.size(3) + d];
}

ModelConfig small(int64_t size = 32) {
  ModelConfig c;
  c.input_size = size;
  return c;
}

// A torchvision-named state dict with the values of `model`'s features (plus a torchvision head).
StateDict torchvision_dict(Module& model, const std::string& family) {
  StateDict out;
  for (const auto& [name, t] : model.state_dict())
    if (name.rfind("features.", 0) == 0) out[engine_to_torchvision_name(family, name)] = t.clone();
  return out;
}

// A Keras file for the engine's mobilenet_v1 (whose names are Keras's), random values, Keras
// layouts: conv [KH, KW, In, Out], depthwise [KH, KW, C, 1].
KerasFile keras_mobilenet_v1_file(Module& model, Generator& gen) {
  KerasFile f;
  f.layers.push_back({"input_1", {}});
  std::map<std::string, KerasLayer> by_layer;
  std::vector<std::string> order;
  for (const auto& [name, t] : model.named_parameters()) {
    if (name.rfind("features.", 0) != 0) continue;
    const std::string layer = layer_of(name).substr(9), kind = name.substr(name.rfind('.') + 1);
    if (!by_layer.count(layer)) order.push_back(layer);
    KerasLayer& l = by_layer[layer];
    l.name = layer;
    if (t.dim() == 4) {
      const bool dw = layer.rfind("conv_dw_", 0) == 0;
      const Shape s = dw ? Shape{t.size(2), t.size(3), t.size(0), 1}
                         : Shape{t.size(2), t.size(3), t.size(1), t.size(0)};
      l.weights.push_back({layer + (dw ? "/depthwise_kernel:0" : "/kernel:0"), Tensor::normal(s, 0, 1, gen)});
    } else if (kind == "weight") {
      const int64_t c = t.numel();
      l.weights.push_back({layer + "/gamma:0", Tensor::uniform({c}, 0.5f, 1.5f, gen)});
      l.weights.push_back({layer + "/beta:0", Tensor::normal({c}, 0, 0.1f, gen)});
      l.weights.push_back({layer + "/moving_mean:0", Tensor::normal({c}, 0, 0.1f, gen)});
      l.weights.push_back({layer + "/moving_variance:0", Tensor::uniform({c}, 0.5f, 1.5f, gen)});
    }
  }
  for (const auto& name : order) f.layers.push_back(by_layer[name]);
  f.layers.push_back({"conv_preds", {{"conv_preds/kernel:0", Tensor::zeros({1, 1, 1024, 1000})}}});
  return f;
}

KerasLayer* find_layer(KerasFile& f, const std::string& name) {
  for (auto& l : f.layers)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace

TEST_CASE("layouts: HWIO -> OIHW, depthwise HWC1 -> C1HW, dense (in, out) -> (out, in)") {
  const Tensor k = iota({2, 3, 4, 5});  // [KH, KW, In, Out]
  const Tensor o = hwio_to_oihw(k, "k");
  REQUIRE(o.shape() == Shape{5, 4, 2, 3});
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t w = 0; w < 3; ++w)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t out = 0; out < 5; ++out) CHECK(at4(o, out, i, h, w) == at4(k, h, w, i, out));
  const Tensor d = iota({3, 3, 6, 2});  // [KH, KW, C, M]
  const Tensor dd = depthwise_to_oihw(d, "d");
  REQUIRE(dd.shape() == Shape{12, 1, 3, 3});
  for (int64_t c = 0; c < 6; ++c)
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 3; ++w) CHECK(at4(dd, c * 2 + m, 0, h, w) == at4(d, h, w, c, m));
  const Tensor dense = dense_to_out_in(iota({3, 2}), "fc");
  CHECK(dense.shape() == Shape{2, 3});
  CHECK(dense.to_vector() == std::vector<float>{0, 2, 4, 1, 3, 5});
  CHECK(throws_naming([] { hwio_to_oihw(iota({3, 3}), "block1_conv1 kernel"); }, "block1_conv1 kernel"));
}

TEST_CASE("Keras weight roles from Keras 1 and Keras 2 names") {
  CHECK(keras_role("block1_conv1_W_1:0", "block1_conv1", "f") == KerasRole::kernel);
  CHECK(keras_role("block1_conv1_b_1:0", "block1_conv1", "f") == KerasRole::bias);
  CHECK(keras_role("conv1_conv/kernel:0", "conv1_conv", "f") == KerasRole::kernel);
  CHECK(keras_role("conv_dw_1/depthwise_kernel:0", "conv_dw_1", "f") == KerasRole::depthwise_kernel);
  CHECK(keras_role("bn_conv1_running_std_1:0", "bn_conv1", "f") == KerasRole::moving_variance);
  CHECK(keras_role("bn_conv1_running_mean:0", "bn_conv1", "f") == KerasRole::moving_mean);
  CHECK(keras_role("batch_normalization_3/moving_variance:0", "b", "f") == KerasRole::moving_variance);
  CHECK(keras_role("bn/beta:0", "bn", "f") == KerasRole::beta);
  CHECK(keras_role("bn/gamma:0", "bn", "f") == KerasRole::gamma);
  CHECK(throws_naming([] { keras_role("x/alpha:0", "prelu_1", "w.h5"); }, "'prelu_1'"));
}

TEST_CASE("torchvision name map: the features. prefix, heads ignored") {
  CHECK(torchvision_to_engine_name("resnet50", "layer1.0.conv1.weight") == "features.layer1.0.conv1.weight");
  CHECK(torchvision_to_engine_name("resnet50", "fc.weight").empty());
  CHECK(torchvision_to_engine_name("vgg16", "features.0.weight") == "features.0.weight");
  CHECK(torchvision_to_engine_name("vgg16", "classifier.6.bias").empty());
  CHECK(torchvision_to_engine_name("inception_v3", "AuxLogits.conv0.conv.weight").empty());
  CHECK(torchvision_to_engine_name("inception_v3", "Mixed_5b.branch1x1.bn.running_var") ==
        "features.Mixed_5b.branch1x1.bn.running_var");
  CHECK(engine_to_torchvision_name("resnet50", "features.bn1.weight") == "bn1.weight");
  CHECK(engine_to_torchvision_name("mobilenet_v2", "features.18.1.weight") == "features.18.1.weight");
  CHECK(throws_naming([] { torchvision_to_engine_name("alexnet", "x"); }, "alexnet"));
}

TEST_CASE("torchvision state dicts load into features; errors name layer, tensor and shapes") {
  manual_seed(1);
  auto source = create_model("resnet50", small());
  StateDict tv = torchvision_dict(*source, "resnet50");
  tv["fc.weight"] = Tensor::zeros({1000, 2048});
  tv["fc.bias"] = Tensor::zeros({1000});
  tv.erase("layer2.0.bn1.num_batches_tracked");  // optional: counts steps, computes nothing

  manual_seed(2);
  auto model = create_model("resnet50", small());
  const auto head_before = model->state_dict().at("classifier.0.weight").to_vector();
  ConversionReport report;
  load_torchvision_backbone(*model, "resnet50", tv, "r50.safetensors", report);
  CHECK(report.ignored.size() == 2);
  CHECK(report.tensors_loaded == static_cast<int64_t>(tv.size()) - 2);
  for (const auto& [name, t] : source->state_dict())
    if (name.rfind("features.", 0) == 0 && name.find("num_batches") == std::string::npos)
      CHECK_MESSAGE(model->state_dict().at(name).to_vector() == t.to_vector(), name);
  CHECK(model->state_dict().at("classifier.0.weight").to_vector() == head_before);  // head untouched

  auto fresh = [] { return create_model("resnet50", small()); };
  {
    StateDict missing = tv;
    missing.erase("layer1.0.bn2.running_var");
    ConversionReport r;
    CHECK(throws_naming([&] { load_torchvision_backbone(*fresh(), "resnet50", missing, "r50.safetensors", r); },
                        "r50.safetensors: layer 'features.layer1.0.bn2' of resnet50 has no weights in the "
                        "file: tensor 'layer1.0.bn2.running_var' is missing (the model's "
                        "'features.layer1.0.bn2.running_var', shape [64])"));
  }
  {
    StateDict wrong = tv;
    wrong["layer1.0.conv2.weight"] = Tensor::zeros({64, 64, 1, 1});
    ConversionReport r;
    CHECK(throws_naming([&] { load_torchvision_backbone(*fresh(), "resnet50", wrong, "r50.safetensors", r); },
                        "layer 'features.layer1.0.conv2' of resnet50: 'layer1.0.conv2.weight' has shape "
                        "[64, 64, 1, 1] but the model expects [64, 64, 3, 3]"));
  }
  {
    StateDict extra = tv;
    extra["layer5.0.conv1.weight"] = Tensor::zeros({1});
    ConversionReport r;
    CHECK(throws_naming([&] { load_torchvision_backbone(*fresh(), "resnet50", extra, "r50.safetensors", r); },
                        "'layer5.0.conv1.weight' (shape [1]) has no place in resnet50"));
  }
  ConversionReport r;
  CHECK(throws_naming([&] {
          auto keras_model = create_model("resnet50_keras", small());
          load_torchvision_backbone(*keras_model, "resnet50_keras", tv, "r50.safetensors", r);
        }, "torchvision weights go into 'resnet50'"));
}

TEST_CASE("Keras VGG16 (Keras 1 names, chunk of a real file's layout): names, layout, biases") {
  KerasFile f;
  f.layers.push_back({"input_1", {}});
  const int convs[5] = {2, 2, 3, 3, 3};
  const int64_t widths[5] = {64, 128, 256, 512, 512};
  int64_t in = 3;
  Generator gen(3);
  for (int b = 1; b <= 5; ++b) {
    for (int i = 1; i <= convs[b - 1]; ++i) {
      const std::string name = "block" + std::to_string(b) + "_conv" + std::to_string(i);
      f.layers.push_back({name,
                          {{name + "_W_1:0", Tensor::normal({3, 3, in, widths[b - 1]}, 0, 1, gen)},
                           {name + "_b_1:0", Tensor::normal({widths[b - 1]}, 0, 1, gen)}}});
      in = widths[b - 1];
    }
    f.layers.push_back({"block" + std::to_string(b) + "_pool", {}});
  }
  f.layers.push_back({"fc1", {{"fc1_W_1:0", Tensor::zeros({2, 2})}}});  // an include_top file

  auto model = create_model("vgg16_keras", small());
  ConversionReport report;
  load_keras_backbone(*model, "vgg16_keras", f, "vgg16.h5", report);
  CHECK(report.tensors_loaded == 26);
  CHECK(report.ignored.size() == 1);
  // block3_conv2 is torchvision's features.12: weight[o][i][h][w] = kernel[h][w][i][o].
  const Tensor k = find_layer(f, "block3_conv2")->weights[0].value;
  const Tensor w = model->state_dict().at("features.12.weight");
  REQUIRE(w.shape() == Shape{256, 256, 3, 3});
  for (int64_t o : {0, 17, 255})
    for (int64_t i : {0, 101})
      for (int64_t h = 0; h < 3; ++h) CHECK(at4(w, o, i, h, 2) == at4(k, h, 2, i, o));
  CHECK(model->state_dict().at("features.12.bias").to_vector() ==
        find_layer(f, "block3_conv2")->weights[1].value.to_vector());

  auto fresh = [] { return create_model("vgg16_keras", small()); };
  {
    KerasFile g = f;
    find_layer(g, "block3_conv2")->weights.clear();
    ConversionReport r;
    CHECK(throws_naming([&] { load_keras_backbone(*fresh(), "vgg16_keras", g, "vgg16.h5", r); },
                        "vgg16.h5: layer 'features.12' of vgg16_keras has no weights in the file: "
                        "Keras layer 'block3_conv2' weight 'bias' is missing"));
  }
  {
    KerasFile g = f;
    find_layer(g, "block3_conv2")->weights[0].value = Tensor::zeros({3, 3, 128, 256});
    ConversionReport r;
    CHECK(throws_naming([&] { load_keras_backbone(*fresh(), "vgg16_keras", g, "vgg16.h5", r); },
                        "layer 'features.12' of vgg16_keras: Keras layer 'block3_conv2' weight "
                        "'block3_conv2_W_1:0' ([3, 3, 128, 256] in Keras's layout) has shape "
                        "[256, 128, 3, 3] but the model expects [256, 256, 3, 3]"));
  }
  {
    KerasFile g = f;
    g.layers.push_back({"block6_conv1", {{"block6_conv1_W_1:0", Tensor::zeros({3, 3, 512, 512})}}});
    ConversionReport r;
    CHECK(throws_naming([&] { load_keras_backbone(*fresh(), "vgg16_keras", g, "vgg16.h5", r); },
                        "Keras layer 'block6_conv1' (block6_conv1_W_1:0 [3, 3, 512, 512]) has no place in vgg16_keras"));
  }
  ConversionReport r;
  CHECK(throws_naming([&] { load_keras_backbone(*create_model("vgg16", small()), "vgg16", f, "vgg16.h5", r); },
                      "Keras weights go into the Keras variant 'vgg16_keras'"));
}

TEST_CASE("Keras MobileNet: depthwise layout, BatchNorm statistics, scale=False") {
  Generator gen(5);
  auto model = create_model("mobilenet_v1", small());
  KerasFile f = keras_mobilenet_v1_file(*model, gen);
  // scale=False on one BatchNorm: no gamma stored, so weight must become 1.
  auto& bn = find_layer(f, "conv_pw_3_bn")->weights;
  bn.erase(bn.begin());
  ConversionReport report;
  load_keras_backbone(*model, "mobilenet_v1", f, "mobilenet.h5", report);
  CHECK(report.ignored.size() == 1);  // conv_preds
  const StateDict s = model->state_dict();
  const Tensor dw = find_layer(f, "conv_dw_5")->weights[0].value;  // [3, 3, 256, 1]
  const Tensor w = s.at("features.conv_dw_5.weight");               // [256, 1, 3, 3]
  REQUIRE(w.shape() == Shape{256, 1, 3, 3});
  for (int64_t c : {0, 100, 255})
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t x = 0; x < 3; ++x) CHECK(at4(w, c, 0, h, x) == at4(dw, h, x, c, 0));
  const auto& stats = find_layer(f, "conv_dw_5_bn")->weights;
  CHECK(s.at("features.conv_dw_5_bn.weight").to_vector() == stats[0].value.to_vector());
  CHECK(s.at("features.conv_dw_5_bn.running_var").to_vector() == stats[3].value.to_vector());
  CHECK(s.at("features.conv_pw_3_bn.weight").to_vector() == std::vector<float>(128, 1.0f));

  KerasFile g = f;
  find_layer(g, "conv_dw_5")->weights[0].name = "conv_dw_5/kernel:0";  // a plain kernel in a depthwise layer
  ConversionReport r;
  CHECK(throws_naming([&] { load_keras_backbone(*create_model("mobilenet_v1", small()), "mobilenet_v1", g, "m.h5", r); },
                      "Keras layer 'conv_dw_5' weight 'conv_dw_5/kernel:0' does not fit layer "
                      "'features.conv_dw_5' of mobilenet_v1 (a depthwise convolution)"));
}

TEST_CASE("Keras .h5 reading: clear errors for what is not a Keras weights file") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string missing = (dir / "fer_no_such_weights.h5").string();
  if (!keras_h5_supported()) {
    MESSAGE("SKIPPED the HDF5 reading checks: this build has no HDF5 (libhdf5-dev)");
    CHECK(throws_naming([&] { read_keras_h5(missing); }, "unsupported in this build"));
    return;
  }
  CHECK(throws_naming([&] { read_keras_h5(missing); }, "fer_no_such_weights.h5: no such file"));
  const std::string text = (dir / ("fer_not_hdf5_" + std::to_string(::getpid()) + ".h5")).string();
  std::ofstream(text) << "this is not an HDF5 file";
  CHECK(throws_naming([&] { read_keras_h5(text); }, "not an HDF5 file"));
  std::filesystem::remove(text);
}
