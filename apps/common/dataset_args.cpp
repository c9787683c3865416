#include "apps/common/dataset_args.h"

#include <chrono>
#include <cstdio>

#include "engine/error.h"

namespace fer {

void declare_dataset_flags(cli::Args& args) {
  args.option("data", "../shared/fer2013",
              "FER2013 root: ROOT/<split>/<class>/*.jpg|png, or a fer2013.csv (file or ROOT/fer2013.csv)")
      .option("format", "auto", "auto | folder | csv")
      .option("classes", "7", "7 (all emotions) or 6 (disgust dropped, as some seed systems did)")
      .flag("skip-bad", false, "skip and count unreadable images / bad CSV rows instead of failing");
}

data::Dataset load_split_from_flags(const cli::Args& args, const std::string& split_name) {
  const auto start = std::chrono::steady_clock::now();
  data::ReadOptions ro;
  ro.skip_bad = args.boolean("skip-bad");
  const std::string root = args.str("data"), format = args.str("format");
  const data::Split split = data::parse_split(split_name);
  data::Dataset d;
  if (format == "csv" || (format == "auto" && root.size() > 4 && root.substr(root.size() - 4) == ".csv")) {
    d = data::read_fer_csv(root, split, ro);
  } else {
    FER_CHECK(format == "auto" || format == "folder", "--format must be auto, folder or csv, got '", format, "'");
    d = data::load_fer2013(root, split, ro);
  }
  const int64_t classes = args.integer("classes");
  FER_CHECK(classes == 7 || classes == 6, "--classes must be 7 or 6, got ", classes);
  if (classes == 6) d = data::drop_disgust(d);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "loaded %s/%s: %lld faces, %d classes (%.1f s)%s\n", root.c_str(),
               split_name.c_str(), static_cast<long long>(d.size()), d.num_classes(), secs,
               d.skipped ? (", skipped " + std::to_string(d.skipped) + " bad items").c_str() : "");
  return d;
}

}  // namespace fer
