// Named architectures. create_model("fer_vgg_small", {...}) returns a ready Module; the name and
// config go into checkpoints' metadata so fer_eval and fer_predict rebuild the same network.
//
// The FER CNNs (models/fer_cnn.cpp) take [N, 1, 48, 48] faces and return [N, classes] logits:
//   fer_vgg_small  4 stages of 2 x (conv3x3-BN-ReLU) + maxpool, channels 32/64/128/256,
//                  dense 2304-256-classes (1.76 M parameters, 0.236 GFLOP per face)
//   fer_vgg        the same shape with channels 64/128/256/512 and dense 4608-512-256-classes
//   fer_seed_cnn   the "CNN from scratch" of the Keras notebooks this project replaces:
//                  conv32-conv64-pool-drop, conv128-pool, conv128-pool-drop, dense 1024-classes
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace fer {

struct ModelConfig {
  int64_t num_classes = 7;
  int64_t in_channels = 1;
  int64_t input_size = 48;
  float dropout = 0.5f;        // before the dense layers
  float stage_dropout = 0.0f;  // after each pooling stage of the FER CNNs
};

// A classifier = features (conv trunk) -> flatten -> classifier (dense head), as in torchvision's
// VGG, so parameter names read "features.0.weight", "classifier.3.bias".
class Classifier : public Module {
 public:
  Classifier(std::shared_ptr<Module> features, std::shared_ptr<Module> classifier);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Classifier()"; }
  std::shared_ptr<Module> features, classifier;
};

std::shared_ptr<Module> create_model(const std::string& name, const ModelConfig& config = {});
std::vector<std::string> model_names();

// Multiply-accumulates x 2 of one forward pass of a single input of [channels, size, size]
// (convolutions and dense layers, which are >99% of the work).
int64_t forward_flops(Module& model, int64_t channels, int64_t size);

}  // namespace fer
