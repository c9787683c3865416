#include "apps/training/checkpoint.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/checksum.h"
#include "engine/optim.h"  // metadata_str, metadata_double

namespace fer {

namespace fs = std::filesystem;

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}
const std::string& need(const Metadata& m, const std::string& key, const std::string& file) {
  auto it = m.find(key);
  FER_CHECK(it != m.end(), file, ": not a fer checkpoint: metadata has no '", key, "'");
  return it->second;
}
double number(const Metadata& m, const std::string& key, const std::string& file) {
  const std::string& v = need(m, key, file);
  try {
    size_t used = 0;
    const double x = std::stod(v, &used);
    FER_CHECK(used == v.size(), "");
    return x;
  } catch (...) {
    fail(file, ": metadata '", key, "' is not a number: '", v, "'");
  }
}
// A whole number in [lo, hi]: checked before the cast, since converting a double such as 1e300 or
// NaN to an integer is undefined behaviour (a crafted checkpoint must get an error, not UB).
int64_t whole_number(const Metadata& m, const std::string& key, const std::string& file, int64_t lo,
                     int64_t hi) {
  const double x = number(m, key, file);
  FER_CHECK(std::isfinite(x) && x == std::floor(x) && x >= static_cast<double>(lo) && x <= static_cast<double>(hi),
            file, ": metadata '", key, "' must be a whole number in [", lo, ", ", hi, "], got '",
            m.at(key), "'");
  return static_cast<int64_t>(x);
}
// A number in [lo, hi) (hi_closed: [lo, hi]), checked where it is read so that the error names the
// file and the key, not the layer that would trip over it later.
double number_in(const Metadata& m, const std::string& key, const std::string& file, double lo, double hi,
                 bool hi_closed) {
  const double x = number(m, key, file);
  FER_CHECK(x >= lo && (x < hi || (hi_closed && x == hi)), file, ": metadata '", key, "' must be in [", lo,
            ", ", hi, hi_closed ? "]" : ")", ", got '", m.at(key), "'");
  return x;
}
// "1024,512" <-> {1024, 512}; "" is no sizes.
std::string join_sizes(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}
// Enough digits that the float reads back exactly (std::to_string keeps 6 decimals: 1.001e-5
// would come back as 1e-5).
std::string float_text(float v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}
}  // namespace

Metadata spec_to_metadata(const ModelSpec& s) {
  return {
      {"format", "fer-engine-checkpoint/1"},
      {"model", s.name},
      {"num_classes", std::to_string(s.config.num_classes)},
      {"in_channels", std::to_string(s.config.in_channels)},
      {"input_size", std::to_string(s.config.input_size)},
      {"dropout", std::to_string(s.config.dropout)},
      {"stage_dropout", std::to_string(s.config.stage_dropout)},
      {"head", s.config.head},
      {"hidden", join_sizes(s.config.hidden)},
      {"bn_eps", float_text(s.config.bn_eps)},
      {"class_names", join(s.class_names)},
      {"preprocess.equalize", s.preprocess.equalize ? "1" : "0"},
      {"preprocess.standardize", s.preprocess.standardize ? "1" : "0"},
      {"preprocess.mean", std::to_string(s.preprocess.mean)},
      {"preprocess.std", std::to_string(s.preprocess.std)},
      {"preprocess.crop", std::to_string(s.preprocess.crop)},
  };
}

