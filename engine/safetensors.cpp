// Safetensors reader and writer; see safetensors.h for the format.
//
// Reading goes in three steps, each of which validates before anything is trusted:
//   1. the 8-byte header length, against the file size and the 100 MB limit;
//   2. the JSON header, parsed into entries (dtype, shape, byte range) with checked arithmetic;
//   3. the layout: every range inside the data section, sorted, contiguous, covering it exactly.
// Only then are tensor bytes touched, each entry's range being known to lie inside the data.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>
#include <vector>

namespace fer {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies bytes as they are");

constexpr const char* kMetadataKey = "__metadata__";

// Every reader error starts by naming the file.
template <typename... Parts>
[[noreturn]] void bad_file(const std::string& file, const Parts&... parts) {
  fail("safetensors file '", file, "': ", parts...);
}

std::string errno_text(int err) { return err ? std::strerror(err) : "unknown error"; }

// "an object", "a string", ...: the type of a JSON value, for error messages.
std::string kind(const nlohmann::json& j) {
  return (j.is_object() || j.is_array() ? "an " : "a ") + std::string(j.type_name());
}

// A JSON value for an error message: scalars as text (cut short), arrays and objects by size
// only (dumping them would recurse as deep as the input nests).
std::string brief(const nlohmann::json& j) {
  if (j.is_structured()) return kind(j) + " of " + std::to_string(j.size()) + " entries";
  std::string s = j.dump();
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

// ---- Dtypes -----------------------------------------------------------------------------------

enum class Dtype { F32, F16, BF16, F64, I64, I32 };

struct DtypeInfo {
  const char* name;
  Dtype dtype;
  uint64_t size;  // bytes per element
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", Dtype::F32, 4}, {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2},
    {"F64", Dtype::F64, 8}, {"I64", Dtype::I64, 8}, {"I32", Dtype::I32, 4},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

template <typename T>
T load_le(const uint8_t* p) {  // an unaligned little-endian load
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h >> 15) << 31;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                         : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// double -> float with IEEE round-to-nearest, defined for every input (a plain cast of a value
// beyond the float range is undefined behaviour in C++).
float double_to_float(double d) {
  if (std::isnan(d) || std::fabs(d) <= FLT_MAX) return static_cast<float>(d);
  // Past FLT_MAX, values below FLT_MAX + half an ulp (2^103) still round to FLT_MAX.
  const double limit = static_cast<double>(FLT_MAX) + std::ldexp(1.0, 103);
  const float magnitude = std::fabs(d) < limit ? FLT_MAX : std::numeric_limits<float>::infinity();
  return d < 0 ? -magnitude : magnitude;
}

// Converts `count` elements of `dtype` at `src` (any alignment) to float32 at `dst`.
void convert_to_float(const DtypeInfo& dtype, const uint8_t* src, uint64_t count, float* dst) {
  switch (dtype.dtype) {
    case Dtype::F32:
      if (count) std::memcpy(dst, src, count * 4);
      return;
    case Dtype::F16:
      for (uint64_t i = 0; i < count; ++i) dst[i] = half_to_float(load_le<uint16_t>(src + 2 * i));
      return;
    case Dtype::BF16:
      for (uint64_t i = 0; i < count; ++i) dst[i] = bf16_to_float(load_le<uint16_t>(src + 2 * i));
      return;
    case Dtype::F64:
      for (uint64_t i = 0; i < count; ++i) dst[i] = double_to_float(load_le<double>(src + 8 * i));
      return;
    case Dtype::I64:
      for (uint64_t i = 0; i < count; ++i)
        dst[i] = static_cast<float>(load_le<int64_t>(src + 8 * i));
      return;
    case Dtype::I32:
      for (uint64_t i = 0; i < count; ++i)
        dst[i] = static_cast<float>(load_le<int32_t>(src + 4 * i));
      return;
  }
}

// ---- Header ----------------------------------------------------------------------------------

struct Entry {
  std::string name;
  const DtypeInfo* dtype = nullptr;
  Shape shape;
  uint64_t numel = 1;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

struct Header {
  uint64_t length = 0;      // N: the bytes of JSON after the 8-byte prefix
  uint64_t data_start = 0;  // 8 + N: the file offset of the data section
  uint64_t data_size = 0;   // the bytes of the data section
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;  // sorted by byte range
};

// Step 1: reads N from the first 8 bytes and checks it against the file size and the limit.
uint64_t read_header_length(const uint8_t* prefix, uint64_t file_size, const std::string& file) {
  const uint64_t n = load_le<uint64_t>(prefix);
  if (n > kSafetensorsMaxHeaderBytes)
    bad_file(file, "header length ", n, " (the uint64 at byte offset 0) exceeds the limit of ",
             kSafetensorsMaxHeaderBytes, " bytes");
  if (n > file_size - 8)
    bad_file(file, "header length ", n, " (the uint64 at byte offset 0) runs past the end of the ",
             file_size, "-byte file (the header would end at byte offset ", 8 + n, ")");
  return n;
}

// Step 2a: parses the JSON text, rejecting duplicate top-level keys (which a plain parse would
// silently collapse into one).
nlohmann::json parse_json(const char* text, uint64_t n, const std::string& file) {
  if (n == 0 || text[0] != '{')
    bad_file(file, "the header at byte offset 8 does not start with '{'");
  std::unordered_set<std::string> keys;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
        !keys.insert(parsed.get_ref<const std::string&>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + n, on_event);
  } catch (const nlohmann::json::exception& e) {
    bad_file(file, "the JSON header (bytes 8 to ", 8 + n, ") does not parse: ", e.what());
  }
  if (!header.is_object()) bad_file(file, "the JSON header is not an object");
  if (!duplicate.empty()) bad_file(file, "the header names '", duplicate, "' more than once");
  return header;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& j,
                                                  const std::string& file) {
  if (!j.is_object()) bad_file(file, "\"", kMetadataKey, "\" is ", kind(j), ", not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string())
      bad_file(file, "metadata entry '", key, "' is ", kind(value), ", not a string");
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// A non-negative JSON integer that fits in `max`; fails naming the tensor and field otherwise.
uint64_t json_index(const nlohmann::json& j, uint64_t max, const std::string& file,
                    const std::string& tensor, const char* field) {
  if (!j.is_number_unsigned())
    bad_file(file, "tensor '", tensor, "': ", field, " holds ", brief(j),
             ", not a non-negative integer");
  const uint64_t v = j.get<uint64_t>();
  if (v > max) bad_file(file, "tensor '", tensor, "': ", field, " value ", v, " is too large");
  return v;
}

const nlohmann::json& json_field(const nlohmann::json& entry, const char* field,
                                 const std::string& file, const std::string& tensor) {
  auto it = entry.find(field);
  if (it == entry.end()) bad_file(file, "tensor '", tensor, "' has no \"", field, "\"");
  return *it;
}

// Step 2b: one tensor entry. Checks types, the dtype, the shape product and that the byte range
// holds exactly shape * dtype-size bytes, all without overflow.
Entry parse_entry(const std::string& name, const nlohmann::json& j, const std::string& file) {
  if (!j.is_object()) bad_file(file, "tensor '", name, "': entry is ", kind(j), ", not an object");
  Entry e;
  e.name = name;

  const nlohmann::json& dtype = json_field(j, "dtype", file, name);
  if (!dtype.is_string())
    bad_file(file, "tensor '", name, "': dtype is ", kind(dtype), ", not a string");
  e.dtype = find_dtype(dtype.get<std::string>());
  if (!e.dtype)
    bad_file(file, "tensor '", name, "': unsupported dtype ", brief(dtype),
             " (supported: F32, F16, BF16, F64, I64, I32)");

  const nlohmann::json& shape = json_field(j, "shape", file, name);
  if (!shape.is_array())
    bad_file(file, "tensor '", name, "': shape is ", kind(shape), ", not an array");
  constexpr uint64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
  for (const nlohmann::json& d : shape) {
    const uint64_t dim = json_index(d, kMaxInt64, file, name, "shape");
    e.shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(e.numel, dim, &e.numel) || e.numel > kMaxInt64)
      bad_file(file, "tensor '", name, "': the element count of shape ", shape_str(e.shape),
               (e.shape.size() < shape.size() ? "..." : ""), " overflows");
  }

  const nlohmann::json& offsets = json_field(j, "data_offsets", file, name);
  if (!offsets.is_array() || offsets.size() != 2)
    bad_file(file, "tensor '", name, "': data_offsets is ", brief(offsets),
             ", not a [begin, end] pair");
  e.begin =
      json_index(offsets[0], std::numeric_limits<uint64_t>::max(), file, name, "data_offsets");
  e.end = json_index(offsets[1], std::numeric_limits<uint64_t>::max(), file, name, "data_offsets");
  if (e.end < e.begin)
    bad_file(file, "tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
             "] end before they begin");

  uint64_t bytes = 0;
  if (__builtin_mul_overflow(e.numel, e.dtype->size, &bytes))
    bad_file(file, "tensor '", name, "': the byte size of shape ", shape_str(e.shape),
             " overflows");
  if (bytes != e.end - e.begin)
    bad_file(file, "tensor '", name, "': data_offsets [", e.begin, ", ", e.end, "] span ",
             e.end - e.begin, " bytes but shape ", shape_str(e.shape), " of ", e.dtype->name,
             " needs ", bytes);
  return e;
}

// Step 3: every range inside the data section; sorted, the ranges must tile it exactly.
void check_layout(Header& h, const std::string& file) {
  for (const Entry& e : h.entries)
    if (e.end > h.data_size)
      bad_file(file, "tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
               "] run past the end of the ", h.data_size, "-byte data section (which starts at ",
               "file byte offset ", h.data_start, ")");
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < covered)
      bad_file(file, "tensor '", e.name, "' (data_offsets [", e.begin, ", ", e.end,
               "]) overlaps tensor '", previous->name, "' (data_offsets [", previous->begin, ", ",
               previous->end, "])");
    if (e.begin > covered)
      bad_file(file, "no tensor covers data offsets [", covered, ", ", e.begin,
               ") (file byte offset ", h.data_start + covered, "), before tensor '", e.name, "'");
    covered = e.end;
    previous = &e;
  }
  if (covered != h.data_size)
    bad_file(file, "the data section holds ", h.data_size, " bytes but the tensors cover only ",
             covered, " (unclaimed bytes from file byte offset ", h.data_start + covered, ")");
}

// Steps 2 and 3: `text` holds the N header bytes of a file of `file_size` bytes.
Header parse_header(const char* text, uint64_t n, uint64_t file_size, const std::string& file) {
  Header h;
  h.length = n;
  h.data_start = 8 + n;
  h.data_size = file_size - h.data_start;  // read_header_length checked n <= file_size - 8
  const nlohmann::json json = parse_json(text, n, file);
  for (const auto& [key, value] : json.items()) {
    if (key == kMetadataKey)
      h.metadata = parse_metadata(value, file);
    else
      h.entries.push_back(parse_entry(key, value, file));
  }
  check_layout(h, file);
  return h;
}

// ---- File helpers ----------------------------------------------------------------------------

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Reads exactly `bytes` bytes at file offset `offset`; `what` names them in the error.
void read_at(std::FILE* f, uint64_t offset, void* dst, uint64_t bytes, const std::string& file,
             const std::string& what) {
  if (bytes == 0) return;
  if (offset > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) ||
      fseeko(f, static_cast<off_t>(offset), SEEK_SET) != 0)
    bad_file(file, "cannot seek to byte offset ", offset, " (", what, "): ", errno_text(errno));
  errno = 0;
  const size_t got = std::fread(dst, 1, bytes, f);
  if (got != bytes)
    bad_file(file, "short read at byte offset ", offset + got, " (", what, ", ", bytes,
             " bytes from offset ", offset,
             "): ", std::ferror(f) ? errno_text(errno) : "unexpected end of file");
}

// ---- Writing -----------------------------------------------------------------------------------

// A file written under a temporary name and renamed over `path` only by commit(). Until then
// (an exception, a crash) `path` is untouched; the destructor removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path)
      : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
    file_.reset(std::fopen(tmp_.c_str(), "wb"));
    if (!file_) fail_io("cannot create the temporary file '" + tmp_ + "'");
    created_ = true;
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    file_.reset();
    if (created_ && !committed_) std::remove(tmp_.c_str());
  }

  void write(const void* data, size_t bytes) {
    errno = 0;
    if (bytes && std::fwrite(data, 1, bytes, file_.get()) != bytes)
      fail_io("cannot write to '" + tmp_ + "'");
  }

  void commit() {
    if (std::fflush(file_.get()) != 0) fail_io("cannot flush '" + tmp_ + "'");
    if (::fsync(::fileno(file_.get())) != 0) fail_io("cannot fsync '" + tmp_ + "'");
    if (std::fclose(file_.release()) != 0) fail_io("cannot close '" + tmp_ + "'");
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail_io("cannot rename '" + tmp_ + "' to '" + path_ + "'");
    committed_ = true;
    sync_directory();
  }

 private:
  [[noreturn]] void fail_io(const std::string& what) const {
    const int err = errno;
    fail("save_safetensors('", path_, "'): ", what, ": ", errno_text(err));
  }

  // Makes the rename itself durable. Filesystems that cannot fsync a directory say EINVAL.
  void sync_directory() const {
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail_io("saved, but cannot open directory '" + dir + "' to fsync it");
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    errno = err;
    if (rc != 0 && err != EINVAL && err != ENOTSUP)
      fail_io("saved, but cannot fsync directory '" + dir + "'");
  }

  std::string path_, tmp_;
  FilePtr file_;
  bool created_ = false, committed_ = false;
};

