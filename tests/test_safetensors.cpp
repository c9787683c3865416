// Tests of the safetensors reader and writer: round trips, the exact bytes written, a Module's
// state dict, every class of malformed input (each must be a fer::Error naming the tensor or the
// byte offset, never a crash), dtype conversions on reading, and the atomic write.
#include <doctest/doctest.h>

#include "tests/support/temp_dir.h"
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/checksum.h"
#include "engine/safetensors.h"
#include "layers/layers.h"

namespace fs = std::filesystem;
using fer::SafetensorsFile;
using fer::Shape;
using fer::testing::TempDir;
using fer::StateDict;
using fer::Tensor;
using Bytes = std::vector<uint8_t>;

namespace {


Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void append_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

template <typename T>
void append_le(Bytes& out, T value) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &value, sizeof(T));  // the test hosts are little-endian, as is the format
  out.insert(out.end(), b, b + sizeof(T));
}

// A file from a header string and raw data bytes (no padding added).
Bytes make_file(const std::string& header, const Bytes& data = {}) {
  Bytes out;
  append_u64(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// The message of the fer::Error that f throws; "" (and a failed check) if it throws none. Any
// other exception type escapes and fails the test.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const fer::Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected a fer::Error");
  return "";
}

std::string parse_error(const Bytes& bytes, const std::string& name = "mem.safetensors") {
  return error_of([&] { fer::parse_safetensors(bytes.data(), bytes.size(), name); });
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

void check_bit_exact(const Tensor& got, const Tensor& want) {
  REQUIRE(got.defined());
  CHECK(got.device() == fer::Device::CPU);
  REQUIRE(got.shape() == want.shape());
  const std::vector<float> a = got.to_vector(), b = want.to_vector();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(bits(a[i]) == bits(b[i]));
}

// Several tensors of different ranks, with values that only a bit-exact copy preserves.
StateDict sample_tensors() {
  const float nan_payload = std::bit_cast<float>(0x7fc12345u);
  std::vector<float> big(2 * 3 * 1 * 4);
  for (size_t i = 0; i < big.size(); ++i) big[i] = std::sin(0.37f * i) * 1e3f + 1e-7f * i;
  return {
      {"scalar", Tensor::scalar(3.25f)},
      {"features.0.bias",
       Tensor::from_vector({6}, {-0.0f, std::numeric_limits<float>::infinity(), nan_payload,
                                 std::numeric_limits<float>::denorm_min(), FLT_MAX, 1.0f / 3.0f})},
      {"features.0.weight", Tensor::from_vector({2, 3, 1, 4}, big)},
      {"empty", Tensor::zeros({0, 3})},
  };
}

}  // namespace

// ---- Round trips and the bytes written ------------------------------------------------------

TEST_CASE("safetensors: round trip of tensors and metadata is bit-exact") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const StateDict tensors = sample_tensors();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"epoch", "7"}, {"note", "quotes \" and \\ and ünïcödé"}};
  fer::save_safetensors(path, tensors, metadata);

  const SafetensorsFile loaded = fer::load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    REQUIRE(loaded.tensors.count(name) == 1);
    check_bit_exact(loaded.tensors.at(name), t);
  }
  CHECK(loaded.tensors.at("scalar").dim() == 0);
  CHECK(loaded.tensors.at("empty").shape() == Shape{0, 3});

  // The in-memory parser reads the same bytes the same way.
  const Bytes bytes = read_bytes(path);
  const SafetensorsFile parsed = fer::parse_safetensors(bytes.data(), bytes.size(), path);
  CHECK(parsed.metadata == metadata);
  for (const auto& [name, t] : tensors) check_bit_exact(parsed.tensors.at(name), t);

  // Saving again over the file replaces it.
  fer::save_safetensors(path, {{"only", Tensor::from_vector({2}, {5.0f, 6.0f})}});
  const SafetensorsFile again = fer::load_safetensors(path);
  CHECK(again.metadata.empty());
  REQUIRE(again.tensors.size() == 1);
  CHECK(again.tensors.at("only").to_vector() == std::vector<float>{5.0f, 6.0f});
}

