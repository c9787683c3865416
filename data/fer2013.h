// FER2013 readers: both forms of the data set, into an in-memory Dataset (data/dataset.h).
//
// Classes (FER2013's own ids): 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
// Splits: Train = "train" folder = "Training" usage; Val = "val" = "PublicTest";
//         Test = "test" = "PrivateTest".
//
// (a) Folder layout:  ROOT/<split>/<class>/*.jpg|*.jpeg|*.png
//     Class folders are matched BY NAME (case-insensitive) to the ids above, never by sort order.
//     An unknown class folder, a missing or empty class folder, and an undecodable image are
//     errors naming the folder or file. Images are decoded on several threads (data/image.h:
//     bounded stb_image, grayscale, resized to 48x48 when needed); items are ordered by class id,
//     then file name.
// (b) The original CSV:  header `emotion,pixels,Usage` (any column order), then one row per face:
//     label 0..6, 2304 space-separated integers 0..255 (row-major 48x48), and
//     Training | PublicTest | PrivateTest. Errors name the file and the 1-based line number
//     (wrong pixel count, pixel out of range or not a number, label out of range, unknown usage,
//     missing columns). Rows are single lines; a field may be wrapped in double quotes.
//
// With ReadOptions::skip_bad, bad items (images, CSV rows, the files of an unknown class folder)
// are skipped and counted in Dataset::skipped, with their reasons in Dataset::problems, and an
// empty class folder is noted in problems instead of thrown. Errors about the input as a whole
// (missing path, bad CSV header) always throw.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "data/dataset.h"
#include "data/image.h"

namespace fer::data {

constexpr int kFerClasses = 7;
inline constexpr std::array<const char*, kFerClasses> kFerClassNames = {
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

// The FER id of a class name (case-insensitive, surrounding spaces ignored), or -1.
int fer_class_id(std::string_view name);
std::vector<std::string> fer_class_names();  // the 7 names, index = id

enum class Split { Train, Val, Test };
// Accepts train|training, val|valid|validation|publictest, test|privatetest (case-insensitive).
Split parse_split(std::string_view name);
std::optional<Split> try_parse_split(std::string_view name);
const char* split_folder(Split split);  // "train", "val", "test"
const char* split_usage(Split split);   // "Training", "PublicTest", "PrivateTest"

struct ReadOptions {
  bool skip_bad = false;           // skip and count bad items instead of throwing
  bool allow_empty_class = false;  // a missing or empty class folder is fine (no error)
  int threads = 0;                 // decoding threads for the folder reader; 0 = all cores
  ImageLimits limits;
};

// (a) One split folder: read_fer_folder("../shared/fer2013/val").
Dataset read_fer_folder(const std::string& split_dir, const ReadOptions& opts = {});

// (b) CSV from memory (`name` is used in messages) or from a file. With split = nullopt every
//     row is returned (the Usage column may then be absent); otherwise only that split's rows
//     (rows of other splits are not validated beyond their Usage field).
Dataset parse_fer_csv(std::string_view text, std::optional<Split> split, const std::string& name,
                      const ReadOptions& opts = {});
Dataset read_fer_csv(const std::string& path, std::optional<Split> split,
                     const ReadOptions& opts = {});

// Writes faces as FER2013 CSV text (header + one row per item, Usage = split_usage(usage)).
// The dataset must have the 7 FER classes.
std::string format_fer_csv(const Dataset& data, Split usage, bool header = true);

// Either form, found from a root path:
//   ROOT is a .csv file                           -> the CSV reader
//   ROOT/<split folder> exists (train, val, ...)  -> the folder reader
//   ROOT/fer2013.csv exists                       -> the CSV reader
// otherwise a fer::Error that says where to get FER2013 and which layouts are accepted.
Dataset load_fer2013(const std::string& root, Split split, const ReadOptions& opts = {});

// Whether `root` is an image-folder root without a folder for `split` (Kaggle's image download
// has train/ and test/ but no val/). False for a CSV, a root holding fer2013.csv, or a missing root
// (load_fer2013 says what is wrong with those).
bool folder_root_lacks_split(const std::string& root, Split split);

// The help text used in "data not found" errors.
std::string fer2013_help();

}  // namespace fer::data
