// fer_convert: ImageNet weights from torchvision or Keras -> an engine checkpoint to fine-tune;
// an engine checkpoint (or any registry model) -> an ONNX file.
//
//   fer_convert --weights resnet50.safetensors --model resnet50 --out init.safetensors
//   fer_convert --weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 --model vgg16
//               --input-size 96 --hidden 512 --out vgg16_keras_init.safetensors
//   fer_train --model <the name it prints> --init init.safetensors ...
//   fer_convert --to onnx --checkpoint models/pretrained/fer_vgg_small.safetensors --out fer.onnx
//   fer_convert --to onnx --model mobilenet_v2 --input-size 96 --out mobilenet_v2.onnx  (fresh weights)
//
// ONNX (--to onnx, models/export/onnx_export.h): the graph takes what the model's forward takes,
// float [N, C, S, S] preprocessed faces (S = the model's input size for the FER CNNs, the 48x48
// face for the backbones, whose input adapter - resize, gray -> 3 channels, normalisation - is in
// the graph), and returns "logits" [N, classes] and "probabilities" = softmax(logits / T), T the
// checkpoint's calibration temperature (1 without one). The preprocessing before the graph
// (equalisation, scaling to [0, 1], crops) and the class names are in the file's metadata.
//
// Sources (--from, by default from the extension):
//   torchvision  a state dict saved as safetensors. Debian has no python3-safetensors; the
//                project's own writer does it (tests/reference/safetensors_io.py):
//                  import sys, torchvision; sys.path.insert(0, "tests/reference")
//                  from safetensors_io import save_file
//                  save_file(torchvision.models.resnet50(weights="DEFAULT").state_dict(), "resnet50.safetensors")
//   keras        a Keras Applications .h5 weights file (needs a build with HDF5).
// The output is a checkpoint (apps/training/checkpoint.h) of the backbone model named in
// models/backbones.h: Keras files go into the "_keras" variants, which compute what Keras
// computes. The backbone's weights come from the file; the head (--head, --hidden, --dropout,
// --classes) is freshly initialised with --seed. A missing or mis-shaped tensor is an error that
// names the layer, the tensor and both shapes.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/cli/args.h"
#include "apps/training/checkpoint.h"
#include "data/fer2013.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/backbones.h"
#include "models/convert/keras.h"
#include "models/convert/torchvision.h"
#include "models/export/onnx_export.h"

using namespace fer;

namespace {

std::string source_format(const std::string& from, const std::string& path) {
  if (from != "auto") {
    FER_CHECK(from == "torchvision" || from == "keras", "--from: '", from, "' (auto | torchvision | keras)");
    return from;
  }
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".h5" || ext == ".hdf5" || ext == ".keras") return "keras";
  if (ext == ".safetensors") return "torchvision";
  fail("--weights ", path, ": cannot tell the format from the extension '", ext,
       "': pass --from torchvision (safetensors) or --from keras (.h5)");
}

// --model accepts the family ("resnet50") or the exact variant; Keras files use the Keras variant.
std::string model_for(const std::string& requested, const std::string& format) {
  auto variant = [&](const std::string& family) -> std::string {
    for (const auto& b : backbone_infos())
      if (b.family == family &&
          (b.family == "mobilenet_v1" || (b.flavor == WeightsFlavor::keras) == (format == "keras")))
        return b.name;
    return "";
  };
  // A family name ("resnet50") picks the source's variant; an explicit variant must fit it.
  if (const std::string right = variant(requested); !right.empty()) return right;
  if (const BackboneInfo* info = backbone_info(requested)) {
    const std::string right = variant(info->family);
    FER_CHECK(right == requested, "--model ", requested, ": ", format, " weights go into '", right,
              "' (models/backbones.h: the variants differ in what they compute)");
    return requested;
  }
  std::string known;
  for (const auto& b : backbone_infos()) known += (known.empty() ? "" : ", ") + b.name;
  fail("--model '", requested, "' is not an ImageNet backbone (", known, ")");
}

// Where fer_convert's flags go: the checkpoint's model spec (its head), and the conversion.
struct ConvertFlags {
  ModelSpec spec;
  std::string weights, from, model, out, hidden, classes, to, checkpoint;
  int64_t face_size = 0;
  bool probabilities = true;
  uint64_t seed = 1;
};

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += (s.empty() ? "" : ",") + item;
  return s;
}

