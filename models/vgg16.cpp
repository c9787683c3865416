// VGG16 (Simonyan & Zisserman): 13 conv3x3-ReLU layers in 5 stages, each closed by a 2x2 max pool.
// Children "0" .. "30" are torchvision's vgg16().features one for one; Keras's block<b>_conv<i>
// layers are the same convolutions (models/convert/keras.cpp maps them).
#include "models/backbones.h"

namespace fer {

std::shared_ptr<Module> vgg16(const ModelConfig& c, WeightsFlavor flavor) {
  const std::string name = flavor == WeightsFlavor::keras ? "vgg16_keras" : "vgg16";
  auto features = backbone_detail::start_features(
      c, name, 32, flavor == WeightsFlavor::keras ? caffe_normalization() : imagenet_normalization());
  // torchvision's cfg "D": widths, with 0 standing for a max pool.
  const int64_t cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
  int64_t in = 3, side = c.input_size, index = 0;
  for (int64_t width : cfg) {
    if (width == 0) {
      features->add(std::to_string(index++), std::make_shared<MaxPool2d>(2, 2));
      side = backbone_detail::window_out(side, 2, 2, 0);
      continue;
    }
    features->add(std::to_string(index++), std::make_shared<Conv2d>(in, width, 3, 1, 1, /*bias=*/true));
    features->add(std::to_string(index++), ReLU());
    in = width;
  }
  return backbone_detail::finish(features, 512, side, c, name);
}

}  // namespace fer
