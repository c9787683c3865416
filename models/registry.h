// Named architectures. create_model("fer_vgg_small", {...}) returns a ready Module; the name and
// config go into checkpoints' metadata so fer_eval and fer_predict rebuild the same network.
//
// The FER CNNs (models/fer_cnn.cpp) take [N, 1, 48, 48] faces and return [N, classes] logits:
//   fer_vgg_small  4 stages of 2 x (conv3x3-BN-ReLU) + maxpool, channels 32/64/128/256,
//                  dense 2304-256-classes (1.76 M parameters, 0.236 GFLOP per face)
//   fer_vgg        Khaireddin and Chen's VGGNet: the same shape with channels 64/128/256/512 and
//                  dense 4608-4096-4096-classes (any input of 16 or more: 40x40 crops give 2048
//                  features, as in their paper)
//   fer_resnet18   ResNet-18 for 48x48 faces: 3x3 stem, no max pooling, 4 x 2 basic blocks
//                  (64-512 channels), global average pooling, dense 512-classes
//   fer_seed_cnn   the "CNN from scratch" of the Keras notebooks this project replaces:
//                  conv32-conv64-pool-drop, conv128-pool, conv128-pool-drop, dense 1024-classes
// Their heads are fixed; `head` and `hidden` below do not apply to them.
//
// The ImageNet backbones (models/backbones.h: their structure, parameter names and weight
// sources) take the same [N, 1, H, W] faces in [0, 1], adapt them to the backbone's input and end
// in a head built from `head`, `hidden` and `dropout`:
//   vgg16, resnet50, mobilenet_v2, inception_v3                  torchvision's architectures
//   vgg16_keras, resnet50_keras, mobilenet_v2_keras,             what Keras Applications compute,
//   inception_v3_keras, mobilenet_v1                             for weights converted from Keras
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace fer {

struct ModelConfig {
  int64_t num_classes = 7;
  int64_t in_channels = 1;
  // FER CNNs: the side of the input faces. Backbones: the side the input adapter resizes every
  // input to before the backbone (224 is ImageNet's; smaller is faster, see models/backbones.h).
  int64_t input_size = 48;
  float dropout = 0.5f;        // before the dense layers (backbones: after each hidden layer)
  float stage_dropout = 0.0f;  // after each pooling stage of the FER CNNs
  // Backbone heads: "gap" = global average pooling of the last feature map (the end of
  // `features`), "flatten" = the whole map, flattened; then for each size in `hidden`
  // Linear-ReLU-Dropout(dropout), then Linear(num_classes).
  std::string head = "gap";
  std::vector<int64_t> hidden;
  // Backbones: the epsilon of every BatchNorm; 0 = the architecture's own (torchvision 1e-5,
  // InceptionV3 1e-3, Keras MobileNets 1e-3, Keras ResNet50 1.001e-5). fer_convert sets it when a
  // weights file needs another (the Keras 1 era ResNet50 file was trained with 1e-3).
  float bn_eps = 0.0f;
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

// Dense head: for each hidden size, Linear - ReLU - Dropout (when dropout > 0); then Linear to
// the classes. Children are numbered as in torch.nn.Sequential ("classifier.0.weight", ...).
std::shared_ptr<Sequential> dense_head(int64_t in, const std::vector<int64_t>& hidden,
                                       int64_t classes, float dropout);

// Multiply-accumulates x 2 of one forward pass of a single input of [channels, size, size]
// (convolutions and dense layers, which are >99% of the work). It runs the model on a zero
// image and counts every Conv2d, FlexConv2d and Linear it passes through, however deep, with a
// ForwardHook (layers/module.h).
int64_t forward_flops(Module& model, int64_t channels, int64_t size);

}  // namespace fer
