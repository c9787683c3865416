// The flags several apps share, and what the apps do with them: the data set of fer_train and
// fer_eval (--data, --format, --classes, --skip-bad) and the --device every app takes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli/args.h"
#include "data/dataset.h"
#include "engine/device.h"

namespace fer::cli {

struct DatasetFlags {
  std::string root;     // --data: a folder of splits or a fer2013.csv
  std::string format;   // --format: auto | folder | csv
  int64_t classes = 7;  // --classes: 7, or 6 without disgust
  bool skip_bad = false;
};

// The rows of the data-set flags for Args::bind, storing into `flags`.
std::vector<Flag> dataset_flags(DatasetFlags& flags);

// Loads `split` of the data set the flags name (folder root or fer2013.csv), with skip-bad and
// the class selection (7 classes, or 6 without disgust) applied; prints what was loaded.
data::Dataset load_split(const DatasetFlags& flags, const std::string& split);

// The row of --precision (fp32 | bf16 matrix products on the CPU) for Args::bind.
Flag precision_flag(std::string& precision);

// Applies --precision to the CPU backend and prints, on stderr, which CPU kernels will run:
// "<program>: cpu kernels: avx512, bf16 products, 2 threads".
void apply_cpu_kernels(const std::string& program, const std::string& precision);

// The device --device names; when that is CUDA and no GPU is usable, the CPU, with a line on
// stderr that says so.
Device device_or_cpu(const std::string& program, const std::string& name);

}  // namespace fer::cli
