// The ImageNet backbones (models/backbones.h): their building blocks, structure, torchvision
// names, parameter and FLOP counts, checkpoint metadata, and the proof that converted weights
// compute what the source framework computes:
//   - torchvision: tests/reference/backbones_ref.py builds each model with seeded random weights
//     and random BatchNorm statistics (Debian's python3-torchvision), saves its state dict as
//     safetensors and the features of a fixed gray input (after the same resize, gray -> RGB and
//     normalisation as our input adapter; "pooled" = global average of the last feature map);
//     we convert, run our `features` and require a relative error <= 1e-4.
//   - Keras: the same script writes Keras Applications .h5 files with h5py (Keras's layer and
//     weight names, Keras 1 and 2 styles) and runs Keras's computation written out in PyTorch
//     (TensorFlow "SAME" padding, biases, eps, scale=False, ...); same check.
// Small inputs keep it fast: 64x64 (72 for the Keras MobileNetV2, whose padding then meets an odd
// map), 75x75 for InceptionV3. Skips visibly without torch/torchvision, h5py or HDF5.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "apps/training/checkpoint.h"
#include "engine/autograd.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/backbones.h"
#include "models/convert/keras.h"
#include "models/convert/torchvision.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

using namespace fer;
using fer::testing::throws_naming;
namespace fs = std::filesystem;

namespace {

ModelConfig sized(int64_t size, const std::string& head = "gap") {
  ModelConfig c;
  c.input_size = size;
  c.head = head;
  return c;
}

Classifier& classifier_of(Module& m) { return dynamic_cast<Classifier&>(m); }

std::vector<std::string> child_names(const Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, child] : m.named_children()) names.push_back(name);
  return names;
}

int64_t features_params(Module& m) { return classifier_of(m).features->parameter_count(); }

// max |a - b| / max |b|
double relative_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.numel() == b.numel());
  const auto va = a.to_vector(), vb = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(va[i] - vb[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(vb[i])));
  }
  return diff / std::max(scale, 1e-30);
}

Tensor features_of(Module& model, const Tensor& x) {
  model.eval();
  NoGradGuard no_grad;
  return classifier_of(model).features->forward(x);
}

