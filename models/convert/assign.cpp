#include "models/convert/assign.h"

#include <set>

#include "engine/autograd.h"

namespace fer::convert {

std::string layer_of(const std::string& tensor_name) {
  const size_t dot = tensor_name.rfind('.');
  return dot == std::string::npos ? tensor_name : tensor_name.substr(0, dot);
}

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

void assign_backbone(Module& model, const std::string& model_name,
                     const std::map<std::string, SourceTensor>& tensors, const std::string& file,
                     const std::function<std::string(const std::string&)>& source_name,
                     ConversionReport& report) {
  StateDict expected;
  for (const auto& [name, t] : model.state_dict())
    if (name.rfind("features.", 0) == 0) expected[name] = t;
  // Everything supplied must be a features tensor of this model.
  for (const auto& [name, src] : tensors)
    FER_CHECK(expected.count(name), file, ": ", src.origin, " (shape ", src.value.shape_str(),
              ") has no place in ", model_name, " (no tensor '", name, "' in its features)");
  NoGradGuard no_grad;
  for (const auto& [name, t] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (ends_with(name, ".num_batches_tracked")) {
        Tensor(t).fill_(0.0f);
        continue;
      }
      fail(file, ": layer '", layer_of(name), "' of ", model_name, " has no weights in the file: ",
           source_name(name), " is missing (the model's '", name, "', shape ", t.shape_str(), ")");
    }
    const Tensor& v = it->second.value;
    FER_CHECK(v.shape() == t.shape(), file, ": layer '", layer_of(name), "' of ", model_name, ": ",
              it->second.origin, " has shape ", v.shape_str(), " but the model expects ",
              t.shape_str(), " (for '", name, "')");
    Tensor(t).copy_(v);
    ++report.tensors_loaded;
  }
}

}  // namespace fer::convert
