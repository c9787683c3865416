// Checkpoints of the apps: one safetensors file holding the model's state dict (plain PyTorch
// names), optionally the optimizer's state ("optim.*"), and in "__metadata__" everything needed
// to rebuild and resume: the architecture and its config, the class names, the preprocessing,
// and the training state (epoch, step, best accuracy, RNG state, schedule state). The config keys
// of the ImageNet backbones ("head", "hidden" as "1024,512", "bn_eps") came later: a checkpoint
// without them takes ModelConfig's defaults, which is what it was built with.
// Written atomically by save_safetensors (temporary file, fsync, rename).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/preprocess.h"
#include "engine/safetensors.h"
#include "models/registry.h"

namespace fer {


// What a checkpoint's model is: enough to build it again and to feed it the right input.
struct ModelSpec {
  std::string name = "fer_vgg_small";
  ModelConfig config;
  std::vector<std::string> class_names;
  data::PreprocessOptions preprocess;
};

Metadata spec_to_metadata(const ModelSpec& spec);
ModelSpec spec_from_metadata(const Metadata& meta, const std::string& file);

// Saves model (+ optional extra tensors such as optimizer state) with spec and extra metadata.
void save_checkpoint(const std::string& path, const Module& model, const ModelSpec& spec,
                     const StateDict& extra_tensors = {}, const Metadata& extra_metadata = {});

struct LoadedCheckpoint {
  std::shared_ptr<Module> model;  // built from the spec, weights loaded, in eval mode
  ModelSpec spec;
  SafetensorsFile file;           // everything in the file (for resuming)
};

// Checksums: save_checkpoint records the CRC-32 of every tensor's bytes in the metadata
// ("crc32.<name>"); load_checkpoint verifies them, so a damaged file is an error naming the
// tensor instead of a model that silently computes garbage. FER_VERIFY_CHECKSUMS=0 skips the
// check (for speed, or to salvage a file); files without checksums load unchecked.
Metadata tensor_checksums(const StateDict& tensors);
void verify_checksums(const SafetensorsFile& file, const std::string& path);

// Tensors of a run's state rather than of the model: the optimizer's ("optim.*") and the weight
// averages' ("ema.*", "swa.*", apps/training/weight_average.h).
bool is_training_state(const std::string& tensor_name);

// Builds the model named in the file and loads its weights (strictly: a missing, extra or
// mis-shaped tensor is an error naming it and the file). Training-state tensors are not model
// weights and are left in file.tensors for the optimizer and the averages.
LoadedCheckpoint load_checkpoint(const std::string& path, Device device = Device::CPU);

// The network `spec` describes, for a file whose model tensors hold `weight_bytes`, built under a
// StorageBudget (engine/tensor.h): a network that file can fill allocates its weights and their
// initial values, about twice their bytes, so building stops past 3x (+ 1 MiB) with an error
// naming the file, before a crafted spec ("hidden": "100000000") can ask for gigabytes. The
// first step of load_checkpoint after the metadata is read.
std::shared_ptr<Module> build_model(const ModelSpec& spec, size_t weight_bytes, const std::string& file);

// ---- Finding checkpoints and ensembles -----------------------------------------------------------

// Where a checkpoint is: `path` itself if it exists; for a relative path that does not, the same
// path under $FER_SOURCE_DIR, then under the executable's parent and own directories (so the
// default works from the repository root and from build/). Throws naming every place it looked.
std::string locate_checkpoint(const std::string& path);

// The checkpoint files a --checkpoint value names, located: a comma-separated list of checkpoint
// files and ensemble manifests. A manifest is a JSON file {"name": ..., "members": [files
// relative to the manifest], ...}; a bare name NAME (no '/', no extension) is the shipped
// manifest models/pretrained/NAME.json. `fer_eval --checkpoint fer_ensemble` thus evaluates the
// shipped ensemble. Throws naming the manifest for a bad one.
std::vector<std::string> checkpoint_members(const std::string& list);

// ---- Calibrated confidences (engine/calibration.h) --------------------------------------------
// The temperature fitted by `fer_eval --calibrate` is part of the checkpoint's metadata
// ("calibration.temperature", with the split and test-time augmentation it was fitted on); every
// app applies it to the model's probabilities. 1 (no change) when the checkpoint has none.
double calibration_temperature(const Metadata& meta, const std::string& file);
// Rewrites `path` (atomically) with the calibration in its metadata; everything else unchanged.
void store_calibration(const std::string& path, double temperature, const std::string& fitted_on);

// ---- Lists as text: metadata values, and the apps' flags that name the same things ----------

// "a,b,,c" -> {"a", "b", "c"}: the items of a comma-separated list (an ensemble's checkpoints,
// class names), empty ones dropped.
std::vector<std::string> split_list(const std::string& text);

// "1024,256" -> {1024, 256}; "" -> {} (ModelConfig::hidden). Anything but positive integers is an
// error that starts with `what` (the flag, or the file and key the text came from).
std::vector<int64_t> parse_sizes(const std::string& text, const std::string& what);

}  // namespace fer