TEST_CASE("safetensors: the header is JSON, tensors sorted and contiguous, data 8-aligned") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  fer::save_safetensors(path, sample_tensors(), {{"k", "v"}});
  const Bytes bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);  // the data section starts 8-aligned
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + n);
  CHECK(header.front() == '{');
  // Padding is spaces only, after the closing brace.
  const size_t close = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
  CHECK(header.size() - close - 1 < 8);

  const nlohmann::json j = nlohmann::json::parse(header);  // throws (fails) if not JSON
  REQUIRE(j.is_object());
  CHECK(j.at("__metadata__") == nlohmann::json{{"k", "v"}});
  // Tensors appear in the header sorted by name, with data laid out in the same order.
  const std::vector<std::string> names = {"empty", "features.0.bias", "features.0.weight",
                                          "scalar"};
  uint64_t expected_begin = 0;
  size_t previous_pos = header.find("\"__metadata__\"");
  for (const std::string& name : names) {
    CAPTURE(name);
    const nlohmann::json& e = j.at(name);
    CHECK(e.at("dtype") == "F32");
    const uint64_t begin = e.at("data_offsets")[0], end = e.at("data_offsets")[1];
    CHECK(begin == expected_begin);
    CHECK((8 + n + begin) % 4 == 0);  // every F32 tensor is element-aligned in the file
    uint64_t numel = 1;
    for (uint64_t d : e.at("shape")) numel *= d;
    CHECK(end - begin == 4 * numel);
    expected_begin = end;
    const size_t pos = header.find("\"" + name + "\"");
    CHECK(pos > previous_pos);
    previous_pos = pos;
  }
  CHECK(j.at("scalar").at("shape") == nlohmann::json::array());
  CHECK(8 + n + expected_begin == bytes.size());  // the tensors cover the data exactly
}

