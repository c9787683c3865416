// ResNet50 (He et al.): a 7x7 stem, then 3 + 4 + 6 + 3 Bottleneck blocks in four layers with
// 256, 512, 1024, 2048 output channels. Names are torchvision's (models/backbones.h).
//
// Bottleneck (expansion 4), y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + s(x)),
// s = downsample (1x1 conv + BN) on the first block of a layer, the identity elsewhere.
// torchvision (ResNet v1.5) puts a layer's stride 2 on conv2, the 3x3; Keras's ResNet50 (the
// original v1) on conv1 and the shortcut, both 1x1. The weights have the same shapes either way,
// so the flavour decides which network a converted file is loaded into.
#include "models/backbones.h"

namespace fer {

namespace {

class Bottleneck : public Module {
 public:
  Bottleneck(int64_t in, int64_t planes, int64_t stride, bool stride_on_1x1, float eps) {
    const int64_t s1 = stride_on_1x1 ? stride : 1, s3 = stride_on_1x1 ? 1 : stride;
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 1, s1, 0, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes, eps));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, s3, 1, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes, eps));
    conv3 = register_module("conv3", std::make_shared<Conv2d>(planes, planes * 4, 1, 1, 0, false));
    bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(planes * 4, eps));
    if (stride != 1 || in != planes * 4) {
      downsample = register_module("downsample", std::make_shared<Sequential>());
      downsample->add(std::make_shared<Conv2d>(in, planes * 4, 1, stride, 0, false));
      downsample->add(std::make_shared<BatchNorm2d>(planes * 4, eps));
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = bn1->relu_of((*conv1)(x));
    h = bn2->relu_of((*conv2)(h));
    h = (*bn3)((*conv3)(h));
    return relu(add(h, downsample ? (*downsample)(x) : x));
  }
  std::string describe() const override { return "Bottleneck()"; }

 private:
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;
};

}  // namespace

std::shared_ptr<Module> resnet50(const ModelConfig& c, WeightsFlavor flavor) {
  const bool keras = flavor == WeightsFlavor::keras;
  const std::string name = keras ? "resnet50_keras" : "resnet50";
  const float eps = backbone_detail::bn_eps(c, keras ? 1.001e-5f : 1e-5f);
  using backbone_detail::window_out;
  auto features = backbone_detail::start_features(
      c, name, 32, keras ? caffe_normalization() : imagenet_normalization());
  // Stem: conv 7x7/2 pad 3, BN, ReLU, max pool 3x3/2 pad 1. (Keras zero-pads before its pool
  // instead; after the ReLU every value is >= 0, so zeros and PyTorch's -inf padding agree.)
  features->add("conv1", std::make_shared<Conv2d>(3, 64, 7, 2, 3, false));
  features->add("bn1", std::make_shared<BatchNorm2d>(64, eps));
  features->add("relu", ReLU());
  features->add("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  int64_t side = window_out(window_out(c.input_size, 7, 2, 6), 3, 2, 2);
  const int64_t blocks[] = {3, 4, 6, 3};
  int64_t in = 64;
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t planes = 64 << layer, stride = layer == 0 ? 1 : 2;
    auto seq = std::make_shared<Sequential>();
    for (int64_t b = 0; b < blocks[layer]; ++b) {
      seq->add(std::make_shared<Bottleneck>(in, planes, b == 0 ? stride : 1, keras, eps));
      in = planes * 4;
    }
    features->add("layer" + std::to_string(layer + 1), seq);
    side = window_out(side, 1, stride, 0);  // 1x1/s or 3x3/s pad 1: the same size
  }
  return backbone_detail::finish(features, 2048, side, c, name);
}

}  // namespace fer
