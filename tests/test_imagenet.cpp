// Real ImageNet weights (../shared/imagenet, its README says where they come from): the Keras-layout
// files convert into the engine's backbones, and the converted MobileNetV2 classifies the three
// test pictures as the original network does. Skipped, visibly, when the folder is absent.
//
// The check is the README's: picture -> RGB, resized to 224 x 224 (bilinear, antialiased as
// Pillow does it), x / 127.5 - 1 (the InputAdapter of mobilenet_v2_keras), the backbone's last
// feature map, global average pooling, then the ImageNet head kept beside the backbone
// (logits = gap @ kernel + bias, 1001 classes, class 0 "background").
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "models/convert/keras.h"
#include "models/registry.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {

// $FER_IMAGENET, else ../shared/imagenet beside the source tree (or the working directory).
fs::path imagenet_dir() {
  if (const char* env = std::getenv("FER_IMAGENET")) return env;
  const char* src = std::getenv("FER_SOURCE_DIR");
  return fs::path(src ? src : ".") / ".." / "shared" / "imagenet";
}

bool have_imagenet(const fs::path& dir) {
  if (!convert::keras_h5_supported()) {
    MESSAGE("SKIPPED: this build reads no .h5 files (configure with libhdf5-dev)");
    return false;
  }
  if (!fs::exists(dir / "mobilenet_v2_1.0_224_imagenet_keras_no_top.h5")) {
    MESSAGE("SKIPPED: no ImageNet weights at '", dir.string(), "' (set FER_IMAGENET)");
    return false;
  }
  return true;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

// One axis of a separable antialiased bilinear resize, as Pillow's Image.resize(BILINEAR) does
// it (the README's reference pictures were made that way): output pixel i covers the input
// around centre (i + 0.5) * scale with a triangle filter stretched by the scale when shrinking,
// so every input pixel contributes (plain bilinear would sample 4 of the ~5 x 5 pixels each
// output pixel covers here). Values are rounded to 8 bits after each pass, as Pillow does.
std::vector<uint8_t> resample_axis(const std::vector<uint8_t>& in, int lines, int in_len, int out_len,
                                   int stride_line, int stride_pixel, int channels, int out_stride_line,
                                   int out_stride_pixel) {
  const double scale = static_cast<double>(in_len) / out_len, stretch = std::max(scale, 1.0);
  std::vector<uint8_t> out(static_cast<size_t>(lines) * out_len * channels);
  for (int i = 0; i < out_len; ++i) {
    const double centre = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(centre - stretch + 0.5), 0);
    const int hi = std::min(static_cast<int>(centre + stretch + 0.5), in_len);
    std::vector<double> w;
    double total = 0;
    for (int j = lo; j < hi; ++j) {
      w.push_back(std::max(0.0, 1.0 - std::fabs((j - centre + 0.5) / stretch)));
      total += w.back();
    }
    for (int line = 0; line < lines; ++line)
      for (int c = 0; c < channels; ++c) {
        double v = 0;
        for (int j = lo; j < hi; ++j)
          v += w[static_cast<size_t>(j - lo)] * in[static_cast<size_t>(line * stride_line + j * stride_pixel + c)];
        out[static_cast<size_t>(line * out_stride_line + i * out_stride_pixel + c)] =
            static_cast<uint8_t>(std::clamp(std::lround(v / total), 0L, 255L));
      }
  }
  return out;
}

// The picture, RGB, resized to side x side as above, as a [1, 3, side, side] batch in [0, 1] (the
// backbones' input convention; the adapter then applies x * 2 - 1 = x_255 / 127.5 - 1).
Tensor picture(const fs::path& p, int side) {
  const std::vector<uint8_t> bytes = data::read_file_bytes(p.string(), 16u << 20);
  const data::RgbImage img = data::decode_image_rgb(bytes.data(), bytes.size(), p.string());
  const int w = img.width, h = img.height;
  // Horizontal pass (h lines of w pixels -> side), then vertical (side columns of h -> side).
  const std::vector<uint8_t> wide = resample_axis(img.pixels, h, w, side, w * 3, 3, 3, side * 3, 3);
  const std::vector<uint8_t> rgb = resample_axis(wide, side, h, side, 3, side * 3, 3, 3, side * 3);
  const int64_t plane = int64_t{side} * side;
  std::vector<float> chw(static_cast<size_t>(3 * plane));
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) chw[static_cast<size_t>(c * plane + i)] = rgb[static_cast<size_t>(3 * i + c)] / 255.0f;
  return Tensor::from_vector({1, 3, side, side}, chw);
}