TEST_CASE("safetensors: golden bytes for one small tensor") {
  TempDir dir;
  SUBCASE("with metadata") {
    const std::string path = dir.file("golden.safetensors");
    fer::save_safetensors(path, {{"w", Tensor::from_vector({2}, {1.0f, -2.5f})}}, {{"k", "v"}});
    const std::string json =
        R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    REQUIRE(json.size() == 79);
    Bytes expected = make_file(json + " ");  // 79 bytes of JSON padded to 80
    REQUIRE(Bytes(expected.begin(), expected.begin() + 8) == Bytes{80, 0, 0, 0, 0, 0, 0, 0});
    expected.insert(expected.end(), {0x00, 0x00, 0x80, 0x3f});  //  1.0f = 0x3f800000
    expected.insert(expected.end(), {0x00, 0x00, 0x20, 0xc0});  // -2.5f = 0xc0200000
    CHECK(read_bytes(path) == expected);
  }
  SUBCASE("the reference implementation's own example: attn.0, shape [1, 2, 3]") {
    // The header is exactly 64 bytes, so no padding; values 0..5.
    const std::string path = dir.file("attn.safetensors");
    fer::save_safetensors(path, {{"attn.0", Tensor::from_vector({1, 2, 3}, {0, 1, 2, 3, 4, 5})}});
    const std::string json = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(json.size() == 64);
    Bytes expected = make_file(json);
    REQUIRE(Bytes(expected.begin(), expected.begin() + 8) == Bytes{64, 0, 0, 0, 0, 0, 0, 0});
    for (float v : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) append_le(expected, v);
    CHECK(read_bytes(path) == expected);
  }
  SUBCASE("the reference implementation's alignment example: 7 spaces of padding") {
    const std::string path = dir.file("attn0.safetensors");
    fer::save_safetensors(path, {{"attn0", Tensor::from_vector({1, 1, 2, 3}, {0, 1, 2, 3, 4, 5})}});
    const std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(json.size() == 65);
    Bytes expected = make_file(json + std::string(7, ' '));
    REQUIRE(Bytes(expected.begin(), expected.begin() + 8) == Bytes{72, 0, 0, 0, 0, 0, 0, 0});
    for (float v : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) append_le(expected, v);
    CHECK(read_bytes(path) == expected);
  }
  SUBCASE("no tensors, no metadata") {
    const std::string path = dir.file("empty.safetensors");
    fer::save_safetensors(path, {});
    CHECK(read_bytes(path) ==
          Bytes{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '});
    const SafetensorsFile loaded = fer::load_safetensors(path);
    CHECK(loaded.tensors.empty());
    CHECK(loaded.metadata.empty());
  }
}

TEST_CASE("safetensors: a Module's state dict round trip (Linear(3, 2))") {
  TempDir dir;
  const std::string path = dir.file("linear.safetensors");
  fer::Linear saved(3, 2), fresh(3, 2);
  REQUIRE(saved.weight.to_vector() != fresh.weight.to_vector());  // distinct random inits
  fer::save_safetensors(path, saved.state_dict(), {{"model", "Linear(3, 2)"}});

  const SafetensorsFile file = fer::load_safetensors(path);
  CHECK(file.metadata.at("model") == "Linear(3, 2)");
  CHECK_NOTHROW(fer::check_state_dict_matches(fresh.state_dict(), file.tensors, path));
  fresh.load_state_dict(file.tensors);
  check_bit_exact(fresh.weight, saved.weight);
  check_bit_exact(fresh.bias, saved.bias);

  const Tensor x = Tensor::from_vector({1, 3}, {0.5f, -1.0f, 2.0f});
  const std::vector<float> a = saved(x).to_vector(), b = fresh(x).to_vector();
  REQUIRE(a.size() == 2);
  CHECK(bits(a[0]) == bits(b[0]));
  CHECK(bits(a[1]) == bits(b[1]));
}

// ---- Reading other dtypes -----------------------------------------------------------------

TEST_CASE("safetensors: reading I64, I32, F16, BF16 and F64 tensors written by hand") {
  Bytes data;
  append_le<int64_t>(data, 12345);  // num_batches_tracked: [0, 8)
  for (int64_t v : {int64_t{-1}, int64_t{0}, int64_t{1} << 40}) append_le(data, v);  // [8, 32)
  const uint16_t halves[] = {0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001,
                             0x8000, 0x7c00, 0xfc00, 0x7e00};
  for (uint16_t h : halves) append_le(data, h);                                // [32, 50)
  for (uint16_t b : {uint16_t{0x3f80}, uint16_t{0xc049}}) append_le(data, b);  // [50, 54)
  for (int32_t v : {-7, 1 << 24}) append_le(data, v);                          // [54, 62)
  // Doubles past FLT_MAX round to it up to FLT_MAX + half an ulp (2^103); that tie goes to inf.
  const double tie = static_cast<double>(FLT_MAX) + std::ldexp(1.0, 103);
  for (double d : {0.1, 1e300, -1e300, 3.4028235e38, tie, -2.5}) append_le(data, d);  // [62, 110)

  const std::string header =
      R"({"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
      R"("ints":{"dtype":"I64","shape":[3],"data_offsets":[8,32]},)"
      R"("half":{"dtype":"F16","shape":[3,3],"data_offsets":[32,50]},)"
      R"("brain":{"dtype":"BF16","shape":[2],"data_offsets":[50,54]},)"
      R"("i32":{"dtype":"I32","shape":[2,1],"data_offsets":[54,62]},)"
      R"("doubles":{"dtype":"F64","shape":[6],"data_offsets":[62,110]}})";
  const Bytes bytes = make_file(header, data);

  TempDir dir;
  const std::string path = dir.file("mixed.safetensors");
  write_bytes(path, bytes);
  for (const SafetensorsFile& f :
       {fer::load_safetensors(path), fer::parse_safetensors(bytes.data(), bytes.size(), "mem")}) {
    REQUIRE(f.tensors.size() == 6);
    const Tensor& nbt = f.tensors.at("bn.num_batches_tracked");
    CHECK(nbt.dim() == 0);
    CHECK(nbt.item() == 12345.0f);
    CHECK(f.tensors.at("ints").to_vector() == std::vector<float>{-1.0f, 0.0f, 1099511627776.0f});

    const Tensor& half = f.tensors.at("half");
    CHECK(half.shape() == Shape{3, 3});
    const std::vector<float> h = half.to_vector();
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(bits(h[2]) == bits(0.333251953125f));  // 0x3555, the F16 nearest 1/3
    CHECK(h[3] == 65504.0f);                     // the largest F16
    CHECK(h[4] == std::ldexp(1.0f, -24));        // the smallest F16 subnormal
    CHECK(bits(h[5]) == 0x80000000u);            // -0.0
    CHECK(h[6] == std::numeric_limits<float>::infinity());
    CHECK(h[7] == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(h[8]));

    CHECK(f.tensors.at("brain").to_vector() == std::vector<float>{1.0f, -3.140625f});
    CHECK(f.tensors.at("i32").shape() == Shape{2, 1});
    CHECK(f.tensors.at("i32").to_vector() == std::vector<float>{-7.0f, 16777216.0f});

    const std::vector<float> d = f.tensors.at("doubles").to_vector();
    CHECK(bits(d[0]) == bits(0.1f));
    CHECK(d[1] == std::numeric_limits<float>::infinity());
    CHECK(d[2] == -std::numeric_limits<float>::infinity());
    CHECK(d[3] == FLT_MAX);  // just past FLT_MAX, but rounds down to it
    CHECK(d[4] == std::numeric_limits<float>::infinity());
    CHECK(d[5] == -2.5f);
  }
}

// ---- Malformed input ----------------------------------------------------------------------

TEST_CASE("safetensors: a file cut at any length is an error, never a crash") {
  TempDir dir;
  const std::string path = dir.file("full.safetensors");
  fer::save_safetensors(path, sample_tensors(), {{"k", "v"}});
  const Bytes full = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | full[i];
  REQUIRE(8 + n < full.size());

  const std::string cut = dir.file("cut.safetensors");
  for (size_t len = 0; len < full.size(); ++len) {
    CAPTURE(len);
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    write_bytes(cut, prefix);
    const std::string from_file = error_of([&] { fer::load_safetensors(cut); });
    const std::string from_memory = parse_error(prefix, cut);
    CHECK(from_file == from_memory);  // both readers report the same problem
    CHECK(contains(from_file, cut));
    if (len < 8) {
      CHECK(contains(from_file, "too short for the 8-byte header length"));
    } else if (len < 8 + n) {  // mid-header
      CHECK(contains(from_file, "header length " + std::to_string(n)));
      CHECK(contains(from_file, "byte offset 0"));
    } else {  // mid-data: a tensor runs past the end
      CHECK(contains(from_file, "run past the end"));
      CHECK(contains(from_file, "tensor '"));
    }
  }
  CHECK_NOTHROW(fer::parse_safetensors(full.data(), full.size(), "full"));
}

TEST_CASE("safetensors: header length beyond the file or the limit") {
  Bytes bytes;
  append_u64(bytes, 1000);
  const std::string tail = R"({"a":1})";
  bytes.insert(bytes.end(), tail.begin(), tail.end());
  std::string msg = parse_error(bytes, "big.safetensors");
  CHECK(contains(msg, "big.safetensors"));
  CHECK(contains(msg, "header length 1000"));
  CHECK(contains(msg, "byte offset 0"));
  CHECK(contains(msg, "15-byte file"));

  for (uint64_t huge : {uint64_t{200'000'000}, std::numeric_limits<uint64_t>::max()}) {
    Bytes b;
    append_u64(b, huge);
    b.insert(b.end(), tail.begin(), tail.end());
    msg = parse_error(b);
    CHECK(contains(msg, "header length " + std::to_string(huge)));
    CHECK(contains(msg, "exceeds the limit of 100000000 bytes"));
  }
}

TEST_CASE("safetensors: malformed JSON headers") {
  const std::string bad_headers[] = {
      R"({"a": {"dtype": "F32",)",            // cut short
      R"({"a": {"dtype": "F32"}} trailing)",  // garbage after the object
      R"({'a': 1})",                          // not JSON
      "{\"a\xff\": 1}",                       // not UTF-8
  };
  for (const std::string& h : bad_headers) {
    CAPTURE(h);
    const std::string msg = parse_error(make_file(h), "bad.safetensors");
    CHECK(contains(msg, "bad.safetensors"));
    CHECK(contains(msg, "does not parse"));
    CHECK(contains(msg, "parse_error"));  // nlohmann's own message is included
    CHECK(contains(msg, "bytes 8 to " + std::to_string(8 + h.size())));
  }
  CHECK(contains(parse_error(make_file("[1, 2]")), "byte offset 8 does not start with '{'"));
  CHECK(contains(parse_error(make_file("")), "byte offset 8 does not start with '{'"));
  CHECK(contains(parse_error(make_file(R"({"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                                       R"("x":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})",
                                       Bytes(8, 0))),
                 "names 'x' more than once"));
  CHECK(contains(parse_error(make_file(R"({"__metadata__":{"epoch":7}})")),
                 "metadata entry 'epoch' is a number, not a string"));
  CHECK(contains(parse_error(make_file(R"({"__metadata__":[1]})")), "not an object"));

  // Deep nesting is parsed without recursion and rejected, not a stack overflow.
  const std::string deep = R"({"t":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
  CHECK(contains(parse_error(make_file(deep)), "tensor 't': entry is an array, not an object"));
}

TEST_CASE("safetensors: tensor entries with missing keys or wrong types name the tensor") {
  struct Case {
    std::string entry, expected;
  };
  const Case cases[] = {
      {R"({"shape":[1],"data_offsets":[0,4]})", "tensor 'w' has no \"dtype\""},
      {R"({"dtype":"F32","data_offsets":[0,4]})", "tensor 'w' has no \"shape\""},
      {R"({"dtype":"F32","shape":[1]})", "tensor 'w' has no \"data_offsets\""},
      {R"({"dtype":5,"shape":[1],"data_offsets":[0,4]})", "tensor 'w': dtype is a number"},
      {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", "tensor 'w': shape is a string"},
      {R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", "tensor 'w': shape holds 1.5"},
      {R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", "tensor 'w': shape holds -1"},
      {R"({"dtype":"F32","shape":[[1]],"data_offsets":[0,4]})", "tensor 'w': shape holds an array"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})",
       "tensor 'w': data_offsets is an array of 1 entries, not a [begin, end] pair"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":{"a":0}})",
       "tensor 'w': data_offsets is an object"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", "tensor 'w': data_offsets holds -4"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0,"4"]})",
       "tensor 'w': data_offsets holds \"4\""},
      {R"([1,2])", "tensor 'w': entry is an array, not an object"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.entry);
    const std::string msg = parse_error(make_file(R"({"w":)" + c.entry + "}", Bytes(4, 0)), "e.st");
    CHECK(contains(msg, "'e.st'"));
    CHECK(contains(msg, c.expected));
  }
}

TEST_CASE("safetensors: unknown dtype") {
  const std::string msg = parse_error(
      make_file(R"({"layer.q":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,4]}})", Bytes(4, 0)));
  CHECK(contains(msg, "tensor 'layer.q'"));
  CHECK(contains(msg, "unsupported dtype \"Q4_K\""));
}

TEST_CASE("safetensors: shapes, sizes and data_offsets that do not fit") {
  auto one = [](const std::string& entry, size_t data_bytes) {
    return parse_error(make_file(R"({"t":)" + entry + "}", Bytes(data_bytes, 0)));
  };
  // Out of range: the end lies beyond the 8-byte data section.
  std::string msg = one(R"({"dtype":"F32","shape":[100],"data_offsets":[0,400]})", 8);
  CHECK(contains(msg,
                 "tensor 't': data_offsets [0, 400] run past the end of the 8-byte data section"));
  msg = one(
      R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551611,18446744073709551615]})",
      8);
  CHECK(contains(msg, "tensor 't': data_offsets [18446744073709551611, 18446744073709551615]"));
  // End before begin.
  msg = one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})", 8);
  CHECK(contains(msg, "tensor 't': data_offsets [8, 4] end before they begin"));
  // Bytes that do not match shape * dtype size.
  msg = one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8);
  CHECK(
      contains(msg, "tensor 't': data_offsets [0, 8] span 8 bytes but shape [3] of F32 needs 12"));
  // Element counts and byte sizes that overflow 64 bits.
  msg = one(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]})", 0);
  CHECK(contains(msg,
                 "tensor 't': the element count of shape [4294967296, 4294967296]... overflows"));
  msg = one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]})", 0);
  CHECK(contains(msg, "tensor 't': the byte size of shape [4611686018427387904] overflows"));
  msg = one(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]})", 0);
  CHECK(contains(msg, "tensor 't': shape value 18446744073709551615 is too large"));

  // Two tensors over the same bytes.
  msg = parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              Bytes(12, 0)));
  CHECK(
      contains(msg, "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])"));
  // A hole between tensors, and bytes that no tensor claims.
  msg = parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              Bytes(12, 0)));
  CHECK(contains(msg, "no tensor covers data offsets [4, 8)"));
  CHECK(contains(msg, "before tensor 'b'"));
  const std::string entry = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  msg = one(entry, 6);
  CHECK(contains(msg, "the data section holds 6 bytes but the tensors cover only 4"));
  const size_t header_size = std::string(R"({"t":)").size() + entry.size() + 1;
  CHECK(contains(msg, "file byte offset " + std::to_string(8 + header_size + 4)));

  // A zero-element tensor is fine, anywhere in the order.
  const Bytes ok = make_file(R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                             Bytes(4, 0));
  const SafetensorsFile f = fer::parse_safetensors(ok.data(), ok.size(), "ok");
  CHECK(f.tensors.at("z").shape() == Shape{0, 5});
  CHECK(f.tensors.at("a").to_vector() == std::vector<float>{0.0f});
}

