#include "apps/cli/shared_flags.h"

#include <chrono>
#include <cstdio>

#include "data/fer2013.h"
#include "engine/backend.h"
#include "engine/error.h"

namespace fer::cli {

std::vector<Flag> dataset_flags(DatasetFlags& flags) {
  return {
      {"data", "../shared/fer2013",
       "FER2013 root: ROOT/<split>/<class>/*.jpg|png, or a fer2013.csv (file or ROOT/fer2013.csv)",
       &flags.root},
      {"format", "auto", "auto | folder | csv", &flags.format},
      {"classes", "7", "7 (all emotions) or 6 (disgust dropped, as some seed systems did)",
       &flags.classes},
      {"skip-bad", "false", "skip and count unreadable images / bad CSV rows instead of failing",
       &flags.skip_bad},
  };
}

data::Dataset load_split(const DatasetFlags& flags, const std::string& split_name) {
  const auto start = std::chrono::steady_clock::now();
  data::ReadOptions ro;
  ro.skip_bad = flags.skip_bad;
  const std::string& root = flags.root;
  const std::string& format = flags.format;
  const data::Split split = data::parse_split(split_name);
  data::Dataset d;
  if (format == "csv" || (format == "auto" && root.size() > 4 && root.substr(root.size() - 4) == ".csv")) {
    d = data::read_fer_csv(root, split, ro);
  } else {
    FER_CHECK(format == "auto" || format == "folder", "--format must be auto, folder or csv, got '", format, "'");
    d = data::load_fer2013(root, split, ro);
  }
  FER_CHECK(flags.classes == 7 || flags.classes == 6, "--classes must be 7 or 6, got ", flags.classes);
  if (flags.classes == 6) d = data::drop_disgust(d);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "loaded %s/%s: %lld faces, %d classes (%.1f s)%s\n", root.c_str(),
               split_name.c_str(), static_cast<long long>(d.size()), d.num_classes(), secs,
               d.skipped ? (", skipped " + std::to_string(d.skipped) + " bad items").c_str() : "");
  return d;
}

Device device_or_cpu(const std::string& program, const std::string& name) {
  const Device device = parse_device(name);
  if (device == Device::CUDA && !cuda_available()) {
    std::fprintf(stderr, "%s: no CUDA GPU available in this build or on this machine: using the CPU\n",
                 program.c_str());
    return Device::CPU;
  }
  return device;
}

Flag precision_flag(std::string& precision) {
  return {"precision", "fp32",
          "matrix products on the CPU: fp32 | bf16 (operands rounded to bfloat16, float sums)",
          &precision};
}

void apply_cpu_kernels(const std::string& program, const std::string& precision) {
  Backend& cpu = backend(Device::CPU);
  try {
    cpu.set_matmul_precision(precision);
  } catch (const Error& e) {
    fail("--precision ", precision, ": ", e.what());
  }
  std::fprintf(stderr, "%s: %s\n", program.c_str(), cpu.kernels_summary().c_str());
}

}  // namespace fer::cli
