// onnx_export_models OUT_DIR [name...]: the engine's side of the ONNX test (CTest onnx_export).
//
// Exports every model of the registry (models/registry.h) at small sizes, plus the shipped
// checkpoint with its calibration, into OUT_DIR, and writes beside each <case>.onnx what the
// engine computes on a fixed seeded batch, for tests/onnx/compare.mjs to check onnxruntime
// against:
//   <case>.input.f32          the batch, float32 little-endian, row-major [N, C, S, S]
//   <case>.logits.f32         the engine's logits [N, classes]
//   <case>.probabilities.f32  softmax(logits / T), when the graph has that output
//   manifest.json             [{"name", "onnx", "input": {"file", "shape"},
//                               "outputs": {"logits": {"file", "shape"}, ...}, "export_seconds"}]
// Weights are seeded random, and every BatchNorm gets random gamma/beta and running statistics
// that are not 0 and 1 (a pass in training mode over a random batch sets them to real batch
// statistics, which keeps the activations of deep nets near unit scale, then they are perturbed),
// so a mistake in how BatchNormalization's inputs are wired or folded shows in the logits; the
// last dense layer is then scaled to make the logits about 2 at most (scale_logits).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "apps/training/checkpoint.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "layers/blocks.h"
#include "models/backbones.h"
#include "models/export/onnx_export.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string name, model;
  ModelConfig config;
  int64_t side = 48;  // the graph input's side
};

// Each registry model once, at the smallest sizes that still cover what it does: backbones at
// their minimum input (the adapter's resize then shrinks the 48x48 faces), some enlarging
// (mobilenet_v2, inception_v3), one not resizing at all (resnet50_keras), one on RGB input
// (vgg16_keras: the BGR channel order of "caffe"), one with a flattened head and a hidden layer
// (vgg16: Flatten, Dropout, two Gemm).
std::vector<Case> registry_cases() {
  auto config = [](int64_t input_size, int64_t in_channels = 1) {
    ModelConfig c;
    c.input_size = input_size;
    c.in_channels = in_channels;
    return c;
  };
  std::vector<Case> cases = {
      {"fer_seed_cnn", "fer_seed_cnn", config(48)},
      {"fer_vgg_small", "fer_vgg_small", config(48)},
      {"fer_vgg", "fer_vgg", config(40), 40},
      {"fer_resnet18", "fer_resnet18", config(32), 32},
      {"vgg16", "vgg16", config(32)},
      {"vgg16_keras", "vgg16_keras", config(32, 3)},
      {"resnet50", "resnet50", config(32)},
      {"resnet50_keras", "resnet50_keras", config(48)},
      {"mobilenet_v2", "mobilenet_v2", config(64)},
      {"mobilenet_v2_keras", "mobilenet_v2_keras", config(32)},
      {"mobilenet_v1", "mobilenet_v1", config(32)},
      {"inception_v3", "inception_v3", config(75)},
      {"inception_v3_keras", "inception_v3_keras", config(75)},
  };
  cases[4].config.head = "flatten";
  cases[4].config.hidden = {32};
  // Every model of the registry must have a case: a new model gets exported by this test too.
  for (const std::string& name : model_names()) {
    bool covered = false;
    for (const Case& c : cases) covered = covered || c.model == name;
    FER_CHECK(covered, "tests/onnx/export_models.cpp: registry model '", name, "' has no case");
  }
  return cases;
}

void for_each_module(Module& m, const std::function<void(Module&)>& fn) {
  fn(m);
  for (auto& [name, child] : m.named_children()) for_each_module(*child, fn);
}

// Random gamma/beta, then running statistics of a real batch (momentum 1: the batch's own),
// perturbed so that they are not exactly what any one batch gives.
void randomize_batchnorm(Module& model, int64_t channels, int64_t side, Generator& gen) {
  std::vector<BatchNorm*> norms;
  for_each_module(model, [&](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm*>(&m)) norms.push_back(bn);
  });
  NoGradGuard no_grad;
  for (BatchNorm* bn : norms) {
    const Shape s = bn->weight.shape();
    bn->weight.copy_(Tensor::uniform(s, 0.5f, 1.0f, gen));
    bn->bias.copy_(Tensor::uniform(s, 0.3f, 0.9f, gen));
    bn->momentum = 1.0f;
  }
  model.train();
  model(Tensor::uniform({16, channels, side, side}, 0.0f, 1.0f, gen));
  model.eval();
  for (BatchNorm* bn : norms) {
    const Shape s = bn->running_mean.shape();
    std::vector<float> mean = bn->running_mean.to_vector(), var = bn->running_var.to_vector();
    const std::vector<float> shift = Tensor::uniform(s, -0.2f, 0.2f, gen).to_vector();
    const std::vector<float> stretch = Tensor::uniform(s, 0.7f, 1.3f, gen).to_vector();
    // A channel with almost no variance in the batch (a ReLU that is nearly always off) would
    // divide by almost 0: amplified rounding, not a test of the export. Floor it at a tenth of
    // the layer's mean variance.
    double mean_var = 0;
    for (float v : var) mean_var += v / static_cast<double>(var.size());
    for (size_t c = 0; c < mean.size(); ++c) {
      var[c] = std::max(var[c], static_cast<float>(0.1 * mean_var) + 1e-3f);
      mean[c] += shift[c] * std::sqrt(var[c]);
      var[c] *= stretch[c];
    }
    bn->running_mean.copy_(Tensor::from_vector(s, mean));
    bn->running_var.copy_(Tensor::from_vector(s, var));
    bn->momentum = 0.1f;
  }
}

