// MobileNetV2 (Sandler et al.) with torchvision's names, and MobileNetV1 (Howard et al.) with
// Keras's layer names (models/backbones.h lists both).
//
// MobileNetV2's InvertedResidual, y = [x +] project(dw(expand(x))):
//   expand   1x1 conv to t*in channels + BN + ReLU6 (absent when t = 1)
//   dw       3x3 depthwise conv (stride 1 or 2) + BN + ReLU6
//   project  1x1 conv to out channels + BN, no activation (the "linear bottleneck")
//   residual when stride 1 and in == out.
// The Keras flavour pads its stride-2 convolutions TensorFlow's "SAME" way (FlexConv2d tf_same);
// torchvision's pad 1 on every side. Same weights, shifted sampling grid.
#include "models/backbones.h"

namespace fer {

namespace {

using backbone_detail::window_out;

// torchvision's Conv2dNormActivation: children "0" conv, "1" BN, "2" ReLU6.
std::shared_ptr<Sequential> conv_bn_relu6(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                          int64_t groups, bool tf_same, float eps) {
  auto seq = std::make_shared<Sequential>();
  if (tf_same && stride > 1) {
    seq->add(std::make_shared<FlexConv2d>(
        FlexConv2dConfig{in, out, kernel, kernel, stride, 0, 0, true, groups, false}));
  } else {
    seq->add(std::make_shared<Conv2d>(
        Conv2dConfig{in, out, kernel, stride, (kernel - 1) / 2, groups, 1, false}));
  }
  seq->add(std::make_shared<BatchNorm2d>(out, eps));
  seq->add(ReLU6());
  return seq;
}

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int64_t stride, int64_t expand, bool tf_same, float eps)
      : residual_(stride == 1 && in == out) {
    const int64_t hidden = in * expand;
    conv_ = register_module("conv", std::make_shared<Sequential>());
    if (expand != 1) conv_->add(conv_bn_relu6(in, hidden, 1, 1, 1, tf_same, eps));
    conv_->add(conv_bn_relu6(hidden, hidden, 3, stride, hidden, tf_same, eps));
    conv_->add(std::make_shared<Conv2d>(hidden, out, 1, 1, 0, false));
    conv_->add(std::make_shared<BatchNorm2d>(out, eps));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*conv_)(x);
    return residual_ ? add(x, y) : y;
  }
  std::string describe() const override {
    return residual_ ? "InvertedResidual(residual)" : "InvertedResidual()";
  }

 private:
  std::shared_ptr<Sequential> conv_;
  bool residual_;
};

}  // namespace

std::shared_ptr<Module> mobilenet_v2(const ModelConfig& c, WeightsFlavor flavor) {
  const bool keras = flavor == WeightsFlavor::keras;
  const std::string name = keras ? "mobilenet_v2_keras" : "mobilenet_v2";
  const float eps = backbone_detail::bn_eps(c, keras ? 1e-3f : 1e-5f);
  auto features = backbone_detail::start_features(
      c, name, 32, keras ? tf_normalization() : imagenet_normalization());
  features->add("0", conv_bn_relu6(3, 32, 3, 2, 1, keras, eps));
  int64_t side = window_out(c.input_size, 3, 2, 2), in = 32, index = 1;
  // (expansion t, channels c, repeats n, first stride s), the paper's Table 2.
  const int64_t settings[][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                 {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (const auto& s : settings) {
    for (int64_t i = 0; i < s[2]; ++i) {
      const int64_t stride = i == 0 ? s[3] : 1;
      features->add(std::to_string(index++),
                    std::make_shared<InvertedResidual>(in, s[1], stride, s[0], keras, eps));
      side = window_out(side, 3, stride, 2);
      in = s[1];
    }
  }
  features->add(std::to_string(index), conv_bn_relu6(in, 1280, 1, 1, 1, keras, eps));
  return backbone_detail::finish(features, 1280, side, c, name);
}

// Keras's MobileNet(alpha=1.0, depth_multiplier=1): conv 3x3/2 + 13 depthwise-separable blocks.
// A stride-2 layer is ZeroPadding2D(((0, 1), (0, 1))) + a "valid" convolution; a stride-1
// depthwise conv is "same" (pad 1 all round). BatchNorm eps 1e-3 (Keras's default), ReLU6.
std::shared_ptr<Module> mobilenet_v1(const ModelConfig& c) {
  const float eps = backbone_detail::bn_eps(c, 1e-3f);
  auto f = backbone_detail::start_features(c, "mobilenet_v1", 32, tf_normalization());
  f->add("conv1_pad", std::make_shared<ZeroPad2d>(0, 1, 0, 1));
  f->add("conv1", std::make_shared<Conv2d>(3, 32, 3, 2, 0, false));
  f->add("conv1_bn", std::make_shared<BatchNorm2d>(32, eps));
  f->add("conv1_relu", ReLU6());
  int64_t side = window_out(c.input_size, 3, 2, 1), in = 32;
  const int64_t blocks[13][2] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                                 {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                                 {512, 1}, {1024, 2}, {1024, 1}};
  for (int i = 0; i < 13; ++i) {
    const int64_t out = blocks[i][0], stride = blocks[i][1];
    const std::string id = std::to_string(i + 1);
    if (stride == 2) f->add("conv_pad_" + id, std::make_shared<ZeroPad2d>(0, 1, 0, 1));
    f->add("conv_dw_" + id, std::make_shared<Conv2d>(
                                Conv2dConfig{in, in, 3, stride, stride == 1 ? 1 : 0, in, 1, false}));
    f->add("conv_dw_" + id + "_bn", std::make_shared<BatchNorm2d>(in, eps));
    f->add("conv_dw_" + id + "_relu", ReLU6());
    f->add("conv_pw_" + id, std::make_shared<Conv2d>(in, out, 1, 1, 0, false));
    f->add("conv_pw_" + id + "_bn", std::make_shared<BatchNorm2d>(out, eps));
    f->add("conv_pw_" + id + "_relu", ReLU6());
    side = stride == 2 ? window_out(side, 3, 2, 1) : side;
    in = out;
  }
  return backbone_detail::finish(f, 1024, side, c, "mobilenet_v1");
}

}  // namespace fer