TEST_CASE("safetensors: random corruption is an error or a valid file, never a crash") {
  TempDir dir;
  const std::string path = dir.file("base.safetensors");
  fer::save_safetensors(path, sample_tensors(), {{"k", "v"}});
  const Bytes base = read_bytes(path);
  std::mt19937 rng(1234);
  int errors = 0, parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % b.size();
      b[at] = (rng() % 2) ? static_cast<uint8_t>(rng())
                          : static_cast<uint8_t>(b[at] ^ (1u << (rng() % 8)));
    }
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      fer::parse_safetensors(b.data(), b.size(), "fuzz");
      ++parsed;
    } catch (const fer::Error&) {
      ++errors;
    }
  }
  CHECK(errors + parsed == 3000);
  CHECK(errors > 0);
  CHECK(parsed > 0);  // flips inside tensor data leave a valid file
}

TEST_CASE("safetensors: load of a missing file names it") {
  TempDir dir;
  const std::string path = dir.file("absent.safetensors");
  const std::string msg = error_of([&] { fer::load_safetensors(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "No such file or directory"));
  CHECK(
      contains(error_of([&] { fer::load_safetensors(dir.path.string()); }), "not a regular file"));
}

// ---- Checking a file against a model ------------------------------------------------------

TEST_CASE("safetensors: check_state_dict_matches names missing, unexpected and mis-shaped") {
  const StateDict expected = {{"fc.weight", Tensor::zeros({2, 3})},
                              {"fc.bias", Tensor::zeros({2})}};
  CHECK_NOTHROW(fer::check_state_dict_matches(
      expected, {{"fc.weight", Tensor::ones({2, 3})}, {"fc.bias", Tensor::ones({2})}}, "ok.st"));

  std::string msg = error_of([&] {
    fer::check_state_dict_matches(
        expected, {{"fc.weight", Tensor::zeros({3, 2})}, {"fc.bias", Tensor::zeros({2})}}, "m.st");
  });
  CHECK(contains(msg, "'m.st'"));
  CHECK(contains(msg,
                 "tensor 'fc.weight' has shape [3, 2] in the file but the model expects [2, 3]"));

  msg = error_of([&] {
    fer::check_state_dict_matches(expected, {{"fc.weight", Tensor::zeros({2, 3})}}, "m.st");
  });
  CHECK(contains(msg, "missing tensor 'fc.bias' (the model expects shape [2])"));

  msg = error_of([&] {
    fer::check_state_dict_matches(expected,
                                  {{"fc.weight", Tensor::zeros({2, 3})},
                                   {"fc.bias", Tensor::zeros({2})},
                                   {"extra.running_mean", Tensor::zeros({4})}},
                                  "m.st");
  });
  CHECK(contains(msg, "unexpected tensor 'extra.running_mean' of shape [4]"));

  msg = error_of([&] {
    fer::check_state_dict_matches(
        expected, {{"fc.weight", Tensor::zeros({1})}, {"x", Tensor::zeros({1})}}, "m.st");
  });
  CHECK(contains(msg, "3 problems"));
  CHECK(contains(msg, "fc.weight"));
  CHECK(contains(msg, "fc.bias"));
  CHECK(contains(msg, "'x'"));
}

// ---- Atomic writing -------------------------------------------------------------------------

TEST_CASE("safetensors: save leaves no temporary file behind") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  fer::save_safetensors(path, sample_tensors());
  fer::save_safetensors(path, sample_tensors(), {{"second", "save"}});
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  for (const std::string& name : dir.entries()) CHECK(!contains(name, ".tmp."));
}

