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
  FER_CHECK(c.input_size % 16 == 0, "fer_vgg: input size ", c.input_size,
            " must be a multiple of 16 (four 2x2 poolings)");
  const int64_t side = c.input_size / 16;
  return std::make_shared<Classifier>(
      vgg_trunk(c.in_channels, widths, 2, c.stage_dropout),
      dense_head(widths.back() * side * side, hidden, c.num_classes, c.dropout));
}

}  // namespace

std::shared_ptr<Module> fer_vgg_small(const ModelConfig& c) { return vgg_like(c, {32, 64, 128, 256}, {256}); }
std::shared_ptr<Module> fer_vgg(const ModelConfig& c) { return vgg_like(c, {64, 128, 256, 512}, {512, 256}); }

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
