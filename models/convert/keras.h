// Keras Applications weight files (.h5) -> the engine's Keras-flavoured backbones.
//
// The file (Keras's save_weights / the "..._notop.h5" downloads), read by read_keras_h5:
//   root attribute "layer_names"       the model's layers (split into "layer_names0", "1", ... when
//                                      long); a full-model file keeps them under "model_weights/"
//   group <layer>, attribute "weight_names"   that layer's weights in Keras's order, as paths
//                                      relative to the group: "block1_conv1_W_1:0" (Keras 1 era,
//                                      e.g. the VGG16 file) or "conv1_conv/kernel:0" (Keras 2)
//   dataset per weight                 float32 (float64 is converted), Keras's layout
// Layers without weights (input, activations, pooling, padding) have empty weight_names.
//
// A weight's role comes from the tail of its name: kernel / W, depthwise_kernel, bias / b, gamma,
// beta, moving_mean / running_mean, moving_variance / running_std (Keras 1 stored the variance
// under that name). Layouts: convert/layout.h. Name maps, Keras layer -> engine module:
//   vgg16_keras         block<b>_conv<i> -> features.<torchvision index> (0, 2, 5, 7, 10, ... 28)
//   resnet50_keras      tf.keras names: conv1_conv/conv1_bn -> conv1/bn1; conv<s>_block<b>_<k>_conv
//                       and _bn -> layer<s-1>.<b-1>.conv<k>/bn<k>, k = 0 -> downsample.0/.1.
//                       Keras 1/2.0 names: conv1/bn_conv1; res<s><a..f>_branch2a|2b|2c|1 and
//                       bn<s><a..f>_branch... likewise; those files used BatchNorm eps 1e-3
//                       (keras_bn_eps returns it). Conv biases are folded into the next BN's
//                       running_mean (models/backbones.h says why that is exact).
//   mobilenet_v2_keras  Conv1/bn_Conv1 -> 0.0/0.1; expanded_conv_depthwise(_BN) -> 1.conv.0.0/.1,
//                       expanded_conv_project(_BN) -> 1.conv.1/.2; block_<k>_expand(_BN) ->
//                       <k+1>.conv.0.0/.1, _depthwise(_BN) -> <k+1>.conv.1.0/.1, _project(_BN) ->
//                       <k+1>.conv.2/.3; Conv_1/Conv_1_bn -> 18.0/18.1
//   mobilenet_v1        the engine's names are Keras's: conv1, conv1_bn, conv_dw_<i>(_bn),
//                       conv_pw_<i>(_bn) -> features.<same>
//   inception_v3_keras  Keras names these layers automatically (conv2d_1 .. conv2d_94,
//                       batch_normalization_1 .. 94; "conv2d" without a number in TF 2), in the
//                       order the model creates them, which is torchvision's module order: the
//                       convolutions and the batchnorms, each sorted by that number, are matched
//                       one to one with the BasicConv2d layers in the engine's order. layer_names'
//                       own order is not used (Keras sorts it by graph depth). The batchnorms have
//                       no gamma (scale=False): bn.weight is set to 1.
// Known top layers of the include_top files (fc1, fc2, predictions, fc1000, probs, Logits,
// conv_preds) are ignored; any other layer with weights is an error, as is a missing or
// mis-shaped weight (messages name the Keras layer and weight, the engine's layer and both shapes).
#pragma once
#include <string>
#include <vector>

#include "layers/module.h"
#include "models/convert/assign.h"

namespace fer::convert {

struct KerasWeight {
  std::string name;  // as stored in weight_names
  Tensor value;      // Keras's layout, float32, CPU
};
struct KerasLayer {
  std::string name;
  std::vector<KerasWeight> weights;
};
struct KerasFile {
  std::vector<KerasLayer> layers;  // in layer_names order
  std::string keras_version, backend;  // root attributes (empty when absent)
};

// False when the engine was built without the HDF5 library (then read_keras_h5 throws).
bool keras_h5_supported();
KerasFile read_keras_h5(const std::string& path);
// One float dataset of any HDF5 file by its path inside the file ("predictions/kernel"): for
// weights stored outside the layer_names layout, such as a classifier head kept on its own.
Tensor read_h5_dataset(const std::string& path, const std::string& dataset);

enum class KerasRole { kernel, depthwise_kernel, bias, gamma, beta, moving_mean, moving_variance };
// The role of a weight from its name; throws naming the layer and weight when it has none.
KerasRole keras_role(const std::string& weight_name, const std::string& layer, const std::string& file);

// The BatchNorm epsilon the model must be built with for this file (ModelConfig::bn_eps), or 0
// for the architecture's default. Only the Keras 1/2.0 era ResNet50 file needs one (1e-3).
float keras_bn_eps(const std::string& model_name, const KerasFile& weights);

// Loads the file into `model` (built by create_model(model_name, config) with keras_bn_eps).
void load_keras_backbone(Module& model, const std::string& model_name, const KerasFile& weights,
                         const std::string& file, ConversionReport& report);

}  // namespace fer::convert