std::shared_ptr<Module> load_backbone(const std::string& model, const fs::path& file) {
  ModelConfig config;
  config.input_size = 224;
  config.head = "flatten";  // features end at the last feature map (no pooling of their own)
  auto net = create_model(model, config);
  const convert::KerasFile weights = convert::read_keras_h5(file.string());
  convert::ConversionReport report;
  convert::load_keras_backbone(*net, model, weights, file.string(), report);
  net->eval();
  return net;
}

}  // namespace

TEST_CASE("MobileNetV2 with real ImageNet weights names the three test pictures as the original") {
  const fs::path dir = imagenet_dir();
  if (!have_imagenet(dir)) return;
  auto net = load_backbone("mobilenet_v2_keras", dir / "mobilenet_v2_1.0_224_imagenet_keras_no_top.h5");
  Module& features = *dynamic_cast<Classifier&>(*net).features;
  const fs::path head = dir / "mobilenet_v2_1.0_224_imagenet_head.h5";
  const Tensor kernel = convert::read_h5_dataset(head.string(), "predictions/kernel");  // [1280, 1001]
  const Tensor bias = convert::read_h5_dataset(head.string(), "predictions/bias");      // [1001]
  REQUIRE(kernel.shape() == Shape{1280, 1001});
  const std::vector<std::string> labels = read_lines(dir / "imagenet_labels.txt");
  REQUIRE(labels.size() == 1001);

  // The README's table: top-1 class and its probability in the original network.
  struct Expected {
    const char* file;
    const char* label;
    double probability;
  };
  for (const Expected& e : {Expected{"cat.png", "Egyptian cat", 0.672},
                            Expected{"grace_hopper.png", "military uniform", 0.718},
                            Expected{"bird.png", "chickadee", 0.781}}) {
    INFO(e.file);
    NoGradGuard no_grad;
    const Tensor map = features(picture(dir / "test_images" / e.file, 224));  // [1, 1280, 7, 7]
    REQUIRE(map.shape() == Shape{1, 1280, 7, 7});
    const Tensor pooled = global_avg_pool(map);  // [1, 1280]
    std::vector<float> logits = matmul(pooled, kernel).to_vector();
    const std::vector<float> b = bias.to_vector();
    for (size_t i = 0; i < logits.size(); ++i) logits[i] += b[i];
    size_t best = 0;
    double total = 0;
    for (size_t i = 0; i < logits.size(); ++i) best = logits[i] > logits[best] ? i : best;
    for (float z : logits) total += std::exp(static_cast<double>(z) - logits[best]);
    const double p = 1.0 / total;
    CHECK(labels[best] == e.label);
    // The README gives 3 decimals; the rest is 8-bit rounding inside the resize.
    CHECK(std::fabs(p - e.probability) < 0.002);
    MESSAGE(std::string(e.file), ": ", labels[best], " (", p, "; original ", e.probability, ")");
  }
}

TEST_CASE("MobileNetV1 with real ImageNet weights: every Keras weight finds its layer") {
  const fs::path dir = imagenet_dir();
  if (!have_imagenet(dir)) return;
  auto net = load_backbone("mobilenet_v1", dir / "mobilenet_v1_1.0_224_imagenet_keras_no_top.h5");
  // 3,228,864 weights in the file (the README), every one in the backbone: its features hold
  // exactly that many parameters and buffers, minus the batchnorm counters.
  int64_t in_features = 0;
  for (const auto& [name, t] : net->state_dict())
    if (name.rfind("features.", 0) == 0 && name.find("num_batches") == std::string::npos) in_features += t.numel();
  CHECK(in_features == 3228864);
  // The last feature map of a picture is finite and not constant: the weights were read, not zeros.
  NoGradGuard no_grad;
  const Tensor map = (*dynamic_cast<Classifier&>(*net).features)(picture(dir / "test_images" / "cat.png", 224));
  CHECK(map.shape() == Shape{1, 1024, 7, 7});
  const std::vector<float> v = map.to_vector();
  float lo = v[0], hi = v[0];
  for (float x : v) {
    REQUIRE(std::isfinite(x));
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  CHECK(hi - lo > 1.0f);
}
