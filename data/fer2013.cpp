// FER2013 naming (class ids, split names) and load_fer2013, which finds either form from a root.
#include "data/fer2013.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "engine/error.h"

namespace fer::data {

namespace fs = std::filesystem;

namespace {
std::string normalise(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

int fer_class_id(std::string_view name) {
  const std::string n = normalise(name);
  for (int id = 0; id < kFerClasses; ++id)
    if (n == kFerClassNames[id]) return id;
  return -1;
}

std::vector<std::string> fer_class_names() {
  return std::vector<std::string>(kFerClassNames.begin(), kFerClassNames.end());
}

std::optional<Split> try_parse_split(std::string_view name) {
  const std::string n = normalise(name);
  if (n == "train" || n == "training") return Split::Train;
  if (n == "val" || n == "valid" || n == "validation" || n == "publictest") return Split::Val;
  if (n == "test" || n == "privatetest") return Split::Test;
  return std::nullopt;
}

Split parse_split(std::string_view name) {
  if (auto s = try_parse_split(name)) return *s;
  fail("unknown split '", name,
       "' (expected train/Training, val/PublicTest or test/PrivateTest)");
}

const char* split_folder(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Val: return "val";
    case Split::Test: return "test";
  }
  return "?";
}

const char* split_usage(Split split) {
  switch (split) {
    case Split::Train: return "Training";
    case Split::Val: return "PublicTest";
    case Split::Test: return "PrivateTest";
  }
  return "?";
}

std::string fer2013_help() {
  return "Get FER2013 from Kaggle: the image folders from "
         "https://www.kaggle.com/datasets/msambare/fer2013 or the original fer2013.csv from "
         "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-"
         "recognition-challenge/data (in this project: ../shared/fer2013). Accepted layouts: "
         "ROOT/<split>/<class>/*.jpg|jpeg|png with split train|val|test and class folders "
         "angry, disgust, fear, happy, neutral, sad, surprise (matched by name); or ROOT/fer2013.csv "
         "(or the path of a .csv) with header emotion,pixels,Usage (Usage Training|PublicTest|"
         "PrivateTest).";
}

bool folder_root_lacks_split(const std::string& root, Split split) {
  std::error_code ec;
  if (!fs::is_directory(root, ec) || fs::is_regular_file(fs::path(root) / "fer2013.csv", ec)) return false;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const auto s = try_parse_split(e.path().filename().string());
    if (e.is_directory(ec) && s && *s == split) return false;
  }
  return true;
}

Dataset load_fer2013(const std::string& root, Split split, const ReadOptions& opts) {
  std::error_code ec;
  if (!fs::exists(root, ec)) fail("FER2013 data not found: '", root, "' does not exist. ", fer2013_help());
  if (fs::is_regular_file(root, ec)) return read_fer_csv(root, split, opts);

  // A split folder under root, matched case-insensitively with the accepted aliases.
  if (fs::is_directory(root, ec)) {
    std::vector<fs::path> candidates;
    for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
      if (!e.is_directory(ec)) continue;
      const auto s = try_parse_split(e.path().filename().string());
      if (s && *s == split) candidates.push_back(e.path());
    }
    std::sort(candidates.begin(), candidates.end());
    if (candidates.size() > 1)
      fail("FER2013 root '", root, "': several folders name the split '", split_folder(split),
           "' (", candidates[0].string(), ", ", candidates[1].string(), ")");
    if (candidates.size() == 1) return read_fer_folder(candidates[0].string(), opts);
    const fs::path csv = fs::path(root) / "fer2013.csv";
    if (fs::is_regular_file(csv, ec)) return read_fer_csv(csv.string(), split, opts);
  }
  fail("FER2013 data not found: '", root, "' has neither a '", split_folder(split),
       "' folder nor a fer2013.csv. ", fer2013_help());
}

}  // namespace fer::data
