// The FER CNNs trained from scratch on 48x48 faces (models/registry.h has the table). Use
// create_model(name); these are the builders behind it.
#pragma once
#include <memory>

#include "models/registry.h"

namespace fer {

std::shared_ptr<Module> fer_vgg_small(const ModelConfig& config);
std::shared_ptr<Module> fer_vgg(const ModelConfig& config);
std::shared_ptr<Module> fer_seed_cnn(const ModelConfig& config);
std::shared_ptr<Module> fer_resnet18(const ModelConfig& config);

}  // namespace fer
