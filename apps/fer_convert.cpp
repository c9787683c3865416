// fer_convert: ImageNet weights from torchvision or Keras -> an engine checkpoint to fine-tune.
//
//   fer_convert --weights resnet50.safetensors --model resnet50 --out init.safetensors
//   fer_convert --weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 --model vgg16
//               --input-size 96 --hidden 512 --out vgg16_keras_init.safetensors
//   fer_train --model <the name it prints> --init init.safetensors ...
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
  std::string weights, from, model, out, hidden, classes;
  uint64_t seed = 1;
};

int run(int argc, char** argv) {
  ConvertFlags flags;
  ModelSpec& spec = flags.spec;
  cli::Args args("fer_convert",
                 "Convert torchvision (safetensors) or Keras (.h5) ImageNet weights into a checkpoint "
                 "for fer_train --init.");
  args.bind({
      {"weights", "", "the source weights file (.safetensors or .h5)", &flags.weights},
      {"from", "auto", "auto (by extension) | torchvision | keras", &flags.from},
      {"model", "", "vgg16 | resnet50 | mobilenet_v2 | mobilenet_v1 | inception_v3 (or a _keras variant)",
       &flags.model},
      {"out", "", "the checkpoint to write", &flags.out},
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