ModelSpec spec_from_metadata(const Metadata& m, const std::string& file) {
  ModelSpec s;
  s.name = need(m, "model", file);
  s.config.num_classes = whole_number(m, "num_classes", file, 1, 1 << 20);
  s.config.in_channels = whole_number(m, "in_channels", file, 1, 4096);
  // Faces are 48 px and the backbones' inputs 224-299: 1024 leaves room and bounds what one
  // forward pass allocates (a crafted 65536 would ask for gigabytes per image).
  s.config.input_size = whole_number(m, "input_size", file, 1, 1024);
  s.config.dropout = static_cast<float>(number_in(m, "dropout", file, 0, 1, false));
  s.config.stage_dropout = static_cast<float>(number_in(m, "stage_dropout", file, 0, 1, false));
  // Keys added with the ImageNet backbones: checkpoints written before them take the defaults.
  if (m.count("head")) s.config.head = m.at("head");
  if (m.count("hidden")) s.config.hidden = parse_sizes(m.at("hidden"), file + ": metadata 'hidden'");
  if (m.count("bn_eps")) s.config.bn_eps = static_cast<float>(number_in(m, "bn_eps", file, 0, 1, true));
  s.class_names = split(need(m, "class_names", file));
  FER_CHECK(static_cast<int64_t>(s.class_names.size()) == s.config.num_classes, file, ": ",
            s.class_names.size(), " class names for ", s.config.num_classes, " classes");
  s.preprocess.equalize = need(m, "preprocess.equalize", file) == "1";
  s.preprocess.standardize = need(m, "preprocess.standardize", file) == "1";
  // Pixels are in [0, 1] when these apply: a mean outside [-1, 1] or a spread outside [1e-6, 1e3]
  // is no preprocessing a model was trained with (and 0 or nan would divide every face away).
  s.preprocess.mean = static_cast<float>(number_in(m, "preprocess.mean", file, -1, 1, true));
  s.preprocess.std = static_cast<float>(number_in(m, "preprocess.std", file, 1e-6, 1e3, true));
  if (m.count("preprocess.crop")) {  // written since models can read crops of the face
    const double crop = number(m, "preprocess.crop", file);
    FER_CHECK(crop >= 0 && crop <= 48 && crop == std::floor(crop), file, ": preprocess.crop ", crop,
              " is not a crop side in 0..48");
    s.preprocess.crop = static_cast<int>(crop);
  }
  return s;
}

void save_checkpoint(const std::string& path, const Module& model, const ModelSpec& spec,
                     const StateDict& extra_tensors, const Metadata& extra_metadata) {
  StateDict tensors = model.state_dict();
  for (const auto& [name, t] : extra_tensors) {
    FER_CHECK(!tensors.count(name), "save_checkpoint: tensor name '", name, "' used twice");
    tensors[name] = t;
  }
  Metadata meta = spec_to_metadata(spec);
  for (const auto& [k, v] : extra_metadata) meta[k] = v;
  for (const auto& [k, v] : tensor_checksums(tensors)) meta[k] = v;
  save_safetensors(path, tensors, meta);
}

namespace {
// The CRC-32 of a tensor's float32 values, as the file stores them (little-endian), in hex.
std::string tensor_crc32(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", crc32(v.data(), v.size() * sizeof(float)));
  return hex;
}
constexpr const char* kChecksumPrefix = "crc32.";
}  // namespace

Metadata tensor_checksums(const StateDict& tensors) {
  Metadata out;
  for (const auto& [name, t] : tensors) out[kChecksumPrefix + name] = tensor_crc32(t);
  return out;
}

void verify_checksums(const SafetensorsFile& file, const std::string& path) {
  if (const char* env = std::getenv("FER_VERIFY_CHECKSUMS"); env && std::string(env) == "0") return;
  for (const auto& [name, t] : file.tensors) {
    auto it = file.metadata.find(kChecksumPrefix + name);
    if (it == file.metadata.end()) continue;  // written before checksums, or by another tool
    const std::string actual = tensor_crc32(t);
    FER_CHECK(actual == it->second, path, ": tensor '", name, "' ", t.shape_str(),
              " is damaged: its bytes have CRC-32 ", actual, ", the checkpoint recorded ",
              it->second, " (FER_VERIFY_CHECKSUMS=0 loads it anyway)");
  }
}

bool is_training_state(const std::string& tensor_name) {
  for (const char* prefix : {"optim.", "ema.", "swa."})
    if (tensor_name.rfind(prefix, 0) == 0) return true;
  return false;
}

std::shared_ptr<Module> build_model(const ModelSpec& spec, size_t weight_bytes, const std::string& file) {
  const size_t budget = weight_bytes > (SIZE_MAX - (1 << 20)) / 3 ? SIZE_MAX : 3 * weight_bytes + (1 << 20);
  StorageBudget bound(budget, file + ": its metadata describes a '" + spec.name +
                                  "' larger than the file's tensors (" + std::to_string(weight_bytes) +
                                  " bytes) can fill: building it");
  return create_model(spec.name, spec.config);
}

