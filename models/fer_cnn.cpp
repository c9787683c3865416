// The FER CNNs trained from scratch on 48x48 faces (see models/registry.h for the table).
#include "models/fer_cnn.h"

namespace fer {

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

std::shared_ptr<Module> vgg_like(const ModelConfig& c, const std::vector<int64_t>& widths,
                                 const std::vector<int64_t>& hidden) {
  FER_CHECK(c.input_size >= 16, "fer_vgg: input size ", c.input_size,
            " is too small for four 2x2 poolings (at least 16)");
  int64_t side = c.input_size;
  for (int i = 0; i < 4; ++i) side /= 2;  // each pooling floors, as PyTorch's: 40 -> 20, 10, 5, 2
  return std::make_shared<Classifier>(
      vgg_trunk(c.in_channels, widths, 2, c.stage_dropout),
      dense_head(widths.back() * side * side, hidden, c.num_classes, c.dropout));
}

}  // namespace

std::shared_ptr<Module> fer_vgg_small(const ModelConfig& c) { return vgg_like(c, {32, 64, 128, 256}, {256}); }
// Khaireddin and Chen's VGGNet (2021): the widths of VGG, two dense layers of 4096.
std::shared_ptr<Module> fer_vgg(const ModelConfig& c) { return vgg_like(c, {64, 128, 256, 512}, {4096, 4096}); }

namespace {
// ResNet's basic block (He et al. 2016): y = relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x)), both
// convolutions 3x3, the first with the block's stride; s is a 1x1 convolution + BN when the
// stride or the width changes, the identity otherwise.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, stride, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(out));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, 1, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", std::make_shared<Sequential>());
      downsample->add(std::make_shared<Conv2d>(in, out, 1, stride, 0, false));
      downsample->add(std::make_shared<BatchNorm2d>(out));
    }
  }
  Tensor forward(const Tensor& x) override {
    const Tensor h = (*bn2)((*conv2)(bn1->relu_of((*conv1)(x))));
    return relu(add(h, downsample ? (*downsample)(x) : x));
  }
  std::string describe() const override { return "BasicBlock()"; }

 private:
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;
};
}  // namespace

// ResNet-18 for small faces, as CIFAR-style ResNets adapt it: a 3x3 stride-1 stem without max
// pooling (a 48x48 face keeps its detail), four layers of two basic blocks with 64, 128, 256,
// 512 channels and strides 1, 2, 2, 2 (48 -> 48, 24, 12, 6), global average pooling, one dense
// layer to the classes.
std::shared_ptr<Module> fer_resnet18(const ModelConfig& c) {
  auto features = std::make_shared<Sequential>();
  features->add("conv1", std::make_shared<Conv2d>(c.in_channels, 64, 3, 1, 1, false));
  features->add("bn1", std::make_shared<BatchNorm2d>(64));
  features->add("relu", ReLU());
  int64_t in = 64;
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t width = 64 << layer, stride = layer == 0 ? 1 : 2;
    auto blocks = std::make_shared<Sequential>();
    blocks->add(std::make_shared<BasicBlock>(in, width, stride));
    blocks->add(std::make_shared<BasicBlock>(width, width, 1));
    features->add("layer" + std::to_string(layer + 1), blocks);
    in = width;
  }
  features->add("avgpool", std::make_shared<GlobalAvgPool>());
  return std::make_shared<Classifier>(features, dense_head(512, {}, c.num_classes, c.dropout));
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

}  // namespace fer
