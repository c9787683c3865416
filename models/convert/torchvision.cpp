#include "models/convert/torchvision.h"

#include "models/backbones.h"

namespace fer::convert {

namespace {
bool starts_with(const std::string& s, const std::string& head) { return s.rfind(head, 0) == 0; }
bool has_prefix_already(const std::string& family) {
  return family == "vgg16" || family == "mobilenet_v2";
}
void check_family(const std::string& family) {
  FER_CHECK(family == "vgg16" || family == "mobilenet_v2" || family == "resnet50" ||
                family == "inception_v3" || family == "mobilenet_v1",
            "no torchvision name map for '", family,
            "' (vgg16, resnet50, mobilenet_v2, mobilenet_v1, inception_v3)");
}
}  // namespace

std::string torchvision_to_engine_name(const std::string& family, const std::string& name) {
  check_family(family);
  if (starts_with(name, "classifier.") || starts_with(name, "fc.") || starts_with(name, "AuxLogits."))
    return "";
  return has_prefix_already(family) ? name : "features." + name;
}

std::string engine_to_torchvision_name(const std::string& family, const std::string& engine_name) {
  check_family(family);
  if (has_prefix_already(family) || !starts_with(engine_name, "features.")) return engine_name;
  return engine_name.substr(std::string("features.").size());
}

void load_torchvision_backbone(Module& model, const std::string& model_name,
                               const StateDict& source, const std::string& file,
                               ConversionReport& report) {
  const BackboneInfo* info = backbone_info(model_name);
  FER_CHECK(info, "'", model_name, "' is not an ImageNet backbone (see models/backbones.h)");
  FER_CHECK(info->flavor == WeightsFlavor::torchvision || model_name == "mobilenet_v1", file,
            ": torchvision weights go into '", info->family, "', not '", model_name,
            "' (the Keras variants compute what Keras computes)");
  std::map<std::string, SourceTensor> tensors;
  for (const auto& [name, t] : source) {
    const std::string engine = torchvision_to_engine_name(info->family, name);
    if (engine.empty()) {
      report.ignored.push_back(name);
      continue;
    }
    tensors[engine] = SourceTensor{t, "'" + name + "'"};
  }
  auto source_name = [&](const std::string& engine) {
    return "tensor '" + engine_to_torchvision_name(info->family, engine) + "'";
  };
  assign_backbone(model, model_name, tensors, file, source_name, report);
}

}  // namespace fer::convert