// Scales the last dense layer so that the largest |logit| on a random batch is about 2: the
// tolerance is absolute below 1, and a net whose logits were all 0.01 (no batchnorm to keep the
// scale, as vgg16 and fer_seed_cnn) would pass it whatever the export did.
void scale_logits(Module& model, int64_t channels, int64_t side, Generator& gen) {
  Linear* last = nullptr;
  NoGradGuard no_grad;
  model.eval();
  Tensor logits;
  {
    ForwardHook find_last([&](const Module& m, const Tensor&, const Tensor&) {
      if (auto* linear = dynamic_cast<const Linear*>(&m)) last = const_cast<Linear*>(linear);
    });
    logits = model(Tensor::uniform({8, channels, side, side}, 0.0f, 1.0f, gen));
  }
  FER_CHECK(last, "the model has no Linear layer");
  float largest = 0;
  for (float v : logits.to_vector()) largest = std::max(largest, std::abs(v));
  const float factor = 2.0f / largest;
  last->weight.copy_(scale(last->weight, factor));
  if (last->bias.defined()) last->bias.copy_(scale(last->bias, factor));
}

void write_floats(const fs::path& path, const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  FER_CHECK(f.good(), path.string(), ": cannot write");
}

nlohmann::json tensor_entry(const std::string& file, const Tensor& t) {
  return {{"file", file}, {"shape", t.shape()}};
}

// Exports `model`, runs it on a seeded batch of 3 and writes both; returns the manifest entry.
nlohmann::json export_case(const std::string& name, Module& model, int64_t channels, int64_t side,
                           float temperature, const fs::path& dir, const std::string& metadata_model) {
  OnnxExportOptions options;
  options.input_shape = {1, channels, side, side};
  options.temperature = temperature;
  options.graph_name = name;
  options.metadata = {{"model", metadata_model}};
  const auto start = std::chrono::steady_clock::now();
  const OnnxExportResult result = export_onnx(model, options);
  write_file_atomically((dir / (name + ".onnx")).string(), result.bytes);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Generator gen(0xFACE);
  const Tensor input = Tensor::uniform({3, channels, side, side}, 0.0f, 1.0f, gen);
  NoGradGuard no_grad;
  model.eval();
  const Tensor logits = model(input);
  write_floats(dir / (name + ".input.f32"), input);
  write_floats(dir / (name + ".logits.f32"), logits);
  nlohmann::json outputs = {{"logits", tensor_entry(name + ".logits.f32", logits)}};
  if (temperature > 0) {
    const Tensor probs = softmax(scale(logits, 1.0f / temperature));
    write_floats(dir / (name + ".probabilities.f32"), probs);
    outputs["probabilities"] = tensor_entry(name + ".probabilities.f32", probs);
  }
  int nodes = 0;
  for (const auto& [op, n] : result.node_counts) nodes += n;
  std::printf("%-20s input [N, %lld, %lld, %lld]  %4d nodes  %8.2f M params  %7.1f MB  export %.2f s\n",
              name.c_str(), static_cast<long long>(channels), static_cast<long long>(side),
              static_cast<long long>(side), nodes, result.parameter_count / 1e6,
              result.bytes.size() / 1e6, seconds);
  std::fflush(stdout);
  return {{"name", name},
          {"onnx", name + ".onnx"},
          {"input", tensor_entry(name + ".input.f32", input)},
          {"outputs", outputs},
          {"export_seconds", seconds},
          {"bytes", result.bytes.size()}};
}

int run(int argc, char** argv) {
  FER_CHECK(argc >= 2, "usage: onnx_export_models OUT_DIR [case...]");
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  std::vector<std::string> only(argv + 2, argv + argc);
  auto wanted = [&](const std::string& name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  nlohmann::json manifest = nlohmann::json::array();
  uint64_t seed = 1;
  for (const Case& c : registry_cases()) {
    ++seed;
    if (!wanted(c.name)) continue;
    manual_seed(seed);
    auto model = create_model(c.model, c.config);
    Generator gen(seed);
    randomize_batchnorm(*model, c.config.in_channels, c.side, gen);
    scale_logits(*model, c.config.in_channels, c.side, gen);
    manifest.push_back(export_case(c.name, *model, c.config.in_channels, c.side, 0.0f, dir, c.model));
  }
  // The shipped checkpoint, as fer_convert --to onnx --checkpoint exports it: with its calibration.
  if (wanted("pretrained_fer_vgg_small")) {
    const std::string path = locate_checkpoint("models/pretrained/fer_vgg_small.safetensors");
    LoadedCheckpoint ck = load_checkpoint(path);
    const double temperature = calibration_temperature(ck.file.metadata, path);
    manifest.push_back(export_case("pretrained_fer_vgg_small", *ck.model, ck.spec.config.in_channels,
                                   ck.spec.config.input_size, static_cast<float>(temperature), dir,
                                   ck.spec.name));
  }
  std::ofstream(dir / "manifest.json") << manifest.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_export_models: %s\n", e.what());
    return 1;
  }
}