bool python_has(const std::string& modules) {
  return std::system(("/usr/bin/python3 -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0;
}

fs::path source_dir() {
  const char* src = std::getenv("FER_SOURCE_DIR");
  return src ? fs::path(src) : fs::current_path();
}

fs::path build_dir() {
  const char* b = std::getenv("FER_BUILD_DIR");
  return b ? fs::path(b) : fs::read_symlink("/proc/self/exe").parent_path();
}

struct Case {
  std::string source, model, engine_model;  // "torchvision" | "keras"; "resnet50"; "resnet50_keras"
  int64_t size;
  bool keras1 = false;
  std::string tag() const { return source + "_" + model + (keras1 ? "_keras1" : ""); }
  std::string arg() const { return source + ":" + model + ":" + std::to_string(size) + (keras1 ? ":keras1" : ""); }
};

const std::vector<Case>& torchvision_cases() {
  static const std::vector<Case> cases = {
      {"torchvision", "vgg16", "vgg16", 64},
      {"torchvision", "resnet50", "resnet50", 64},
      {"torchvision", "mobilenet_v2", "mobilenet_v2", 64},
      {"torchvision", "mobilenet_v1", "mobilenet_v1", 64},
      {"torchvision", "inception_v3", "inception_v3", 75}};
  return cases;
}
const std::vector<Case>& keras_cases() {
  static const std::vector<Case> cases = {
      {"keras", "vgg16", "vgg16_keras", 64},
      {"keras", "resnet50", "resnet50_keras", 64},
      {"keras", "resnet50", "resnet50_keras", 64, true},
      {"keras", "mobilenet_v2", "mobilenet_v2_keras", 72},
      {"keras", "mobilenet_v1", "mobilenet_v1", 64},
      {"keras", "inception_v3", "inception_v3_keras", 75}};
  return cases;
}

// The reference files, made once per run by backbones_ref.py; removed at exit.
struct Reference {
  fs::path dir;
  bool torchvision = false, keras = false, failed = false;
  std::string skip_torchvision, skip_keras;

  static Reference& get() {
    static Reference r;
    return r;
  }
  ~Reference() {
    if (!dir.empty()) fs::remove_all(dir);
  }

 private:
  Reference() {
    if (!python_has("torch, torchvision")) {
      skip_torchvision = skip_keras =
          "python3-torch / python3-torchvision are not installed (FER_WITH_TORCH=1 scripts/setup.sh)";
      return;
    }
    torchvision = true;
    if (!convert::keras_h5_supported())
      skip_keras = "this build has no HDF5 (libhdf5-dev), so .h5 files cannot be read";
    else if (!python_has("h5py"))
      skip_keras = "python3-h5py is not installed (FER_WITH_TORCH=1 scripts/setup.sh)";
    else
      keras = true;
    dir = fs::temp_directory_path() / ("fer_backbones_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string cmd = "/usr/bin/python3 " + (source_dir() / "tests/reference/backbones_ref.py").string() +
                      " " + dir.string();
    for (const Case& c : torchvision_cases()) cmd.append(" ").append(c.arg());
    if (keras)
      for (const Case& c : keras_cases()) cmd.append(" ").append(c.arg());
    if (std::system(cmd.c_str()) != 0) {
      torchvision = keras = false;
      failed = true;
    }
  }
};

struct IO {
  Tensor input, map, pooled;
};
IO load_io(const Case& c) {
  auto t = load_safetensors((Reference::get().dir / (c.tag() + ".io.safetensors")).string()).tensors;
  return {t.at("input"), t.at("map"), t.at("pooled")};
}

std::shared_ptr<Module> converted(const Case& c, const std::string& head) {
  const fs::path dir = Reference::get().dir;
  ModelConfig config = sized(c.size, head);
  convert::ConversionReport report;
  std::shared_ptr<Module> model;
  if (c.source == "torchvision") {
    const std::string file = (dir / (c.tag() + ".safetensors")).string();
    model = create_model(c.engine_model, config);
    convert::load_torchvision_backbone(*model, c.engine_model, load_safetensors(file).tensors, file, report);
  } else {
    const std::string file = (dir / (c.tag() + ".h5")).string();
    const convert::KerasFile keras = convert::read_keras_h5(file);
    config.bn_eps = convert::keras_bn_eps(c.engine_model, keras);
    model = create_model(c.engine_model, config);
    convert::load_keras_backbone(*model, c.engine_model, keras, file, report);
  }
  return model;
}

// features(x) without its final "pool": the last feature map (what head "flatten" passes on).
Tensor feature_map(Module& model, const Tensor& x) {
  model.eval();
  NoGradGuard no_grad;
  auto& features = dynamic_cast<Sequential&>(*classifier_of(model).features);
  Tensor h = x;
  for (size_t i = 0; i + 1 < features.size(); ++i) h = features[i]->forward(h);
  return h;
}

void check_against_reference(const Case& c) {
  const IO io = load_io(c);
  auto model = converted(c, "gap");
  const Tensor pooled = features_of(*model, io.input);
  REQUIRE(pooled.shape() == io.pooled.shape());
  const double err = relative_error(pooled, io.pooled);
  MESSAGE(c.tag() << " -> " << c.engine_model << " at " << c.size << "x" << c.size
                  << ": pooled features, max relative error " << err);
  CHECK(err <= 1e-4);
  // The whole last feature map: every spatial position, the borders' padding included.
  const Tensor map = feature_map(*model, io.input);
  REQUIRE(map.shape() == io.map.shape());
  const double map_err = relative_error(map, io.map);
  MESSAGE(c.tag() << ": feature map " << map.shape_str() << ", max relative error " << map_err);
  CHECK(map_err <= 1e-4);
}

int run_command(const std::string& cmd, std::string* output = nullptr) {
  const fs::path log = fs::temp_directory_path() / ("fer_cmd_" + std::to_string(::getpid()) + ".log");
  const int rc = std::system((cmd + " >" + log.string() + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  if (output) *output = ss.str();
  INFO("command: " << cmd << "\n" << ss.str());
  fs::remove(log);
  return rc;
}

}  // namespace

// ---- Building blocks ------------------------------------------------------------------------------

TEST_CASE("blocks: TensorFlow SAME padding, FlexConv2d, ZeroPad2d, AvgPool2dSame") {
  using P = std::array<int64_t, 2>;
  CHECK(tf_same_padding(224, 3, 2) == P{0, 1});  // even input, stride 2: one pixel after
  CHECK(tf_same_padding(7, 3, 2) == P{1, 1});
  CHECK(tf_same_padding(9, 7, 1) == P{3, 3});
  CHECK(tf_same_padding(8, 1, 2) == P{0, 0});

  Generator gen(3);
  Tensor x = Tensor::uniform({2, 3, 8, 8}, -1, 1, gen);
  FlexConv2d same(FlexConv2dConfig{3, 4, 3, 3, 2, 0, 0, true, 1, true});
  Conv2dOptions o;
  o.stride_h = o.stride_w = 2;
  const Tensor expected = conv2d(pad2d(x, 0, 1, 0, 1), same.weight, same.bias, o);
  CHECK(same.forward(x).to_vector() == expected.to_vector());
  CHECK(same.forward(x).shape() == Shape{2, 4, 4, 4});
  Tensor odd = Tensor::uniform({1, 3, 7, 7}, -1, 1, gen);  // odd: symmetric, as PyTorch's pad 1
  o.pad_h = o.pad_w = 1;
  CHECK(same.forward(odd).to_vector() == conv2d(odd, same.weight, same.bias, o).to_vector());
  FlexConv2d rect(FlexConv2dConfig{3, 2, 1, 7, 1, 0, 3, false, 1, false});
  CHECK(rect.weight.shape() == Shape{2, 3, 1, 7});
  CHECK(rect.forward(x).shape() == Shape{2, 2, 8, 8});
  CHECK(ZeroPad2d(0, 1, 2, 0).forward(x).shape() == Shape{2, 3, 9, 10});

  // TensorFlow's SAME average excludes the padding: a constant stays constant at the border
  // (PyTorch's count_include_pad gives 4/9 in the corners).
  AvgPool2dSame pool(3);
  const auto ones = pool.forward(Tensor::ones({1, 2, 5, 4})).to_vector();
  for (float v : ones) CHECK(v == doctest::Approx(1.0f));
  Tensor ramp = Tensor::from_vector({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
  // corner (0,0): mean of {1,2,4,5} = 3; middle (0,1): mean of {1,2,3,4,5,6} = 3.5
  const auto r = pool.forward(ramp).to_vector();
  CHECK(r[0] == doctest::Approx(3.0f));
  CHECK(r[1] == doctest::Approx(3.5f));
  CHECK(throws_naming([] { AvgPool2dSame(2); }, "odd"));
}

TEST_CASE("blocks: gradients of FlexConv2d (SAME, rectangular), AvgPool2dSame, InputAdapter") {
  using fer::testing::gradcheck;
  using fer::testing::random_input;
  FlexConv2d same(FlexConv2dConfig{2, 3, 3, 3, 2, 0, 0, true, 1, true});
  gradcheck("FlexConv2d tf_same", [&](const std::vector<Tensor>& in) { return same.forward(in[0]); },
            {random_input({2, 2, 6, 6}, 1), same.weight, same.bias});
  FlexConv2d rect(FlexConv2dConfig{2, 2, 3, 1, 1, 1, 0, false, 1, false});
  gradcheck("FlexConv2d 3x1", [&](const std::vector<Tensor>& in) { return rect.forward(in[0]); },
            {random_input({1, 2, 5, 4}, 2), rect.weight});
  AvgPool2dSame pool(3);
  gradcheck("AvgPool2dSame", [&](const std::vector<Tensor>& in) { return pool.forward(in[0]); },
            {random_input({2, 2, 5, 4}, 3)});
  InputAdapter adapter(7, imagenet_normalization());
  gradcheck("InputAdapter", [&](const std::vector<Tensor>& in) { return adapter.forward(in[0]); },
            {random_input({2, 1, 5, 5}, 4)});
}

TEST_CASE("blocks: the input adapter resizes, makes 3 channels and normalises, without state") {
  InputAdapter adapter(6, imagenet_normalization());
  CHECK(adapter.state_dict().empty());
  const Tensor gray = Tensor::full({1, 1, 4, 4}, 0.5f);
  const Tensor y = adapter.forward(gray);
  REQUIRE(y.shape() == Shape{1, 3, 6, 6});
  const auto v = y.to_vector();
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) CHECK(v[c * 36 + 7] == doctest::Approx((0.5f - mean[c]) / stdv[c]));
  // Caffe mode: an RGB input is fed as BGR, x*255 - mean.
  InputAdapter caffe(2, caffe_normalization());
  const Tensor rgb = Tensor::from_vector({1, 3, 2, 2}, {0.1f, 0.1f, 0.1f, 0.1f, 0.2f, 0.2f, 0.2f, 0.2f,
                                                        0.3f, 0.3f, 0.3f, 0.3f});
  const auto bgr = caffe.forward(rgb).to_vector();
  CHECK(bgr[0] == doctest::Approx(0.3f * 255 - 103.939f).epsilon(1e-4));
  CHECK(bgr[4] == doctest::Approx(0.2f * 255 - 116.779f).epsilon(1e-4));
  CHECK(bgr[8] == doctest::Approx(0.1f * 255 - 123.68f).epsilon(1e-4));
  CHECK(InputAdapter(2, tf_normalization()).forward(Tensor::ones({1, 1, 2, 2})).to_vector() ==
        std::vector<float>(12, 1.0f));
  CHECK(throws_naming([&] { adapter.forward(Tensor::zeros({1, 2, 4, 4})); }, "[1, 2, 4, 4]"));
  Sequential seq;
  seq.add("a", std::make_shared<Identity>());
  CHECK(throws_naming([&] { seq.add("a", std::make_shared<Identity>()); }, "two children named 'a'"));
}

// ---- Structure ------------------------------------------------------------------------------------

TEST_CASE("backbones: features = [adapter, torchvision's blocks, pool], names and sizes as torchvision") {
  auto vgg = create_model("vgg16", sized(64));
  auto names = child_names(*classifier_of(*vgg).features);
  REQUIRE(names.size() == 33);
  CHECK(names.front() == "adapter");
  CHECK(names[1] == "0");
  CHECK(names[31] == "30");
  CHECK(names.back() == "pool");
  CHECK(features_params(*vgg) == 14714688);  // torchvision vgg16().features
  CHECK(vgg->state_dict().count("features.28.bias"));

  auto resnet = create_model("resnet50", sized(64));
  CHECK(child_names(*classifier_of(*resnet).features) ==
        std::vector<std::string>{"adapter", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                 "layer3", "layer4", "pool"});
  CHECK(features_params(*resnet) == 23508032);  // torchvision resnet50 without fc
  const StateDict rs = resnet->state_dict();
  for (const char* n : {"features.layer1.0.downsample.0.weight", "features.layer1.0.downsample.1.running_var",
                        "features.layer4.2.conv3.weight", "features.layer3.5.bn2.num_batches_tracked"})
    CHECK_MESSAGE(rs.count(n), n);
  CHECK(rs.at("features.layer2.0.conv2.weight").shape() == Shape{128, 128, 3, 3});

  auto mnv2 = create_model("mobilenet_v2", sized(64));
  CHECK(features_params(*mnv2) == 2223872);
  CHECK(mnv2->state_dict().count("features.1.conv.0.0.weight"));
  CHECK(mnv2->state_dict().count("features.17.conv.3.running_mean"));
  CHECK(mnv2->state_dict().at("features.18.0.weight").shape() == Shape{1280, 320, 1, 1});

  auto inc = create_model("inception_v3", sized(75));
  CHECK(features_params(*inc) == 21785568);  // torchvision without fc and AuxLogits
  const StateDict is = inc->state_dict();
  CHECK(is.at("features.Mixed_6b.branch7x7_2.conv.weight").shape() == Shape{128, 128, 1, 7});
  CHECK(is.count("features.Mixed_7c.branch3x3dbl_3b.bn.running_var"));
  CHECK(throws_naming([] { create_model("inception_v3", sized(64)); }, "below the smallest"));

  auto mnv1 = create_model("mobilenet_v1", sized(64));
  CHECK(features_params(*mnv1) == 3206976);  // Keras MobileNet(alpha=1) trainable weights
  CHECK(mnv1->state_dict().at("features.conv_dw_13.weight").shape() == Shape{1024, 1, 3, 3});
  CHECK(child_names(*classifier_of(*mnv1).features)[1] == "conv1_pad");

  for (const auto& info : backbone_infos()) {  // no state in the adapter; outputs as documented
    auto m = create_model(info.name, sized(info.min_input));
    CHECK(classifier_of(*m).features->child("adapter")->state_dict().empty());
    CHECK(features_of(*m, Tensor::zeros({1, 1, 48, 48})).shape() == Shape{1, info.feature_channels});
  }
}

TEST_CASE("backbones: heads from head/hidden/dropout, and FLOPs as torchvision's convolutions") {
  ModelConfig c = sized(64, "flatten");
  c.hidden = {32, 16};
  c.dropout = 0.25f;
  auto vgg = create_model("vgg16", c);
  const StateDict s = vgg->state_dict();
  CHECK(s.at("classifier.0.weight").shape() == Shape{32, 512 * 2 * 2});  // 64 -> 2x2 map
  CHECK(s.at("classifier.3.weight").shape() == Shape{16, 32});          // Linear ReLU Dropout
  CHECK(s.at("classifier.6.weight").shape() == Shape{7, 16});
  CHECK(vgg->forward(Tensor::zeros({2, 1, 48, 48})).shape() == Shape{2, 7});
  c.head = "max";
  CHECK(throws_naming([&] { create_model("resnet50", c); }, "unknown head 'max'"));

  // 2 x multiply-adds of every convolution, as counted by forward hooks on PyTorch's Conv2d layers
  // (torchvision's models; mobilenet_v1: the PyTorch twin in backbones_ref.py). ResNet50 at
  // ImageNet size is the familiar 4.09 GMAC; the others at small sizes to keep the test fast.
  auto flops = [](const std::string& name, int64_t size) {
    auto m = create_model(name, sized(size));
    return forward_flops(*classifier_of(*m).features, 3, size);
  };
  CHECK(flops("resnet50", 224) == 8174272512);
  CHECK(flops("resnet50", 64) == 667287552);
  CHECK(flops("vgg16", 64) == 2505572352);
  CHECK(flops("mobilenet_v2", 64) == 48897024);
  CHECK(flops("inception_v3", 75) == 402955456);
  CHECK(flops("mobilenet_v1", 64) == 92688384);
  // Keras's ResNet50 strides the first 1x1 of a stage, not the 3x3: both then run at the halved
  // size, so it does less work than torchvision's.
  CHECK(flops("resnet50_keras", 64) < 667287552);
  auto m = create_model("resnet50", sized(64));
  CHECK(forward_flops(*m, 1, 48) == 667287552 + 2 * 2048 * 7);  // + the head, from a 48x48 face
}

TEST_CASE("checkpoints keep head, hidden and bn_eps; older checkpoints take the defaults") {
  ModelSpec spec;
  spec.name = "resnet50_keras";
  spec.config.input_size = 96;
  spec.config.head = "flatten";
  spec.config.hidden = {1024, 256};
  spec.config.bn_eps = 1.001e-5f;
  spec.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  const ModelSpec back = spec_from_metadata(spec_to_metadata(spec), "x");
  CHECK(back.config.head == "flatten");
  CHECK(back.config.hidden == std::vector<int64_t>{1024, 256});
  CHECK(back.config.bn_eps == 1.001e-5f);
  CHECK(back.config.input_size == 96);

  ModelSpec plain;
  plain.class_names = spec.class_names;
  Metadata old = spec_to_metadata(plain);
  old.erase("head");
  old.erase("hidden");
  old.erase("bn_eps");
  const ModelSpec def = spec_from_metadata(old, "old.safetensors");
  CHECK(def.config.head == "gap");
  CHECK(def.config.hidden.empty());
  CHECK(def.config.bn_eps == 0.0f);
  Metadata bad = spec_to_metadata(spec);
  bad["hidden"] = "1024,x";
  CHECK(throws_naming([&] { spec_from_metadata(bad, "bad.safetensors"); }, "bad.safetensors: metadata 'hidden'"));
  // Whole numbers are range-checked before the cast (1e300 or nan cast to an integer is UB).
  for (const char* key : {"num_classes", "in_channels", "input_size"})
    for (const char* value : {"1e300", "nan", "-3", "2.5", "inf"}) {
      Metadata crafted = spec_to_metadata(spec);
      crafted[key] = value;
      INFO(key << " = " << value);
      CHECK(throws_naming([&] { spec_from_metadata(crafted, "crafted.safetensors"); },
                          std::string("crafted.safetensors: metadata '") + key + "' must be a whole number"));
    }
  {  // an input side that would make one forward pass allocate gigabytes
    Metadata crafted = spec_to_metadata(spec);
    crafted["input_size"] = "65536";
    CHECK(throws_naming([&] { spec_from_metadata(crafted, "crafted.safetensors"); },
                        "crafted.safetensors: metadata 'input_size' must be a whole number in [1, 1024]"));
  }
  // So are the other numbers, where they are read (the layer that would trip over them later
  // cannot name the file).
  const std::pair<const char*, const char*> out_of_range[] = {
      {"dropout", "1"}, {"dropout", "-0.1"}, {"stage_dropout", "nan"}, {"bn_eps", "-1e-5"},
      {"preprocess.mean", "inf"}, {"preprocess.std", "0"}};
  for (const auto& [key, value] : out_of_range) {
    Metadata crafted = spec_to_metadata(spec);
    crafted[key] = value;
    INFO(key << " = " << value);
    CHECK(throws_naming([&] { spec_from_metadata(crafted, "crafted.safetensors"); },
                        std::string("crafted.safetensors: metadata '") + key + "' must be in"));
  }

  // A saved backbone checkpoint rebuilds the same network (bn_eps included).
  const fs::path path = fs::temp_directory_path() / ("fer_bb_ckpt_" + std::to_string(::getpid()) + ".safetensors");
  ModelSpec small = spec;
  small.config.input_size = 32;
  small.config.hidden = {8};
  auto model = create_model(small.name, small.config);
  save_checkpoint(path.string(), *model, small);
  LoadedCheckpoint loaded = load_checkpoint(path.string());
  CHECK(loaded.spec.config.bn_eps == 1.001e-5f);
  auto* bn = dynamic_cast<BatchNorm*>(classifier_of(*loaded.model).features->child("bn1").get());
  REQUIRE(bn);
  CHECK(bn->eps == 1.001e-5f);
  const Tensor x = Tensor::full({1, 1, 48, 48}, 0.3f);
  model->eval();
  NoGradGuard no_grad;
  CHECK(loaded.model->forward(x).to_vector() == model->forward(x).to_vector());
  fs::remove(path);
}

// ---- Converted weights against the reference frameworks -------------------------------------------

TEST_CASE("torchvision weights: our backbones compute what torchvision computes") {
  Reference& ref = Reference::get();
  REQUIRE_MESSAGE(!ref.failed, "tests/reference/backbones_ref.py failed (its output is above)");
  if (!ref.torchvision) {
    MESSAGE("SKIPPED: " << ref.skip_torchvision);
    return;
  }
  for (const Case& c : torchvision_cases()) {
    SUBCASE(c.tag().c_str()) { check_against_reference(c); }
  }
}

TEST_CASE("Keras .h5 weights: our Keras variants compute what Keras computes") {
  Reference& ref = Reference::get();
  REQUIRE_MESSAGE(!ref.failed, "tests/reference/backbones_ref.py failed (its output is above)");
  if (!ref.keras) {
    MESSAGE("SKIPPED: " << ref.skip_keras);
    return;
  }
  for (const Case& c : keras_cases()) {
    SUBCASE(c.tag().c_str()) { check_against_reference(c); }
  }
}

// The tests above can fail: the same weights in the other flavour of the architecture (where
// torchvision and Keras compute differently: strides, padding, pooling, input normalisation) must
// be far from the reference, or the comparisons would not see those details.
TEST_CASE("the parity checks see the flavour differences (negative controls)") {
  Reference& ref = Reference::get();
  REQUIRE_MESSAGE(!ref.failed, "tests/reference/backbones_ref.py failed (its output is above)");
  if (!ref.torchvision) {
    MESSAGE("SKIPPED: " << ref.skip_torchvision);
    return;
  }
  struct Control {
    const Case& c;
    std::string other;
    float bn_eps;  // of the source, so that only the flavour differs
  };
  std::vector<Control> controls = {{torchvision_cases()[1], "resnet50_keras", 1e-5f},
                                   {torchvision_cases()[2], "mobilenet_v2_keras", 1e-5f},
                                   {torchvision_cases()[4], "inception_v3_keras", 1e-3f}};
  if (ref.keras) {
    controls.push_back({keras_cases()[0], "vgg16", 0.0f});
    controls.push_back({keras_cases()[1], "resnet50", 1.001e-5f});
    controls.push_back({keras_cases()[3], "mobilenet_v2", 1e-3f});
    controls.push_back({keras_cases()[5], "inception_v3", 1e-3f});
  }
  for (const Control& k : controls) {
    const IO io = load_io(k.c);
    auto right = converted(k.c, "gap");
    ModelConfig config = sized(k.c.size);
    config.bn_eps = k.bn_eps;
    auto wrong = create_model(k.other, config);
    wrong->load_state_dict(right->state_dict());
    const double err = relative_error(feature_map(*wrong, io.input), io.map);
    MESSAGE(k.c.tag() << " weights in " << k.other << ": max relative error " << err);
    CHECK(err > 1e-2);
  }
}

TEST_CASE("fer_convert: files -> checkpoints that fer_train --init loads; clear failures") {
  Reference& ref = Reference::get();
  REQUIRE_MESSAGE(!ref.failed, "tests/reference/backbones_ref.py failed (its output is above)");
  const fs::path app = build_dir() / "fer_convert";
  if (!ref.torchvision || !fs::exists(app)) {
    MESSAGE("SKIPPED: " << (!ref.torchvision ? ref.skip_torchvision : app.string() + " is not built"));
    return;
  }
  const fs::path out = ref.dir / "converted.safetensors";
  const Case& r50 = torchvision_cases()[1];
  std::string log;
  REQUIRE(run_command(app.string() + " --weights " + (ref.dir / (r50.tag() + ".safetensors")).string() +
                          " --model resnet50 --input-size 64 --hidden 32 --out " + out.string(), &log) == 0);
  CHECK(log.find("ignored 2") != std::string::npos);  // fc.weight, fc.bias
  LoadedCheckpoint loaded = load_checkpoint(out.string());
  CHECK(loaded.spec.name == "resnet50");
  CHECK(loaded.spec.config.input_size == 64);
  CHECK(loaded.spec.config.hidden == std::vector<int64_t>{32});
  CHECK(loaded.spec.class_names.size() == 7);
  CHECK(loaded.file.metadata.at("converted_format") == "torchvision");
  const IO io = load_io(r50);
  CHECK(relative_error(features_of(*loaded.model, io.input), io.pooled) <= 1e-4);

  std::string error;
  CHECK(run_command(app.string() + " --weights " + (ref.dir / (r50.tag() + ".safetensors")).string() +
                        " --model vgg16 --out " + (ref.dir / "wrong.safetensors").string(), &error) != 0);
  CHECK(error.find("'bn1.bias' (shape [64]) has no place in vgg16") != std::string::npos);
  CHECK(!fs::exists(ref.dir / "wrong.safetensors"));

  if (!ref.keras) {
    MESSAGE("SKIPPED the Keras part: " << ref.skip_keras);
    return;
  }
  // The Keras 1 era ResNet50: converted into resnet50_keras with its BatchNorm eps recorded.
  const Case& old = keras_cases()[2];
  REQUIRE(run_command(app.string() + " --weights " + (ref.dir / (old.tag() + ".h5")).string() +
                          " --model resnet50 --input-size 64 --out " + out.string(), &log) == 0);
  LoadedCheckpoint keras = load_checkpoint(out.string());
  CHECK(keras.spec.name == "resnet50_keras");
  CHECK(keras.spec.config.bn_eps == 1e-3f);
  const IO kio = load_io(old);
  CHECK(relative_error(features_of(*keras.model, kio.input), kio.pooled) <= 1e-4);
  // An HDF5 file that is not a Keras weights file.
  const fs::path empty = ref.dir / "empty.h5";
  REQUIRE(std::system(("/usr/bin/python3 -c \"import h5py; h5py.File('" + empty.string() +
                       "', 'w').create_group('x')\"").c_str()) == 0);
  CHECK(throws_naming([&] { convert::read_keras_h5(empty.string()); }, "no 'layer_names' attribute"));
}

TEST_CASE("a checkpoint's metadata cannot make loading allocate more than its tensors fill") {
  // Every model of the registry builds within the budget its own weights give it.
  for (const std::string& name : model_names()) {
    ModelSpec spec;
    spec.name = name;
    spec.config.input_size = name.rfind("fer_", 0) == 0 ? 48 : 75;  // InceptionV3's smallest
    size_t bytes = 0;
    for (const auto& [key, t] : create_model(name, spec.config)->state_dict())
      bytes += static_cast<size_t>(t.numel()) * sizeof(float);
    INFO(name << ": " << bytes << " bytes of weights");
    CHECK_NOTHROW(build_model(spec, bytes, "x.safetensors"));
  }

  // A crafted file: a real small checkpoint whose metadata asks for two hidden layers of 10^8
  // units (10^16 weights) is an error naming the file before any of it is allocated.
  const fs::path path = fs::temp_directory_path() / ("fer_bb_budget_" + std::to_string(::getpid()) + ".safetensors");
  ModelSpec spec;
  spec.name = "mobilenet_v2";
  spec.config.input_size = 32;
  spec.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  save_checkpoint(path.string(), *create_model(spec.name, spec.config), spec);
  SafetensorsFile file = load_safetensors(path.string());
  file.metadata["hidden"] = "100000000,100000000";
  save_safetensors(path.string(), file.tensors, file.metadata);
  CHECK(throws_naming([&] { load_checkpoint(path.string()); },
                      path.string() + ": its metadata describes a 'mobilenet_v2' larger than the file's tensors"));
  fs::remove(path);
}