TEST_CASE("safetensors: saving into a missing directory throws and leaves nothing") {
  TempDir dir;
  const std::string path = dir.file("no_such_dir/model.safetensors");
  const std::string msg = error_of([&] { fer::save_safetensors(path, sample_tensors()); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "No such file or directory"));
  CHECK(!fs::exists(dir.path / "no_such_dir"));
  CHECK(dir.entries().empty());
}

TEST_CASE("safetensors: a failed rename removes the temporary file and keeps the target") {
  TempDir dir;
  // The target is a non-empty directory, so the final rename fails after the data is written.
  const std::string path = dir.file("occupied");
  fs::create_directories(fs::path(path) / "inside");
  const std::string msg = error_of([&] { fer::save_safetensors(path, sample_tensors()); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "cannot rename"));
  CHECK(dir.entries() == std::vector<std::string>{"occupied"});
  CHECK(fs::is_directory(fs::path(path) / "inside"));
}

TEST_CASE("safetensors: save rejects what it cannot write, before touching the disk") {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  CHECK(contains(error_of([&] {
                   fer::save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}});
                 }),
                 "may not be named '__metadata__'"));
  CHECK(contains(error_of([&] {
                   fer::save_safetensors(path, {{"ghost", Tensor()}});
                 }),
                 "tensor 'ghost' is undefined"));
  CHECK(contains(error_of([&] {
                   fer::save_safetensors(path, {{"bad\xff", Tensor::zeros({1})}});
                 }),
                 "cannot encode the header"));
  CHECK(dir.entries().empty());
}

TEST_CASE("crc32: the standard check value, chaining, and the empty input") {
  const std::string digits = "123456789";
  CHECK(fer::crc32(digits.data(), digits.size()) == 0xCBF43926u);
  CHECK(fer::crc32(digits.data() + 4, 5, fer::crc32(digits.data(), 4)) == 0xCBF43926u);
  CHECK(fer::crc32(nullptr, 0) == 0u);
}
