// ImageNet backbones for transfer learning on FER faces: VGG16, ResNet50, MobileNetV2,
// MobileNetV1 and InceptionV3, built so that weights trained elsewhere load by name.
//
// Structure (what the fine-tuning code relies on)
// -----------------------------------------------
// Every backbone model is a Classifier{features, classifier} (models/registry.h):
//
//   features    a Sequential:  "adapter"   InputAdapter (layers/blocks.h): [N, 1 or 3, H, W] in
//                                          [0, 1] -> resized to input_size, 3 channels, normalised
//                                          for the weights' source; no parameters, no buffers
//                              block 1 .. block N   the backbone's own children, named as in the
//                                          source framework (table below), in forward order
//                              "pool"      GlobalAvgPool, only when head == "gap"
//               so features(x) is [N, C] with head "gap" (C = 512 / 2048 / 1280 / 1024 / 2048) and
//               the last feature map [N, C, h, w] with head "flatten" (Classifier flattens it).
//   classifier  dense_head(): for each size in `hidden`, Linear-ReLU-Dropout(dropout), then
//               Linear(num_classes); "classifier.0.weight", ... . Always freshly initialised by
//               fer_convert: only `features` carries converted weights.
//
// The adapter's normalisation is the one the weights were trained with: torchvision models use
// ImageNet's mean/std; Keras's VGG16 and ResNet50 use "caffe" (BGR order, x*255 - mean); Keras's
// MobileNets and InceptionV3 use "tf" (x*2 - 1). Inputs must therefore be plain [0, 1] pixels
// (data::PreprocessOptions::standardize off). A gray face becomes three equal channels.
//
// Children of `features` after "adapter" (the blocks), and the names of their tensors:
//   vgg16         "0" .. "30": torchvision's vgg16().features, layer for layer (Conv2d with bias,
//                 ReLU, MaxPool2d(2)); tensors "features.<i>.weight|bias", i in 0,2,5,7,10,...,28.
//   resnet50      "conv1", "bn1", "relu", "maxpool", "layer1" .. "layer4" (Sequentials of
//                 Bottleneck blocks "0", "1", ... with conv1/bn1/conv2/bn2/conv3/bn3 and
//                 downsample.0 (1x1 conv) / downsample.1 (BN) on the first block of each layer).
//   mobilenet_v2  "0" .. "18": torchvision's mobilenet_v2().features (0 = conv-BN-ReLU6 stem as
//                 "0.0"/"0.1", 1..17 InvertedResidual with "conv.<j>...", 18 = the 1x1 conv to 1280).
//   inception_v3  "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
//                 "Conv2d_4a_3x3", "maxpool2", "Mixed_5b" .. "Mixed_7c": torchvision's names
//                 (BasicConv2d = "conv" + "bn" (eps 0.001) + ReLU; branches "branch1x1",
//                 "branch5x5_1", ...). AuxLogits is not built (it only helps training from
//                 scratch); converting a torchvision file ignores its AuxLogits.* and fc.* tensors.
//                 transform_input=False: the adapter does the normalisation.
//   mobilenet_v1  no torchvision model exists; the children are Keras's MobileNet (alpha 1.0)
//                 layers by their Keras names: "conv1_pad", "conv1", "conv1_bn", "conv1_relu",
//                 then for block i = 1..13: ["conv_pad_<i>" when stride 2], "conv_dw_<i>"
//                 (depthwise 3x3), "conv_dw_<i>_bn", "conv_dw_<i>_relu", "conv_pw_<i>" (1x1),
//                 "conv_pw_<i>_bn", "conv_pw_<i>_relu". Stride-2 layers pad one zero row/column at
//                 the bottom/right only, as Keras does; BatchNorm eps 1e-3; ReLU6.
//
// The "features." prefix mapping (models/convert/torchvision.h applies it):
//   engine name = "features." + torchvision name   for resnet50, inception_v3 and mobilenet_v1
//                                                   (whose torchvision-style names have no prefix)
//   engine name = torchvision name                  for vgg16 and mobilenet_v2 (already
//                                                   "features.<i>...")
//   torchvision's heads are not part of `features` and are ignored: vgg16/mobilenet_v2
//   "classifier.*", resnet50/inception_v3 "fc.*", inception_v3 "AuxLogits.*".
//
// Keras variants (for weights converted from Keras Applications .h5 files, models/convert/
// keras.h): the same children and names as above, changed only where Keras computes something
// else, so a converted model computes what Keras computes:
//   vgg16_keras         identical layers; "caffe" input normalisation.
//   resnet50_keras      Keras's ResNet50 (v1) strides the first 1x1 convolution of a block, not the
//                       3x3 (torchvision's v1.5); BatchNorm eps 1.001e-5 (1e-3 for the Keras 1 era
//                       file, set through ModelConfig::bn_eps); "caffe" normalisation. Keras's conv
//                       biases are folded into the next BatchNorm's running_mean by the converter:
//                       BN(conv(x) + b) with mean m equals BN(conv(x)) with mean m - b, exactly, in
//                       eval mode; in training the batch mean absorbs b just the same.
//   mobilenet_v2_keras  stride-2 convolutions pad TensorFlow's "SAME" way (Keras's correct_pad: one
//                       pixel at the bottom/right on even inputs); BatchNorm eps 1e-3; "tf".
//   inception_v3_keras  the 3x3 average pools of the branches divide by the pixels inside the image
//                       (TensorFlow's "SAME" average); Keras's BatchNorm has no gamma (scale=False),
//                       so the converter sets bn.weight to 1; "tf" normalisation.
//   mobilenet_v1        is Keras's architecture already.
//
// Input sizes: any input_size from the minimum below works (the adapter resizes the 48x48 faces);
// 224 (299 for InceptionV3) is what the weights were trained at, smaller sizes are much cheaper
// (FLOPs scale with input_size^2). Minimum: 32 for VGG16, ResNet50 and the MobileNets, 75 for
// InceptionV3.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/blocks.h"
#include "models/registry.h"

