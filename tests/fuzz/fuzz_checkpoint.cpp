// libFuzzer target: a checkpoint's metadata (the safetensors header's "__metadata__", a JSON object
// of strings; engine/safetensors.h refuses any other) into everything the engine makes of it:
//   - the model spec and the network it describes (spec_from_metadata, then build_model with the
//     shipped checkpoint's tensor bytes: what load_checkpoint does before loading the weights),
//   - the calibration temperature every app applies, the CRC-32 table checked on load,
//   - what --resume reads: the run's position, the optimizer's hyper-parameters and step counts
//     (SGD, Adam, AdamW over fer_vgg_small, as fer_train builds them), the fine-tuning plan, the
//     feature-cache settings and ReduceLROnPlateau's state.
// Any input must be accepted or rejected with fer::Error: never a crash, undefined behaviour, an
// exception of another type, or an allocation beyond what a file of the shipped checkpoint's size
// could fill. Seeds (scripts/fuzz.sh, tests/fuzz/make_seeds.cpp): the shipped checkpoint's
// metadata, a resumable run's (position, optimizer, settings, plan) and backbone specs, as JSON, so
// that mutations of the JSON text keep most inputs parsing and reach the engine's checks.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/training/checkpoint.h"
#include "apps/training/finetune.h"
#include "apps/training/resume_state.h"
#include "engine/error.h"
#include "engine/lr_schedule.h"
#include "engine/optim.h"

namespace {

constexpr const char* kFile = "fuzz.safetensors";
// models/pretrained/fer_vgg_small.safetensors holds 7,073,020 bytes, nearly all of them tensors:
// the metadata is fuzzed as if it came with that much weight data.
constexpr size_t kShippedTensorBytes = 7 << 20;

// What fer_train has when it resumes: a fer_vgg_small, its plain fine-tuning plan (one with the
// backbone frozen too), the optimizers over its parameters and their state tensors (zeros of the
// parameters' shapes under every name an optimizer keeps: "optim.<i>.<name>").
struct ResumeTarget {
  std::shared_ptr<fer::Module> model = fer::create_model("fer_vgg_small");
  fer::FinetunePlan plan = fer::plan_finetune(*model, {});
  fer::FinetunePlan frozen_plan = [this] {
    fer::FinetuneOptions o;
    o.freeze_backbone = true;
    return fer::plan_finetune(*model, o);
  }();
  std::vector<std::unique_ptr<fer::Optimizer>> optimizers;
  fer::StateDict state;
  ResumeTarget() {
    const std::vector<fer::Tensor> params = model->parameters();
    optimizers.push_back(std::make_unique<fer::SGD>(params, 0.01f, 0.9f, 0.0f, 5e-4f, true));
    optimizers.push_back(std::make_unique<fer::Adam>(params, 1e-3f));
    optimizers.push_back(std::make_unique<fer::AdamW>(params, 1e-3f));
    for (size_t i = 0; i < params.size(); ++i)
      for (const char* name : {"momentum_buffer", "exp_avg", "exp_avg_sq"})
        state["optim." + std::to_string(i) + "." + name] = fer::Tensor::zeros(params[i].shape());
  }
};

template <typename F>
void either_works_or_fer_error(F&& f) {
  try {
    f();
  } catch (const fer::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ResumeTarget resume;
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return 0;
  fer::Metadata meta;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return 0;  // the safetensors reader refuses it
    meta[key] = value.get<std::string>();
  }

  // Loading (load_checkpoint, every app): the spec, then the network it describes. Building is a
  // function of the spec alone, and most mutations change other keys, so a spec built (or
  // refused) before is not built again: a fer_vgg_small takes milliseconds to initialise, the
  // other checks microseconds.
  static std::set<std::string> tried;
  either_works_or_fer_error([&] {
    const fer::ModelSpec spec = fer::spec_from_metadata(meta, kFile);
    std::string key;
    for (const auto& [k, v] : fer::spec_to_metadata(spec)) key += k + '=' + v + '\n';
    if (!tried.insert(key).second) return;
    if (tried.size() > 100000) tried.clear();
    const std::shared_ptr<fer::Module> model = fer::build_model(spec, kShippedTensorBytes, kFile);
    if (model->parameter_count() <= 0) __builtin_trap();
  });
  either_works_or_fer_error([&] {
    const double t = fer::calibration_temperature(meta, kFile);
    if (!(t > 0)) __builtin_trap();
  });
  either_works_or_fer_error([&] {
    fer::SafetensorsFile file;
    file.metadata = meta;
    file.tensors["classifier.3.bias"] = fer::Tensor::zeros({7});
    file.tensors["features.0.weight"] = fer::Tensor::zeros({32, 1, 3, 3});
    fer::verify_checksums(file, kFile);
  });

  // Resuming (fer_train --resume): position, plan, cache settings, optimizer, plateau schedule.
  either_works_or_fer_error([&] { (void)fer::position_from(meta); });
  either_works_or_fer_error([&] { resume.plan.check_matches(meta, kFile); });
  either_works_or_fer_error([&] { resume.frozen_plan.check_matches(meta, kFile); });
  either_works_or_fer_error([&] { fer::check_cache_matches(fer::TrainOptions{}, meta, kFile); });
  for (auto& optimizer : resume.optimizers)
    either_works_or_fer_error([&] { optimizer->load_state_dict(resume.state, meta); });
  either_works_or_fer_error([&] {
    fer::ReduceLROnPlateau plateau("max");
    plateau.from_metadata(meta);
  });
  return 0;
}
