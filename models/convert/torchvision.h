// torchvision state dicts (saved as safetensors) -> the engine's backbones (models/backbones.h).
//
// Name map (the "features." prefix mapping of models/backbones.h):
//   vgg16, mobilenet_v2                  "features.*" -> the same name; "classifier.*" ignored
//   resnet50                             "<name>" -> "features.<name>"; "fc.*" ignored
//   inception_v3                         "<name>" -> "features.<name>"; "fc.*", "AuxLogits.*" ignored
//   mobilenet_v1 (no torchvision model;  "<Keras layer>.<tensor>" -> "features.<...>";
//   a PyTorch twin with Keras's names)   "classifier.*", "fc.*" ignored
// Any other tensor in the file is an error (a file of another architecture), as is a missing or
// mis-shaped one (convert/assign.h). The layouts are PyTorch's already; values are copied as
// they are. Keras-flavoured models (resnet50_keras, ...) are not loaded from torchvision files:
// their computation differs from torchvision's.
#pragma once
#include <string>

#include "layers/module.h"
#include "models/convert/assign.h"

namespace fer::convert {

// The engine's name of a torchvision tensor of `family` ("resnet50", ...), or "" when the tensor
// belongs to torchvision's head (ignored). Throws for an unknown family.
std::string torchvision_to_engine_name(const std::string& family, const std::string& name);
// The reverse (for messages about missing tensors).
std::string engine_to_torchvision_name(const std::string& family, const std::string& engine_name);

// Loads `source` into `model` (built by create_model(model_name, ...)); the head is untouched.
void load_torchvision_backbone(Module& model, const std::string& model_name,
                               const StateDict& source, const std::string& file,
                               ConversionReport& report);

}  // namespace fer::convert
