// Loading converted weights into a backbone's `features`, strictly: every parameter and buffer
// of features must be supplied with the model's shape (BatchNorm's num_batches_tracked may be
// absent: it counts training steps and changes nothing the network computes), and nothing else
// may be. The head (`classifier.*`) keeps its fresh initialisation.
//
// Errors name the file, the layer (the engine's dotted module name), the tensor as the source
// names it and as the engine names it, and both shapes, e.g.
//   resnet50.safetensors: layer 'features.layer1.0.conv2' of resnet50: 'layer1.0.conv2.weight'
//   has shape [64, 64, 1, 1] but the model expects [64, 64, 3, 3]
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "layers/module.h"

namespace fer::convert {

struct SourceTensor {
  Tensor value;        // already in the engine's layout
  std::string origin;  // how the source names it ("layer1.0.conv2.weight", "Keras layer 'x' ...")
};

struct ConversionReport {
  int64_t tensors_loaded = 0;
  std::vector<std::string> ignored;  // source tensors or layers deliberately left out (heads)
  std::vector<std::string> notes;    // what was changed on the way (folded biases, eps, ...)
};

// `tensors` maps engine names ("features.layer1.0.conv2.weight") to values. `source_name`
// says how the source would name an engine tensor, for the "missing" message.
void assign_backbone(Module& model, const std::string& model_name,
                     const std::map<std::string, SourceTensor>& tensors, const std::string& file,
                     const std::function<std::string(const std::string&)>& source_name,
                     ConversionReport& report);

// "features.layer1.0.conv2.weight" -> "features.layer1.0.conv2" (the module owning a tensor).
std::string layer_of(const std::string& tensor_name);

}  // namespace fer::convert
