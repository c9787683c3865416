// The backbone table and the pieces every backbone shares: the adapter in front, the pooling and
// the dense head behind (see models/backbones.h for the structure they promise).
#include "models/backbones.h"

namespace fer {

const std::vector<BackboneInfo>& backbone_infos() {
  using W = WeightsFlavor;
  static const std::vector<BackboneInfo> infos = {
      {"vgg16", "vgg16", W::torchvision, 32, 224, 512},
      {"vgg16_keras", "vgg16", W::keras, 32, 224, 512},
      {"resnet50", "resnet50", W::torchvision, 32, 224, 2048},
      {"resnet50_keras", "resnet50", W::keras, 32, 224, 2048},
      {"mobilenet_v2", "mobilenet_v2", W::torchvision, 32, 224, 1280},
      {"mobilenet_v2_keras", "mobilenet_v2", W::keras, 32, 224, 1280},
      {"mobilenet_v1", "mobilenet_v1", W::keras, 32, 224, 1024},
      {"inception_v3", "inception_v3", W::torchvision, 75, 299, 2048},
      {"inception_v3_keras", "inception_v3", W::keras, 75, 299, 2048},
  };
  return infos;
}

const BackboneInfo* backbone_info(const std::string& model_name) {
  for (const auto& info : backbone_infos())
    if (info.name == model_name) return &info;
  return nullptr;
}

namespace backbone_detail {

std::shared_ptr<Sequential> start_features(const ModelConfig& c, const std::string& model,
                                           int64_t min_input, InputNormalization norm) {
  FER_CHECK(c.input_size >= min_input, model, ": input_size ", c.input_size,
            " is below the smallest this architecture accepts (", min_input,
            "); the input adapter resizes the faces to input_size");
  FER_CHECK(c.in_channels == 1 || c.in_channels == 3, model, ": in_channels ", c.in_channels,
            " (the input adapter takes gray or RGB faces)");
  auto features = std::make_shared<Sequential>();
  features->add("adapter", std::make_shared<InputAdapter>(c.input_size, norm));
  return features;
}

std::shared_ptr<Module> finish(std::shared_ptr<Sequential> features, int64_t channels,
                               int64_t side, const ModelConfig& c, const std::string& model) {
  int64_t head_in = 0;
  if (c.head == "gap") {
    features->add("pool", std::make_shared<GlobalAvgPool>());
    head_in = channels;
  } else if (c.head == "flatten") {
    head_in = channels * side * side;
  } else {
    fail(model, ": unknown head '", c.head, "' (gap | flatten)");
  }
  for (int64_t h : c.hidden) FER_CHECK(h > 0, model, ": hidden layer size ", h, " must be positive");
  return std::make_shared<Classifier>(features, dense_head(head_in, c.hidden, c.num_classes, c.dropout));
}

int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad_total) {
  FER_CHECK(in + pad_total >= kernel, "window of ", kernel, " on a ", in,
            "-pixel map: the input is too small");
  return (in + pad_total - kernel) / stride + 1;
}

}  // namespace backbone_detail
}  // namespace fer
