// The data-set flags fer_train and fer_eval share (--data, --format, --classes, ...) and the
// code that turns them into a Dataset.
#pragma once
#include <string>

#include "apps/common/cli.h"
#include "data/dataset.h"
#include "data/fer2013.h"

namespace fer {

void declare_dataset_flags(cli::Args& args);

// Loads `split` of the data set the flags name (folder root or fer2013.csv), with skip-bad and
// the class selection (7 classes, or 6 without disgust) applied; prints what was loaded.
data::Dataset load_split_from_flags(const cli::Args& args, const std::string& split);

}  // namespace fer
