// The model registry: every named architecture, the Classifier wrapper, the dense head and the
// FLOP counter.
#include "models/registry.h"

#include <functional>
#include <map>

#include "engine/autograd.h"
#include "layers/blocks.h"
#include "models/backbones.h"
#include "models/fer_cnn.h"

namespace fer {

Classifier::Classifier(std::shared_ptr<Module> f, std::shared_ptr<Module> c)
    : features(register_module("features", std::move(f))),
      classifier(register_module("classifier", std::move(c))) {}

Tensor Classifier::forward(const Tensor& x) { return (*classifier)((*features)(x).flatten(1)); }

std::shared_ptr<Sequential> dense_head(int64_t in, const std::vector<int64_t>& hidden,
                                       int64_t classes, float dropout) {
  auto head = std::make_shared<Sequential>();
  for (int64_t h : hidden) {
    head->add(std::make_shared<Linear>(in, h));
    head->add(ReLU());
    if (dropout > 0) head->add(std::make_shared<Dropout>(dropout));
    in = h;
  }
  head->add(std::make_shared<Linear>(in, classes));
  return head;
}

namespace {

using Factory = std::function<std::shared_ptr<Module>(const ModelConfig&)>;
const std::map<std::string, Factory>& registry() {
  using W = WeightsFlavor;
  static const std::map<std::string, Factory> models = {
      {"fer_vgg_small", fer_vgg_small},
      {"fer_vgg", fer_vgg},
      {"fer_seed_cnn", fer_seed_cnn},
      {"fer_resnet18", fer_resnet18},
      {"vgg16", [](const ModelConfig& c) { return vgg16(c, W::torchvision); }},
      {"vgg16_keras", [](const ModelConfig& c) { return vgg16(c, W::keras); }},
      {"resnet50", [](const ModelConfig& c) { return resnet50(c, W::torchvision); }},
      {"resnet50_keras", [](const ModelConfig& c) { return resnet50(c, W::keras); }},
      {"mobilenet_v2", [](const ModelConfig& c) { return mobilenet_v2(c, W::torchvision); }},
      {"mobilenet_v2_keras", [](const ModelConfig& c) { return mobilenet_v2(c, W::keras); }},
      {"mobilenet_v1", mobilenet_v1},
      {"inception_v3", [](const ModelConfig& c) { return inception_v3(c, W::torchvision); }},
      {"inception_v3_keras", [](const ModelConfig& c) { return inception_v3(c, W::keras); }},
  };
  return models;
}

}  // namespace

std::shared_ptr<Module> create_model(const std::string& name, const ModelConfig& config) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown model '", name, "' (known: ", known, ")");
  }
  return it->second(config);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, f] : registry()) names.push_back(name);
  return names;
}

int64_t forward_flops(Module& model, int64_t channels, int64_t size) {
  // A real forward pass of one zero image, with a hook that sees every layer it runs, however
  // deep: each convolution and Linear contributes 2 * (output elements) * (multiply-adds per
  // output element), the count of PyTorch's forward hooks on those layers.
  int64_t flops = 0;
  ForwardHook count([&](const Module& m, const Tensor&, const Tensor& y) {
    if (auto* conv = dynamic_cast<const Conv2d*>(&m))
      flops += 2 * y.numel() * conv->weight.numel() / conv->weight.size(0);
    else if (auto* flex = dynamic_cast<const FlexConv2d*>(&m))
      flops += 2 * y.numel() * flex->weight.numel() / flex->weight.size(0);
    else if (auto* lin = dynamic_cast<const Linear*>(&m))
      flops += 2 * y.numel() * lin->weight.size(1);
  });
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  model(Tensor::zeros({1, channels, size, size}));
  model.train(was_training);
  return flops;
}

}  // namespace fer
