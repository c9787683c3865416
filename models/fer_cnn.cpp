// The FER CNNs trained from scratch on 48x48 faces (see models/registry.h for the table).
#include "models/registry.h"

#include <functional>
#include <map>

#include "engine/autograd.h"

namespace fer {

Classifier::Classifier(std::shared_ptr<Module> f, std::shared_ptr<Module> c)
    : features(register_module("features", std::move(f))),
      classifier(register_module("classifier", std::move(c))) {}

Tensor Classifier::forward(const Tensor& x) { return classifier->forward(features->forward(x).flatten(1)); }

namespace {

// Stages of `convs_per_stage` x (conv3x3 - BN - ReLU) followed by 2x2 max-pooling.
std::shared_ptr<Sequential> vgg_trunk(int64_t in_channels, const std::vector<int64_t>& widths,
                                      int convs_per_stage, float stage_dropout) {
  auto trunk = std::make_shared<Sequential>();
  int64_t c = in_channels;
  for (int64_t width : widths) {
    for (int i = 0; i < convs_per_stage; ++i) {
      trunk->add(std::make_shared<Conv2d>(c, width, 3, 1, 1, /*bias=*/false));
      trunk->add(std::make_shared<BatchNorm2d>(width));
      trunk->add(ReLU());
      c = width;
    }
    trunk->add(std::make_shared<MaxPool2d>(2));
    if (stage_dropout > 0) trunk->add(std::make_shared<Dropout>(stage_dropout));
  }
  return trunk;
}

// Dense head: for each hidden size, Linear - ReLU - Dropout; then Linear to the classes.
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

std::shared_ptr<Module> fer_vgg(const ModelConfig& c, const std::vector<int64_t>& widths,
                                const std::vector<int64_t>& hidden) {
  FER_CHECK(c.input_size % 16 == 0, "fer_vgg: input size ", c.input_size,
            " must be a multiple of 16 (four 2x2 poolings)");
  const int64_t side = c.input_size / 16;
  return std::make_shared<Classifier>(
      vgg_trunk(c.in_channels, widths, 2, c.stage_dropout),
      dense_head(widths.back() * side * side, hidden, c.num_classes, c.dropout));
}

std::shared_ptr<Module> fer_seed_cnn(const ModelConfig& c) {
  auto f = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(c.in_channels, 32, 3, 1, 1), ReLU(),
      std::make_shared<Conv2d>(32, 64, 3, 1, 1), ReLU(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Dropout>(0.25f),
      std::make_shared<Conv2d>(64, 128, 3, 1, 1), ReLU(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Conv2d>(128, 128, 3, 1, 1), ReLU(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Dropout>(0.25f)});
  const int64_t side = c.input_size / 8;
  return std::make_shared<Classifier>(f, dense_head(128 * side * side, {1024}, c.num_classes, c.dropout));
}

using Factory = std::function<std::shared_ptr<Module>(const ModelConfig&)>;
const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> models = {
      {"fer_vgg_small", [](const ModelConfig& c) { return fer_vgg(c, {32, 64, 128, 256}, {256}); }},
      {"fer_vgg", [](const ModelConfig& c) { return fer_vgg(c, {64, 128, 256, 512}, {512, 256}); }},
      {"fer_seed_cnn", fer_seed_cnn},
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
  // Walk the module tree alongside a real forward pass of one zero image: each Conv2d and Linear
  // contributes 2 * (output elements) * (multiply-adds per output element).
  int64_t flops = 0;
  std::function<Tensor(Module&, const Tensor&)> run = [&](Module& m, const Tensor& x) -> Tensor {
    if (auto* seq = dynamic_cast<Sequential*>(&m)) {
      Tensor h = x;
      for (size_t i = 0; i < seq->size(); ++i) h = run(*(*seq)[i], h);
      return h;
    }
    if (auto* cls = dynamic_cast<Classifier*>(&m))
      return run(*cls->classifier, run(*cls->features, x).flatten(1));
    Tensor y = m.forward(x);
    if (auto* conv = dynamic_cast<Conv2d*>(&m))
      flops += 2 * y.numel() * conv->weight.numel() / conv->weight.size(0);
    else if (auto* lin = dynamic_cast<Linear*>(&m))
      flops += 2 * y.numel() * lin->weight.size(1);
    return y;
  };
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  run(model, Tensor::zeros({1, channels, size, size}));
  model.train(was_training);
  return flops;
}

}  // namespace fer