// --to onnx: a checkpoint (--checkpoint) or a registry model with fresh weights (--model) -> ONNX.
int export_onnx_file(ConvertFlags& flags) {
  FER_CHECK(flags.weights.empty(), "--to onnx exports a checkpoint: convert --weights into one first "
                                   "(fer_convert --weights ... --out init.safetensors)");
  FER_CHECK(flags.checkpoint.empty() != flags.model.empty(),
            "--to onnx needs either --checkpoint FILE or --model NAME (fresh weights), not both");
  ModelSpec spec = flags.spec;
  std::shared_ptr<Module> model;
  double temperature = 1.0;
  std::string source;
  if (!flags.checkpoint.empty()) {
    const std::string path = locate_checkpoint(flags.checkpoint);
    LoadedCheckpoint ck = load_checkpoint(path);
    model = ck.model;
    spec = ck.spec;
    temperature = calibration_temperature(ck.file.metadata, path);
    source = std::filesystem::path(path).filename().string();
  } else {
    spec.name = flags.model;
    spec.class_names = flags.classes.empty() ? data::fer_class_names() : split_list(flags.classes);
    spec.config.num_classes = static_cast<int64_t>(spec.class_names.size());
    spec.config.hidden = parse_sizes(flags.hidden, "--hidden");
    const BackboneInfo* info = backbone_info(flags.model);
    if (spec.config.input_size <= 0) spec.config.input_size = info ? info->native_input : ModelConfig{}.input_size;
    manual_seed(flags.seed);
    model = create_model(flags.model, spec.config);
    source = "fresh weights, seed " + std::to_string(flags.seed);
  }
  // The input side: the FER CNNs' own; the 48x48 face for backbones (the adapter resizes it).
  const bool backbone = backbone_info(spec.name) != nullptr;
  const int64_t side = flags.face_size > 0 ? flags.face_size : backbone ? 48 : spec.config.input_size;

  OnnxExportOptions options;
  options.input_shape = {1, spec.config.in_channels, side, side};
  options.temperature = flags.probabilities ? static_cast<float>(temperature) : 0.0f;
  options.graph_name = spec.name;
  options.doc_string = "Facial expression recognition: " + spec.name + " (" + source +
                       "). input: float [N, " + std::to_string(spec.config.in_channels) + ", " +
                       std::to_string(side) + ", " + std::to_string(side) +
                       "] faces, pixels / 255 after histogram equalisation (see metadata); "
                       "outputs: logits [N, classes] and probabilities = softmax(logits / T).";
  const data::PreprocessOptions& pre = spec.preprocess;
  options.metadata = {{"model", spec.name},
                      {"source", source},
                      {"class_names", join(spec.class_names)},
                      {"input_size", std::to_string(side)},
                      {"preprocess.equalize", pre.equalize ? "true" : "false"},
                      {"preprocess.scale", "1/255"},
                      {"preprocess.standardize", pre.standardize ? "true" : "false"},
                      {"preprocess.mean", std::to_string(pre.mean)},
                      {"preprocess.std", std::to_string(pre.std)},
                      {"preprocess.crop", std::to_string(pre.crop)},
                      {"calibration.temperature", std::to_string(temperature)}};
  const auto start = std::chrono::steady_clock::now();
  const OnnxExportResult result = export_onnx(*model, options);
  write_file_atomically(flags.out, result.bytes);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::string ops;
  int nodes = 0;
  for (const auto& [op, n] : result.node_counts) {
    ops += (ops.empty() ? "" : ", ") + op + " " + std::to_string(n);
    nodes += n;
  }
  std::printf("%s -> %s: model %s (%s), ONNX opset 13, %.1f MB in %.2f s\n",
              flags.checkpoint.empty() ? flags.model.c_str() : flags.checkpoint.c_str(),
              flags.out.c_str(), spec.name.c_str(), source.c_str(), result.bytes.size() / 1e6, seconds);
  std::printf("  input [N, %lld, %lld, %lld] -> logits [N, %zu]%s\n",
              static_cast<long long>(spec.config.in_channels), static_cast<long long>(side),
              static_cast<long long>(side), spec.class_names.size(),
              options.temperature > 0 ? (" + probabilities (softmax(logits / " + std::to_string(temperature) + "))").c_str() : "");
  std::printf("  %d nodes (%s), %lld initializers, %.2f M parameters\n", nodes, ops.c_str(),
              static_cast<long long>(result.initializer_count), result.parameter_count / 1e6);
  return 0;
}

