// libFuzzer target: the FER2013 CSV parser (data/fer2013.h, parse_fer_csv) on arbitrary text.
// Any input must either parse into a consistent Dataset or throw fer::Error. A successful parse
// must also survive a round trip: format_fer_csv of the result parses back to the same faces.
// Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "data/fer2013.h"
#include "engine/error.h"

using namespace fer::data;

namespace {
void check_consistent(const Dataset& ds) {
  if (ds.pixels.size() != ds.labels.size() * kFacePixels) __builtin_trap();
  for (int label : ds.labels)
    if (label < 0 || label >= kFerClasses) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const std::optional<Split> split : {std::optional<Split>{}, std::optional<Split>{Split::Train}}) {
    for (const bool skip_bad : {false, true}) {
      ReadOptions opts;
      opts.skip_bad = skip_bad;
      try {
        const Dataset ds = parse_fer_csv(text, split, "fuzz.csv", opts);
        check_consistent(ds);
        if (skip_bad && ds.problems.size() > Dataset::kMaxProblems) __builtin_trap();
        const Dataset again = parse_fer_csv(format_fer_csv(ds, Split::Train), Split::Train, "again.csv");
        if (again.labels != ds.labels || again.pixels != ds.pixels) __builtin_trap();
      } catch (const fer::Error&) {
        // Rejected input.
      }
    }
  }
  return 0;
}
