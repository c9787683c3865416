// Keras layer names -> engine modules, and the values' conversion (see keras.h for the maps).
#include "models/convert/keras.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "models/backbones.h"
#include "models/convert/layout.h"

namespace fer::convert {

namespace {

enum class Kind { conv, depthwise, batchnorm };
struct Rule {
  std::string engine;     // the engine module ("features.layer1.0.conv1")
  Kind kind;
  std::string fold_into;  // conv whose bias goes into this BatchNorm's running_mean
};
using Rules = std::map<std::string, Rule>;  // Keras layer name -> rule

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool has_layer(const KerasFile& f, const std::string& name) {
  for (const auto& l : f.layers)
    if (l.name == name) return true;
  return false;
}
bool resnet_keras1_names(const KerasFile& f) {
  return has_layer(f, "bn_conv1") || has_layer(f, "res2a_branch2a");
}

Rules vgg16_rules() {
  Rules r;
  const int convs[5] = {2, 2, 3, 3, 3};
  int index = 0;
  for (int b = 1; b <= 5; ++b) {
    for (int i = 1; i <= convs[b - 1]; ++i, index += 2)  // conv + ReLU
      r["block" + std::to_string(b) + "_conv" + std::to_string(i)] = {"features." + std::to_string(index), Kind::conv, ""};
    index += 1;  // the max pool
  }
  return r;
}

Rules resnet50_rules(const KerasFile& f) {
  Rules r;
  const bool old = resnet_keras1_names(f);
  r[old ? "conv1" : "conv1_conv"] = {"features.conv1", Kind::conv, "features.bn1"};
  r[old ? "bn_conv1" : "conv1_bn"] = {"features.bn1", Kind::batchnorm, ""};
  const int blocks[4] = {3, 4, 6, 3};
  const char* old_branch[4] = {"branch1", "branch2a", "branch2b", "branch2c"};
  for (int s = 2; s <= 5; ++s) {
    for (int b = 1; b <= blocks[s - 2]; ++b) {
      const std::string E = "features.layer" + std::to_string(s - 1) + "." + std::to_string(b - 1);
      for (int k = 0; k <= 3; ++k) {
        if (k == 0 && b > 1) continue;  // only the first block of a stage has a conv shortcut
        const std::string conv = k == 0 ? E + ".downsample.0" : E + ".conv" + std::to_string(k);
        const std::string bn = k == 0 ? E + ".downsample.1" : E + ".bn" + std::to_string(k);
        std::string kconv, kbn;
        if (old) {
          const std::string letter(1, static_cast<char>('a' + b - 1));
          const std::string id = std::to_string(s) + letter + "_" + old_branch[k];
          kconv = "res" + id;
          kbn = "bn" + id;
        } else {
          const std::string id = "conv" + std::to_string(s) + "_block" + std::to_string(b) + "_" + std::to_string(k);
          kconv = id + "_conv";
          kbn = id + "_bn";
        }
        r[kconv] = {conv, Kind::conv, bn};
        r[kbn] = {bn, Kind::batchnorm, ""};
      }
    }
  }
  return r;
}

Rules mobilenet_v2_rules() {
  Rules r;
  r["Conv1"] = {"features.0.0", Kind::conv, ""};
  r["bn_Conv1"] = {"features.0.1", Kind::batchnorm, ""};
  r["expanded_conv_depthwise"] = {"features.1.conv.0.0", Kind::depthwise, ""};
  r["expanded_conv_depthwise_BN"] = {"features.1.conv.0.1", Kind::batchnorm, ""};
  r["expanded_conv_project"] = {"features.1.conv.1", Kind::conv, ""};
  r["expanded_conv_project_BN"] = {"features.1.conv.2", Kind::batchnorm, ""};
  for (int k = 1; k <= 16; ++k) {
    const std::string K = "block_" + std::to_string(k) + "_", E = "features." + std::to_string(k + 1) + ".conv.";
    r[K + "expand"] = {E + "0.0", Kind::conv, ""};
    r[K + "expand_BN"] = {E + "0.1", Kind::batchnorm, ""};
    r[K + "depthwise"] = {E + "1.0", Kind::depthwise, ""};
    r[K + "depthwise_BN"] = {E + "1.1", Kind::batchnorm, ""};
    r[K + "project"] = {E + "2", Kind::conv, ""};
    r[K + "project_BN"] = {E + "3", Kind::batchnorm, ""};
  }
  r["Conv_1"] = {"features.18.0", Kind::conv, ""};
  r["Conv_1_bn"] = {"features.18.1", Kind::batchnorm, ""};
  return r;
}

Rules mobilenet_v1_rules() {
  Rules r;
  r["conv1"] = {"features.conv1", Kind::conv, ""};
  r["conv1_bn"] = {"features.conv1_bn", Kind::batchnorm, ""};
  for (int i = 1; i <= 13; ++i) {
    const std::string dw = "conv_dw_" + std::to_string(i), pw = "conv_pw_" + std::to_string(i);
    r[dw] = {"features." + dw, Kind::depthwise, ""};
    r[dw + "_bn"] = {"features." + dw + "_bn", Kind::batchnorm, ""};
    r[pw] = {"features." + pw, Kind::conv, ""};
    r[pw + "_bn"] = {"features." + pw + "_bn", Kind::batchnorm, ""};
  }
  return r;
}

// Keras's automatic layer numbering: "conv2d_17" -> 17, "conv2d" -> 0.
int64_t auto_number(const std::string& name) {
  const size_t us = name.rfind('_');
  if (us == std::string::npos || us + 1 == name.size()) return 0;
  for (size_t i = us + 1; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return 0;
  return std::stoll(name.substr(us + 1));
}

Rules inception_rules(Module& model, const KerasFile& f, const std::string& file) {
  std::vector<std::string> engine;  // BasicConv2d modules in the engine's (= Keras's creation) order
  for (const auto& [name, t] : model.named_parameters())
    if (name.rfind("features.", 0) == 0 && ends_with(name, ".conv.weight"))
      engine.push_back(name.substr(0, name.size() - std::string(".conv.weight").size()));
  std::vector<const KerasLayer*> convs, bns;
  for (const auto& layer : f.layers) {
    bool kernel = false, stats = false;
    for (const auto& w : layer.weights) {
      const KerasRole role = keras_role(w.name, layer.name, file);
      kernel |= role == KerasRole::kernel && w.value.dim() == 4;
      stats |= role == KerasRole::moving_mean;
    }
    if (kernel) convs.push_back(&layer);
    if (stats) bns.push_back(&layer);
  }
  auto by_number = [](const KerasLayer* a, const KerasLayer* b) {
    const int64_t na = auto_number(a->name), nb = auto_number(b->name);
    return na != nb ? na < nb : a->name < b->name;
  };
  std::stable_sort(convs.begin(), convs.end(), by_number);
  std::stable_sort(bns.begin(), bns.end(), by_number);
  FER_CHECK(convs.size() == engine.size() && bns.size() == engine.size(), file, ": ", convs.size(),
            " convolution and ", bns.size(), " batchnorm layers, but InceptionV3 has ",
            engine.size(), " of each (is this an InceptionV3 file?)");
  Rules r;
  for (size_t i = 0; i < engine.size(); ++i) {
    r[convs[i]->name] = {engine[i] + ".conv", Kind::conv, ""};
    r[bns[i]->name] = {engine[i] + ".bn", Kind::batchnorm, ""};
  }
  return r;
}

const std::set<std::string>& top_layers() {
  static const std::set<std::string> names = {"fc1", "fc2", "predictions", "fc1000",
                                              "probs", "Logits", "conv_preds"};
  return names;
}

Tensor sub_vectors(const Tensor& a, const Tensor& b) {
  std::vector<float> va = a.to_vector();
  const std::vector<float> vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i) va[i] -= vb[i];
  return Tensor::from_vector(a.shape(), va);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

KerasRole keras_role(const std::string& weight_name, const std::string& layer, const std::string& file) {
  std::string n = lower(weight_name.substr(weight_name.rfind('/') == std::string::npos ? 0 : weight_name.rfind('/') + 1));
  // Drop TensorFlow's ":0" and the "_1" Keras 1 appended to make variable names unique.
  if (const size_t colon = n.rfind(':'); colon != std::string::npos) n = n.substr(0, colon);
  while (!n.empty()) {
    const size_t us = n.rfind('_');
    if (us == std::string::npos || us + 1 == n.size()) break;
    bool digits = true;
    for (size_t i = us + 1; i < n.size(); ++i) digits &= std::isdigit(static_cast<unsigned char>(n[i])) != 0;
    if (!digits) break;
    n = n.substr(0, us);
  }
  const std::pair<const char*, KerasRole> tails[] = {
      {"depthwise_kernel", KerasRole::depthwise_kernel}, {"kernel", KerasRole::kernel},
      {"gamma", KerasRole::gamma}, {"beta", KerasRole::beta},
      {"moving_mean", KerasRole::moving_mean}, {"running_mean", KerasRole::moving_mean},
      {"moving_variance", KerasRole::moving_variance}, {"running_std", KerasRole::moving_variance},
      {"running_var", KerasRole::moving_variance}, {"bias", KerasRole::bias}};
  for (const auto& [tail, role] : tails)
    if (ends_with(n, tail)) return role;
  if (n == "w" || ends_with(n, "_w")) return KerasRole::kernel;
  if (n == "b" || ends_with(n, "_b")) return KerasRole::bias;
  fail(file, ": Keras layer '", layer, "': cannot tell what weight '", weight_name,
       "' is (expected kernel, depthwise_kernel, bias, gamma, beta, moving_mean or moving_variance)");
}

float keras_bn_eps(const std::string& model_name, const KerasFile& weights) {
  if (model_name == "resnet50_keras" && resnet_keras1_names(weights)) return 1e-3f;
  return 0.0f;
}

void load_keras_backbone(Module& model, const std::string& model_name, const KerasFile& w,
                         const std::string& file, ConversionReport& report) {
  const BackboneInfo* info = backbone_info(model_name);
  FER_CHECK(info, "'", model_name, "' is not an ImageNet backbone (see models/backbones.h)");
  FER_CHECK(info->flavor == WeightsFlavor::keras, file, ": Keras weights go into the Keras variant '",
            info->family == "mobilenet_v1" ? info->family : info->family + "_keras", "', not '",
            model_name, "' (torchvision's architecture computes something else)");
  Rules rules;
  if (info->family == "vgg16") rules = vgg16_rules();
  else if (info->family == "resnet50") rules = resnet50_rules(w);
  else if (info->family == "mobilenet_v2") rules = mobilenet_v2_rules();
  else if (info->family == "mobilenet_v1") rules = mobilenet_v1_rules();
  else rules = inception_rules(model, w, file);

  const StateDict state = model.state_dict();
  std::map<std::string, SourceTensor> tensors;
  struct Fold {
    std::string bn;
    Tensor bias;
    std::string origin;
  };
  std::vector<Fold> folds;
  int64_t no_gamma = 0;
  std::set<std::string> seen;
  for (const auto& layer : w.layers) {
    if (layer.weights.empty()) continue;
    auto it = rules.find(layer.name);
    if (it == rules.end()) {
      std::string what;
      for (const auto& kw : layer.weights) what += (what.empty() ? "" : ", ") + kw.name + " " + kw.value.shape_str();
      FER_CHECK(top_layers().count(layer.name), file, ": Keras layer '", layer.name, "' (", what,
                ") has no place in ", model_name, " (is this a ", info->family, " file?)");
      report.ignored.push_back("Keras layer '" + layer.name + "' (the ImageNet classifier)");
      continue;
    }
    FER_CHECK(seen.insert(layer.name).second, file, ": Keras layer '", layer.name, "' appears twice");
    const Rule& rule = it->second;
    std::set<KerasRole> roles;
    int64_t bn_channels = 0;
    for (const auto& kw : layer.weights) {
      const KerasRole role = keras_role(kw.name, layer.name, file);
      FER_CHECK(roles.insert(role).second, file, ": Keras layer '", layer.name, "' has two weights like '", kw.name, "'");
      const std::string where = "Keras layer '" + layer.name + "' weight '" + kw.name + "'";
      const std::string origin = where + " (" + kw.value.shape_str() + " in Keras's layout)";
      auto put = [&](const std::string& suffix, const Tensor& v) {
        tensors[rule.engine + suffix] = SourceTensor{v, origin};
      };
      auto wrong = [&]() {
        fail(file, ": ", where, " does not fit layer '", rule.engine, "' of ", model_name, " (a ",
             rule.kind == Kind::batchnorm ? "BatchNorm" : rule.kind == Kind::conv ? "convolution" : "depthwise convolution", ")");
      };
      switch (rule.kind) {
        case Kind::conv:
        case Kind::depthwise:
          if (role == KerasRole::kernel && rule.kind == Kind::conv) {
            put(".weight", hwio_to_oihw(kw.value, file + ": " + where));
          } else if (role == KerasRole::depthwise_kernel && rule.kind == Kind::depthwise) {
            put(".weight", depthwise_to_oihw(kw.value, file + ": " + where));
          } else if (role == KerasRole::bias) {
            if (state.count(rule.engine + ".bias"))
              put(".bias", kw.value);
            else if (!rule.fold_into.empty())
              folds.push_back({rule.fold_into, kw.value, origin});
            else
              fail(file, ": ", where, ": layer '", rule.engine, "' of ", model_name, " has no bias");
          } else {
            wrong();
          }
          break;
        case Kind::batchnorm:
          if (role == KerasRole::gamma) put(".weight", kw.value);
          else if (role == KerasRole::beta) put(".bias", kw.value);
          else if (role == KerasRole::moving_mean) { put(".running_mean", kw.value); bn_channels = kw.value.numel(); }
          else if (role == KerasRole::moving_variance) put(".running_var", kw.value);
          else wrong();
          break;
      }
    }
    if (rule.kind == Kind::batchnorm && bn_channels > 0) {
      // Keras BatchNormalization(scale=False) / (center=False) stores no gamma / beta: 1 and 0.
      const std::string origin = "Keras layer '" + layer.name + "'";
      if (!roles.count(KerasRole::gamma)) {
        tensors[rule.engine + ".weight"] = {Tensor::ones({bn_channels}), origin + " (no gamma: scale=False, so 1)"};
        ++no_gamma;
      }
      if (!roles.count(KerasRole::beta))
        tensors[rule.engine + ".bias"] = {Tensor::zeros({bn_channels}), origin + " (no beta: center=False, so 0)"};
    }
  }
  // BN(conv(x) + b) with running mean m == BN(conv(x)) with running mean m - b.
  for (const Fold& f : folds) {
    auto mean = tensors.find(f.bn + ".running_mean");
    if (mean == tensors.end()) continue;  // the BatchNorm is missing: assign_backbone says so
    FER_CHECK(mean->second.value.shape() == f.bias.shape(), file, ": ", f.origin,
              " cannot fold into layer '", f.bn, "': its moving_mean has shape ",
              mean->second.value.shape_str());
    mean->second.value = sub_vectors(mean->second.value, f.bias);
  }
  if (!folds.empty())
    report.notes.push_back(std::to_string(folds.size()) +
                           " convolution biases folded into the next BatchNorm's running_mean");
  if (no_gamma > 0)
    report.notes.push_back(std::to_string(no_gamma) + " BatchNorms without gamma (scale=False): weight set to 1");

  // For "missing" messages: which Keras layer should have held an engine tensor.
  std::map<std::string, std::string> keras_of;
  for (const auto& [keras, rule] : rules) keras_of[rule.engine] = keras;
  auto source_name = [&](const std::string& engine) {
    auto it = keras_of.find(layer_of(engine));
    if (it == keras_of.end()) return std::string("a Keras weight for it");
    const std::string t = engine.substr(engine.rfind('.') + 1);
    const char* role = t == "weight" ? (rules.at(it->second).kind == Kind::batchnorm ? "gamma" : "kernel")
                       : t == "bias" ? (rules.at(it->second).kind == Kind::batchnorm ? "beta" : "bias")
                       : t == "running_mean" ? "moving_mean" : "moving_variance";
    return "Keras layer '" + it->second + "' weight '" + role + "'";
  };
  assign_backbone(model, model_name, tensors, file, source_name, report);
}

}  // namespace fer::convert