int run(int argc, char** argv) {
  ConvertFlags flags;
  ModelSpec& spec = flags.spec;
  cli::Args args("fer_convert",
                 "Convert torchvision (safetensors) or Keras (.h5) ImageNet weights into a checkpoint "
                 "for fer_train --init, or a checkpoint (or a fresh registry model) into ONNX (--to onnx).");
  args.bind({
      {"to", "checkpoint", "checkpoint (from --weights) | onnx (from --checkpoint or --model)", &flags.to},
      {"weights", "", "the source weights file (.safetensors or .h5)", &flags.weights},
      {"from", "auto", "auto (by extension) | torchvision | keras", &flags.from},
      {"model", "", "vgg16 | resnet50 | mobilenet_v2 | mobilenet_v1 | inception_v3 (or a _keras variant); "
                    "with --to onnx any registry model, with fresh weights", &flags.model},
      {"checkpoint", "", "--to onnx: the checkpoint to export", &flags.checkpoint},
      {"out", "", "the checkpoint (or .onnx file) to write", &flags.out},
      {"face-size", "0", "--to onnx: side of the graph's input (0 = the model's: its input size, "
                         "48 for backbones)", &flags.face_size},
      {"probabilities", "true", "--to onnx: also output softmax(logits / calibration temperature)",
       &flags.probabilities},
      {"input-size", "0", "side the input adapter resizes faces to (0 = the ImageNet size, 224 or 299)",
       &spec.config.input_size},
      {"head", "gap", "gap (global average pooling) | flatten", &spec.config.head},
      {"hidden", "", "hidden dense layer sizes of the head, e.g. 1024 or 512,256 (none by default)", &flags.hidden},
      {"dropout", "0.5", "dropout after each hidden dense layer", &spec.config.dropout},
      {"classes", "", "class names, comma-separated (default: FER2013's seven)", &flags.classes},
      {"equalize", "true", "record histogram equalisation in the checkpoint's preprocessing",
       &spec.preprocess.equalize},
      {"seed", "1", "seed of the head's initialisation", &flags.seed},
  });
  args.parse(argc, argv);
  FER_CHECK(!flags.out.empty(), "--out is required");
  if (flags.to == "onnx") return export_onnx_file(flags);
  FER_CHECK(flags.to == "checkpoint", "--to: '", flags.to, "' (checkpoint | onnx)");
  FER_CHECK(flags.checkpoint.empty(), "--checkpoint is for --to onnx (converting --weights writes one)");
  FER_CHECK(!flags.weights.empty(), "--weights is required");
  FER_CHECK(!flags.model.empty(), "--model is required");
  FER_CHECK(!flags.out.empty(), "--out is required");
  const std::string& path = flags.weights;
  const std::string format = source_format(flags.from, path);
  const std::string name = model_for(flags.model, format);
  const BackboneInfo& info = *backbone_info(name);

  spec.name = name;
  spec.class_names = flags.classes.empty() ? data::fer_class_names() : split_list(flags.classes);
  FER_CHECK(spec.class_names.size() >= 2, "--classes: at least two class names");
  spec.config.num_classes = static_cast<int64_t>(spec.class_names.size());
  if (spec.config.input_size <= 0) spec.config.input_size = info.native_input;
  spec.config.hidden = parse_sizes(flags.hidden, "--hidden");

  convert::ConversionReport report;
  std::shared_ptr<Module> model;
  manual_seed(flags.seed);
  if (format == "keras") {
    const convert::KerasFile keras = convert::read_keras_h5(path);
    spec.config.bn_eps = convert::keras_bn_eps(name, keras);
    model = create_model(name, spec.config);
    convert::load_keras_backbone(*model, name, keras, path, report);
    if (spec.config.bn_eps > 0)
      report.notes.push_back("BatchNorm eps " + std::to_string(spec.config.bn_eps) +
                             " (the Keras 1 era ResNet50 file), recorded in the checkpoint");
  } else {
    FER_CHECK(std::filesystem::is_regular_file(path), path, ": no such file");
    const SafetensorsFile file = load_safetensors(path);
    model = create_model(name, spec.config);
    convert::load_torchvision_backbone(*model, name, file.tensors, path, report);
  }

  save_checkpoint(flags.out, *model, spec, {},
                  {{"converted_from", std::filesystem::path(path).filename().string()},
                   {"converted_format", format}});
  std::printf("%s -> %s: model %s (%s weights), %lld backbone tensors loaded\n", path.c_str(),
              flags.out.c_str(), name.c_str(), format.c_str(),
              static_cast<long long>(report.tensors_loaded));
  if (!report.ignored.empty())
    std::printf("  ignored %zu source tensors/layers of the ImageNet head, e.g. %s\n",
                report.ignored.size(), report.ignored.front().c_str());
  for (const std::string& note : report.notes) std::printf("  %s\n", note.c_str());
  std::printf("  input %lldx%lld, head %s%s%s -> %lld classes; %.2f M parameters, %.3f GFLOP per face\n",
              static_cast<long long>(spec.config.input_size), static_cast<long long>(spec.config.input_size),
              spec.config.head.c_str(), spec.config.hidden.empty() ? "" : " + hidden ",
              flags.hidden.c_str(), static_cast<long long>(spec.config.num_classes),
              model->parameter_count() / 1e6, forward_flops(*model, 1, 48) / 1e9);
  std::printf("  next: fer_train --model %s --init %s ...\n", name.c_str(), flags.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_main("fer_convert", run, argc, argv); }