LoadedCheckpoint load_checkpoint(const std::string& path, Device device) {
  LoadedCheckpoint out;
  out.file = load_safetensors(path);
  verify_checksums(out.file, path);
  out.spec = spec_from_metadata(out.file.metadata, path);
  StateDict weights;
  size_t weight_bytes = 0;
  for (const auto& [name, t] : out.file.tensors)
    if (!is_training_state(name)) weights[name] = t, weight_bytes += static_cast<size_t>(t.numel()) * sizeof(float);
  out.model = build_model(out.spec, weight_bytes, path);
  check_state_dict_matches(out.model->state_dict(), weights, path);
  out.model->load_state_dict(weights);
  out.model->to(device);
  out.model->eval();
  return out;
}

std::string locate_checkpoint(const std::string& path) {
  FER_CHECK(!path.empty(), "checkpoint: empty path");
  std::error_code ec;
  if (fs::exists(path, ec)) return path;
  FER_CHECK(!fs::path(path).is_absolute(), "checkpoint '", path, "' does not exist");
  std::vector<fs::path> roots;
  if (const char* src = std::getenv("FER_SOURCE_DIR"); src && *src) roots.emplace_back(src);
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    roots.push_back(exe.parent_path().parent_path());  // build/fer_predict -> the repository
    roots.push_back(exe.parent_path());
  }
  std::string looked = fs::current_path(ec).string();
  for (const fs::path& root : roots) {
    const fs::path candidate = root / path;
    if (fs::exists(candidate, ec)) return candidate.string();
    looked += ", " + root.string();
  }
  fail("checkpoint '", path, "' not found (looked under ", looked,
       "); pass --checkpoint FILE or run from the repository root");
}

std::vector<std::string> checkpoint_members(const std::string& list) {
  std::vector<std::string> out;
  for (const std::string& item : split_list(list)) {
    const fs::path p(item);
    const bool bare = item.find('/') == std::string::npos && !p.has_extension();
    if (!bare && p.extension() != ".json") {
      out.push_back(locate_checkpoint(item));
      continue;
    }
    const std::string manifest = locate_checkpoint(bare ? "models/pretrained/" + item + ".json" : item);
    std::ifstream in(manifest);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      fail("ensemble manifest ", manifest, ": not JSON (", e.what(), ")");
    }
    FER_CHECK(j.is_object() && j.contains("members") && j["members"].is_array() && !j["members"].empty(),
              "ensemble manifest ", manifest, ": expected {\"members\": [checkpoint files, ...]}");
    for (const auto& m : j["members"]) {
      FER_CHECK(m.is_string(), "ensemble manifest ", manifest, ": member ", m.dump(), " is not a file name");
      const fs::path member = fs::path(manifest).parent_path() / m.get<std::string>();
      FER_CHECK(fs::exists(member), "ensemble manifest ", manifest, ": member ", member.string(),
                " does not exist");
      out.push_back(member.string());
    }
  }
  FER_CHECK(!out.empty(), "--checkpoint: no checkpoint given");
  return out;
}

double calibration_temperature(const Metadata& meta, const std::string& file) {
  auto it = meta.find("calibration.temperature");
  if (it == meta.end()) return 1.0;
  const double t = metadata_double(meta, "calibration.temperature");
  FER_CHECK(std::isfinite(t) && t > 0, file, ": calibration.temperature must be a positive number, got '",
            it->second, "'");
  return t;
}

void store_calibration(const std::string& path, double temperature, const std::string& fitted_on) {
  SafetensorsFile f = load_safetensors(path);
  verify_checksums(f, path);
  f.metadata["calibration.temperature"] = metadata_str(temperature);
  f.metadata["calibration.fitted_on"] = fitted_on;
  for (const auto& [k, v] : tensor_checksums(f.tensors)) f.metadata[k] = v;
  save_safetensors(path, f.tensors, f.metadata);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

std::vector<int64_t> parse_sizes(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    FER_CHECK(!item.empty() && used == item.size() && v > 0, what, ": '", text,
              "' is not a comma-separated list of positive sizes");
    out.push_back(v);
  }
  return out;
}

}  // namespace fer