namespace fer {

enum class WeightsFlavor { torchvision, keras };

struct BackboneInfo {
  std::string name;        // the create_model name ("resnet50_keras")
  std::string family;      // "resnet50" (the torchvision-named architecture it follows)
  WeightsFlavor flavor;
  int64_t min_input;       // smallest input_size
  int64_t native_input;    // the ImageNet training size
  int64_t feature_channels;  // C of features' output
};

// The backbones (in create_model's order), and one by model name (nullptr for the FER CNNs).
const std::vector<BackboneInfo>& backbone_infos();
const BackboneInfo* backbone_info(const std::string& model_name);

std::shared_ptr<Module> vgg16(const ModelConfig& config, WeightsFlavor flavor);
std::shared_ptr<Module> resnet50(const ModelConfig& config, WeightsFlavor flavor);
std::shared_ptr<Module> mobilenet_v2(const ModelConfig& config, WeightsFlavor flavor);
std::shared_ptr<Module> mobilenet_v1(const ModelConfig& config);
std::shared_ptr<Module> inception_v3(const ModelConfig& config, WeightsFlavor flavor);

namespace backbone_detail {
// A new `features` Sequential holding the input adapter, after checking input_size against the
// model's minimum.
std::shared_ptr<Sequential> start_features(const ModelConfig& config, const std::string& model,
                                           int64_t min_input, InputNormalization norm);
// Appends "pool" for head "gap" and wraps features + dense_head into a Classifier; `side` is the
// last feature map's side (for head "flatten").
std::shared_ptr<Module> finish(std::shared_ptr<Sequential> features, int64_t channels,
                               int64_t side, const ModelConfig& config, const std::string& model);
// BatchNorm epsilon: config.bn_eps when set, else the architecture's default.
inline float bn_eps(const ModelConfig& config, float architecture_default) {
  return config.bn_eps > 0 ? config.bn_eps : architecture_default;
}
// Output side of a convolution or pooling window: floor((in + pad_total - k) / stride) + 1.
int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad_total);
}  // namespace backbone_detail

}  // namespace fer
