// Building blocks of the ImageNet backbones (models/backbones.h), each a Module over existing ops:
//
//   FlexConv2d       a convolution with a rectangular kernel (Inception's 1x7 and 7x1) and either
//                    PyTorch's symmetric padding or TensorFlow's "SAME" padding, which for a
//                    stride-2 layer on an even input pads one pixel at the bottom/right only (the
//                    Keras-converted MobileNetV2). Parameters "weight" [out, in/groups, kh, kw] and
//                    "bias" [out], the names of Conv2d.
//   ZeroPad2d        Keras's ZeroPadding2D: fixed zeros on each side (top, bottom, left, right).
//   AvgPool2dSame    Keras's AveragePooling2D(padding="same") with stride 1: a k x k mean that, at
//                    the border, divides by the number of pixels inside the image (TensorFlow
//                    excludes the padding from the count; PyTorch's avg_pool2d counts it).
//   InputAdapter     what lets an ImageNet backbone eat the FER pipeline's faces unchanged: a
//                    [N, 1 or 3, H, W] batch with pixels in [0, 1] is resized (bilinear,
//                    align_corners=False) to size x size when it is not that size already, turned
//                    into 3 channels and normalised, y_c = (x_src(c) - mean_c) / std_c, where
//                    src(c) is the gray channel for a 1-channel input and channel order[c] of an
//                    RGB input (order {2, 1, 0} feeds BGR to Caffe-trained weights). It holds no
//                    parameters or buffers: the mixing is a fixed 1x1 convolution built per call.
#pragma once
#include <array>
#include <memory>
#include <string>

#include "layers/layers.h"

namespace fer {

struct FlexConv2dConfig {
  int64_t in_channels, out_channels, kernel_h, kernel_w, stride = 1;
  int64_t pad_h = 0, pad_w = 0;  // symmetric padding (ignored when tf_same)
  bool tf_same = false;          // TensorFlow "SAME": pad total = max((ceil(H/s)-1)*s + k - H, 0),
                                 // top = total/2, bottom = the rest (likewise left/right)
  int64_t groups = 1;
  bool bias = false;
};

class FlexConv2d : public Module {
 public:
  explicit FlexConv2d(const FlexConv2dConfig& c);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const FlexConv2dConfig& config() const { return config_; }
  Tensor weight, bias;

 private:
  FlexConv2dConfig config_;
};

// TensorFlow's "SAME" split of the padding of one dimension: {before, after}.
std::array<int64_t, 2> tf_same_padding(int64_t size, int64_t kernel, int64_t stride);

class ZeroPad2d : public Module {
 public:
  ZeroPad2d(int64_t top, int64_t bottom, int64_t left, int64_t right)
      : top(top), bottom(bottom), left(left), right(right) {}
  Tensor forward(const Tensor& x) override { return pad2d(x, top, bottom, left, right); }
  std::string describe() const override;
  int64_t top, bottom, left, right;
};

class AvgPool2dSame : public Module {
 public:
  explicit AvgPool2dSame(int64_t kernel);  // odd kernel, stride 1
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t kernel;
};

struct InputNormalization {
  std::array<float, 3> mean, std;    // per output channel, in [0, 1] pixel units
  std::array<int, 3> order{0, 1, 2};  // output channel c reads input channel order[c] (RGB input)
  const char* name;                  // "imagenet", "caffe", "tf" (for describe())
};
// torchvision's ImageNet mean/std; Keras "caffe" mode (BGR, x*255 - mean, the VGG16 and ResNet50
// weights); Keras "tf" mode (x*2 - 1, the MobileNet and InceptionV3 weights).
InputNormalization imagenet_normalization();
InputNormalization caffe_normalization();
InputNormalization tf_normalization();

class InputAdapter : public Module {
 public:
  InputAdapter(int64_t size, InputNormalization norm) : size(size), norm(norm) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t size;
  InputNormalization norm;
};

}  // namespace fer