// The header JSON in the reference's form: compact, "__metadata__" first (only if non-empty),
// then tensors by name with keys dtype, shape, data_offsets; padded with spaces to a multiple of 8.
std::string build_header(const StateDict& tensors,
                         const std::map<std::string, std::string>& metadata,
                         const std::string& path) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
    header[kMetadataKey] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t bytes = 0, end = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(t.numel()), uint64_t{4}, &bytes) ||
        __builtin_add_overflow(offset, bytes, &end))
      fail("save_safetensors('", path, "'): tensor '", name, "' of shape ", t.shape_str(),
           " is too large");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = "F32";
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, end};
    header[name] = std::move(entry);
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // names or metadata that are not UTF-8
    fail("save_safetensors('", path, "'): cannot encode the header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void check_saveable(const StateDict& tensors, const std::string& path) {
  FER_CHECK(!path.empty(), "save_safetensors: empty path");
  for (const auto& [name, t] : tensors) {
    FER_CHECK(name != kMetadataKey, "save_safetensors('", path, "'): a tensor may not be named '",
              kMetadataKey, "'");
    FER_CHECK(t.defined(), "save_safetensors('", path, "'): tensor '", name, "' is undefined");
  }
}

}  // namespace

// ---- Public API --------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  check_saveable(tensors, path);
  const std::string header = build_header(tensors, metadata, path);
  uint8_t length[8];
  const uint64_t n = header.size();
  std::memcpy(length, &n, 8);  // little-endian host (static_assert above)

  AtomicFile out(path);
  out.write(length, 8);
  out.write(header.data(), header.size());
  // std::map iterates sorted by name: the order of the header's data_offsets.
  for (const auto& [name, t] : tensors) {
    const std::vector<float> values = t.to_vector();  // from any device
    out.write(values.data(), values.size() * sizeof(float));
  }
  out.commit();
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  if (size < 8) bad_file(file, "only ", size, " bytes, too short for the 8-byte header length");
  FER_CHECK(data != nullptr, "parse_safetensors: null data for '", file, "'");
  const uint64_t n = read_header_length(data, size, file);
  const Header h = parse_header(reinterpret_cast<const char*>(data + 8), n, size, file);

  SafetensorsFile out;
  out.metadata = h.metadata;
  for (const Entry& e : h.entries) {
    Tensor t = Tensor::empty(e.shape);
    convert_to_float(*e.dtype, data + h.data_start + e.begin, e.numel, t.data());
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) bad_file(path, "cannot open: ", errno_text(errno));
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0) bad_file(path, "cannot stat: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) bad_file(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) bad_file(path, "only ", size, " bytes, too short for the 8-byte header length");

  uint8_t prefix[8];
  read_at(f.get(), 0, prefix, 8, path, "the header length");
  const uint64_t n = read_header_length(prefix, size, path);
  std::string text(n, '\0');
  read_at(f.get(), 8, text.data(), n, path, "the JSON header");
  const Header h = parse_header(text.data(), n, size, path);

  SafetensorsFile out;
  out.metadata = h.metadata;
  std::vector<uint8_t> staging;
  for (const Entry& e : h.entries) {
    Tensor t = Tensor::empty(e.shape);
    const std::string what = "tensor '" + e.name + "'";
    if (e.dtype->dtype == Dtype::F32) {  // straight into the tensor
      read_at(f.get(), h.data_start + e.begin, t.data(), e.end - e.begin, path, what);
    } else {
      staging.resize(e.end - e.begin);
      read_at(f.get(), h.data_start + e.begin, staging.data(), staging.size(), path, what);
      convert_to_float(*e.dtype, staging.data(), e.numel, t.data());
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void check_state_dict_matches(const StateDict& expected, const StateDict& loaded,
                              const std::string& file) {
  auto shape_of = [](const Tensor& t) {
    return t.defined() ? t.shape_str() : std::string("undefined");
  };
  std::vector<std::string> problems;
  for (const auto& [name, want] : expected) {
    auto it = loaded.find(name);
    if (it == loaded.end())
      problems.push_back("missing tensor '" + name + "' (the model expects shape " +
                         shape_of(want) + ")");
    else if (!want.defined() || !it->second.defined() || want.shape() != it->second.shape())
      problems.push_back("tensor '" + name + "' has shape " + shape_of(it->second) +
                         " in the file but the model expects " + shape_of(want));
  }
  for (const auto& [name, got] : loaded)
    if (!expected.count(name))
      problems.push_back("unexpected tensor '" + name + "' of shape " + shape_of(got) +
                         " (the model has no such parameter or buffer)");
  if (problems.empty()) return;

  constexpr size_t kMaxListed = 20;
  std::string list;
  for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i)
    list += (i ? "; " : "") + problems[i];
  if (problems.size() > kMaxListed)
    list += "; and " + std::to_string(problems.size() - kMaxListed) + " more";
  fail("checkpoint '", file, "' does not match the model (", problems.size(),
       problems.size() == 1 ? " problem): " : " problems): ", list);
}

}  // namespace fer
