#include "layers/blocks.h"

#include <cmath>
#include <sstream>
#include <vector>

#include "engine/init.h"

namespace fer {

// ---- FlexConv2d --------------------------------------------------------------------------------
FlexConv2d::FlexConv2d(const FlexConv2dConfig& c) : config_(c) {
  FER_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.kernel_h > 0 && c.kernel_w > 0 &&
                c.stride > 0 && c.groups > 0 && c.in_channels % c.groups == 0 &&
                c.out_channels % c.groups == 0 && c.pad_h >= 0 && c.pad_w >= 0,
            "FlexConv2d(", c.in_channels, ", ", c.out_channels, ", kernel=", c.kernel_h, "x",
            c.kernel_w, ", groups=", c.groups, "): sizes must be positive, channels divisible by groups");
  weight = register_parameter(
      "weight", Tensor::empty({c.out_channels, c.in_channels / c.groups, c.kernel_h, c.kernel_w}));
  init::kaiming_uniform(weight, 1.0f / std::sqrt(3.0f));  // PyTorch's default, as Conv2d
  if (c.bias) {
    bias = register_parameter("bias", Tensor::empty({c.out_channels}));
    init::uniform(bias, 1.0f / std::sqrt(static_cast<float>(init::fans(weight.shape()).in)));
  }
}

std::array<int64_t, 2> tf_same_padding(int64_t size, int64_t kernel, int64_t stride) {
  const int64_t out = (size + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - size, 0);
  return {total / 2, total - total / 2};
}

Tensor FlexConv2d::forward(const Tensor& x) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = config_.stride;
  o.groups = config_.groups;
  if (!config_.tf_same) {
    o.pad_h = config_.pad_h;
    o.pad_w = config_.pad_w;
    return conv2d(x, weight, bias, o);
  }
  FER_CHECK(x.dim() == 4, describe(), ": expected NCHW input, got ", x.shape_str());
  const auto ph = tf_same_padding(x.size(2), config_.kernel_h, config_.stride);
  const auto pw = tf_same_padding(x.size(3), config_.kernel_w, config_.stride);
  if (ph[0] == ph[1] && pw[0] == pw[1]) {  // symmetric: the convolution pads by itself
    o.pad_h = ph[0];
    o.pad_w = pw[0];
    return conv2d(x, weight, bias, o);
  }
  return conv2d(pad2d(x, ph[0], ph[1], pw[0], pw[1]), weight, bias, o);
}

std::string FlexConv2d::describe() const {
  std::ostringstream os;
  os << "FlexConv2d(" << config_.in_channels << ", " << config_.out_channels
     << ", kernel=" << config_.kernel_h << "x" << config_.kernel_w << ", stride=" << config_.stride;
  if (config_.tf_same)
    os << ", padding=tf_same";
  else
    os << ", padding=" << config_.pad_h << "x" << config_.pad_w;
  if (config_.groups > 1) os << ", groups=" << config_.groups;
  if (!config_.bias) os << ", bias=false";
  os << ")";
  return os.str();
}

// ---- ZeroPad2d, AvgPool2dSame ------------------------------------------------------------------
std::string ZeroPad2d::describe() const {
  std::ostringstream os;
  os << "ZeroPad2d(top=" << top << ", bottom=" << bottom << ", left=" << left << ", right=" << right
     << ")";
  return os.str();
}

AvgPool2dSame::AvgPool2dSame(int64_t kernel) : kernel(kernel) {
  FER_CHECK(kernel > 0 && kernel % 2 == 1, "AvgPool2dSame(", kernel, "): the kernel must be odd");
}

// PyTorch-style avg_pool2d with padding k/2 divides every window by k*k; multiplying position
// (h, w) by f(h, w) = k*k / (pixels of its window inside the image) turns that into TensorFlow's
// "SAME" mean. f depends on the position only, so it is applied to the [N*C, H*W] view of the
// pooled map as an inference-mode batch_norm over the H*W "features": (y - 0) / sqrt(1 + 0) * f + 0
// is y * f exactly, and costs H*W constants instead of a factor for every element. The factor is a
// constant: the gradient flows to x as through a fixed scaling.
Tensor AvgPool2dSame::forward(const Tensor& x) {
  FER_CHECK(x.dim() == 4, describe(), ": expected NCHW input, got ", x.shape_str());
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = kernel;
  o.stride_h = o.stride_w = 1;
  o.pad_h = o.pad_w = kernel / 2;
  const Tensor y = avg_pool2d(x, o);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), r = kernel / 2;
  auto inside = [r](int64_t i, int64_t n) {
    return std::min(i + r, n - 1) - std::max<int64_t>(i - r, 0) + 1;
  };
  std::vector<float> factor(H * W);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t w = 0; w < W; ++w)
      factor[h * W + w] = static_cast<float>(kernel * kernel) / static_cast<float>(inside(h, H) * inside(w, W));
  const Device dev = x.device();
  Tensor mean = Tensor::zeros({H * W}, dev), var = Tensor::ones({H * W}, dev);
  const Tensor scaled = batch_norm(y.reshape({N * C, H * W}), Tensor::from_vector({H * W}, factor, dev),
                                   Tensor::zeros({H * W}, dev), mean, var, /*training=*/false,
                                   /*momentum=*/0.0f, /*eps=*/0.0f);
  return scaled.reshape({N, C, H, W});
}

std::string AvgPool2dSame::describe() const {
  std::ostringstream os;
  os << "AvgPool2dSame(kernel=" << kernel << ", stride=1)";
  return os.str();
}

// ---- InputAdapter ------------------------------------------------------------------------------
InputNormalization imagenet_normalization() {
  return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, {0, 1, 2}, "imagenet"};
}
// Keras "caffe": BGR order, x*255 - {103.939, 116.779, 123.68}, i.e. mean/255 and std 1/255.
InputNormalization caffe_normalization() {
  return {{103.939f / 255.0f, 116.779f / 255.0f, 123.68f / 255.0f},
          {1.0f / 255.0f, 1.0f / 255.0f, 1.0f / 255.0f},
          {2, 1, 0},
          "caffe"};
}
// Keras "tf": x*2 - 1 = (x - 0.5) / 0.5.
InputNormalization tf_normalization() {
  return {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, {0, 1, 2}, "tf"};
}

Tensor InputAdapter::forward(const Tensor& x) {
  FER_CHECK(x.dim() == 4 && (x.size(1) == 1 || x.size(1) == 3), describe(),
            ": expected a [N, 1 or 3, H, W] batch, got ", x.shape_str());
  Tensor h = (x.size(2) == size && x.size(3) == size) ? x : resize_bilinear(x, size, size);
  // y_c = x_src(c) / std_c - mean_c / std_c as a 1x1 convolution from C_in to 3 channels.
  const int64_t cin = x.size(1);
  std::vector<float> w(3 * cin, 0.0f), b(3);
  for (int c = 0; c < 3; ++c) {
    w[c * cin + (cin == 1 ? 0 : norm.order[c])] = 1.0f / norm.std[c];
    b[c] = -norm.mean[c] / norm.std[c];
  }
  return conv2d(h, Tensor::from_vector({3, cin, 1, 1}, w, x.device()),
                Tensor::from_vector({3}, b, x.device()), Conv2dOptions{});
}

std::string InputAdapter::describe() const {
  std::ostringstream os;
  os << "InputAdapter(size=" << size << ", gray or RGB -> 3 channels, normalization=" << norm.name
     << ")";
  return os.str();
}

}  // namespace fer
