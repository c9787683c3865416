// Tests of the data pipeline: image decoding and its bounds, the FER2013 folder and CSV readers and
// their errors, histogram equalisation, augmentation, dataset transforms, class balancing, the
// batch loader, synthetic faces, and (when ../shared/fer2013 is present) the real val/ split.
#include <doctest/doctest.h>

#include "tests/support/temp_dir.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "data/augment.h"
#include "data/class_balance.h"
#include "data/dataset.h"
#include "data/fer2013.h"
#include "data/image.h"
#include "data/image_guard.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "data/synthetic.h"
#include "engine/error.h"
#include "engine/random.h"

namespace fs = std::filesystem;
using namespace fer::data;
using fer::testing::TempDir;

namespace {


// The fer::Error message thrown by f, or "<no error>".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fer::Error& e) {
    return e.what();
  }
  return "<no error>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A 48x48 test face: a gradient plus a class-specific constant, smooth enough for JPEG.
GrayImage test_face(int value, int w = kFaceSize, int h = kFaceSize) {
  GrayImage g;
  g.width = w;
  g.height = h;
  g.pixels.resize(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels[y * w + x] = static_cast<uint8_t>((value + x + 2 * y) % 256);
  return g;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// The first bytes of a PNG whose header declares w x h (8-bit gray); no image data follows.
std::vector<uint8_t> png_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  for (uint8_t v : {8, 0, 0, 0, 0}) b.push_back(v);  // depth 8, gray, no interlace
  for (int i = 0; i < 4; ++i) b.push_back(0);        // CRC (stb_image does not check it)
  const char idat[] = {0, 0, 0, 4, 'I', 'D', 'A', 'T', 1, 2, 3, 4, 0, 0, 0, 0};
  b.insert(b.end(), idat, idat + sizeof(idat));
  return b;
}

// A split folder ROOT/train/<class>/ with `per_class` images per class: PNGs (exact pixels) and
// one JPG per class. Folder names use mixed case to check the case-insensitive mapping.
// Pixel value 30 * FER id marks the class.
void make_split_folder(const fs::path& split_dir, int per_class) {
  const char* folder[kFerClasses] = {"Angry", "disgust", "FEAR", "happy", "sad", "Surprise", "neutral"};
  for (int id = 0; id < kFerClasses; ++id) {
    const fs::path dir = split_dir / folder[id];
    fs::create_directories(dir);
    for (int i = 0; i < per_class; ++i) {
      const std::string base = (dir / ("img_" + std::to_string(i))).string();
      if (i == per_class - 1)
        write_jpg(base + ".jpg", test_face(30 * id), 95);
      else
        write_png(base + ".png", test_face(30 * id));
    }
  }
}

// FNV-1a of a 48x48 face (to compare images cheaply).
uint64_t image_hash(const uint8_t* face) {
  uint64_t h = 1469598103934665603ull;
  for (int k = 0; k < kFacePixels; ++k) h = (h ^ face[k]) * 1099511628211ull;
  return h;
}

std::vector<float> tensor_values(const fer::Tensor& t) { return t.to_vector(); }

std::vector<float> face_floats(int seed) {
  fer::Generator gen(seed);
  std::vector<float> v(kFacePixels);
  for (float& x : v) x = gen.uniform();
  return v;
}

// The FER data directory: $FER_DATA, else ../shared/fer2013 next to the source tree.
fs::path fer_data_dir() {
  if (const char* env = std::getenv("FER_DATA")) return env;
  return fs::absolute(__FILE__).parent_path().parent_path().parent_path() / "shared" / "fer2013";
}

}  // namespace

// ---- Images ------------------------------------------------------------------------------------

TEST_CASE("image: PNG decodes exactly, JPG closely, other sizes are resized to 48x48") {
  TempDir tmp;
  const GrayImage face = test_face(17);
  write_png(tmp / "a.png", face);
  write_jpg(tmp / "a.jpg", face, 95);
  CHECK(read_face(tmp / "a.png") == face.pixels);
  const std::vector<uint8_t> jpg = read_face(tmp / "a.jpg");
  REQUIRE(jpg.size() == static_cast<size_t>(kFacePixels));
  int max_diff = 0;
  for (int i = 0; i < kFacePixels; ++i) max_diff = std::max(max_diff, std::abs(jpg[i] - face.pixels[i]));
  CHECK(max_diff <= 24);

  // 96x96 checkerboard of 0/255: area averaging gives 127.5 everywhere -> 128.
  GrayImage checker;
  checker.width = checker.height = 96;
  for (int y = 0; y < 96; ++y)
    for (int x = 0; x < 96; ++x) checker.pixels.push_back((x + y) % 2 ? 255 : 0);
  write_png(tmp / "big.png", checker);
  const std::vector<uint8_t> small = read_face(tmp / "big.png");
  CHECK(std::all_of(small.begin(), small.end(), [](uint8_t v) { return v == 128; }));

  // Upscaling a 24x24 image: constant stays constant, a left/right split stays split.
  GrayImage half;
  half.width = half.height = 24;
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 24; ++x) half.pixels.push_back(x < 12 ? 40 : 200);
  const GrayImage up = resize_gray(half, 48, 48);
  CHECK(up.width == 48);
  CHECK(up.pixels[10 * 48 + 0] == 40);
  CHECK(up.pixels[10 * 48 + 47] == 200);
  CHECK(up.pixels[10 * 48 + 10] == 40);

  // Colour input becomes gray (stb desired_channels = 1), and decoding from memory works.
  const std::vector<uint8_t> bytes = read_file_bytes(tmp / "a.png", 1 << 20);
  CHECK(decode_face(bytes.data(), bytes.size(), "mem") == face.pixels);
}

TEST_CASE("image: corrupt, truncated, oversized and huge-dimension inputs throw naming the file") {
  TempDir tmp;
  write_jpg(tmp / "ok.jpg", test_face(5), 90);
  std::vector<uint8_t> jpg = read_file_bytes(tmp / "ok.jpg", 1 << 20);

  std::vector<uint8_t> truncated(jpg.begin(), jpg.begin() + jpg.size() / 2);
  write_bytes(tmp / "truncated.jpg", truncated);
  std::string msg = error_of([&] { read_face(tmp / "truncated.jpg"); });
  CHECK(contains(msg, "truncated.jpg"));
  CHECK(contains(msg, "corrupt or truncated"));

  // A JPEG whose Huffman table declares 16 x 255 codes (stb_image 2.27 overflows on it; the
  // decoder must reject it before stb sees it - found by tests/fuzz/fuzz_image.cpp).
  std::vector<uint8_t> bad_dht = jpg;
  for (size_t i = 0; i + 21 < bad_dht.size(); ++i)
    if (bad_dht[i] == 0xFF && bad_dht[i + 1] == 0xC4) {
      for (size_t k = 0; k < 16; ++k) bad_dht[i + 5 + k] = 255;
      break;
    }
  write_bytes(tmp / "bad_dht.jpg", bad_dht);
  msg = error_of([&] { read_face(tmp / "bad_dht.jpg"); });
  CAPTURE(msg);
  CHECK(contains(msg, "bad_dht.jpg"));
  CHECK(contains(msg, "DHT"));
  CHECK(contains(msg, "4080 codes"));

  write_bytes(tmp / "garbage.png", std::vector<uint8_t>(300, 0x42));
  msg = error_of([&] { read_face(tmp / "garbage.png"); });
  CHECK(contains(msg, "garbage.png"));
  CHECK(contains(msg, "not a decodable"));

  write_bytes(tmp / "empty.png", {});
  CHECK(contains(error_of([&] { read_face(tmp / "empty.png"); }), "empty.png"));

  for (auto [w, h] : {std::pair{100000u, 10u}, std::pair{9000u, 9000u}, std::pair{8000u, 8000u}}) {
    write_bytes(tmp / "huge.png", png_header(w, h));
    msg = error_of([&] { read_face(tmp / "huge.png"); });
    CAPTURE(msg);
    CHECK(contains(msg, "huge.png"));
    CHECK((contains(msg, "exceed") || contains(msg, "too large")));
  }
  write_bytes(tmp / "zero.png", png_header(0, 48));
  CHECK(contains(error_of([&] { read_face(tmp / "zero.png"); }), "zero.png"));

  ImageLimits tiny;
  tiny.max_bytes = 100;
  msg = error_of([&] { read_face(tmp / "ok.jpg", tiny); });
  CHECK(contains(msg, "ok.jpg"));
  CHECK(contains(msg, "exceeds the limit"));

  CHECK(contains(error_of([&] { read_face(tmp / "missing.png"); }), "missing.png"));
}

TEST_CASE("image: inputs that crashed stb_image 2.27 under the fuzzer are rejected cleanly") {
  const fs::path dir = fs::absolute(__FILE__).parent_path() / "fuzz" / "regressions" / "image";
  REQUIRE(fs::is_directory(dir));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string path = entry.path().string();
    const std::string msg = error_of([&] { read_face(path); });
    CAPTURE(msg);
    CHECK(contains(msg, path));
    CHECK(contains(msg, "corrupt"));
    ++files;
  }
  CHECK(files >= 3);
}

namespace {

void put16(std::vector<uint8_t>& b, int v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// A hand-built baseline gray JPEG, w x h: every 8x8 block is DC category 0 + end-of-block, coded
// with one-code Huffman tables (code "0"), so each block takes 2 bits and decodes to flat 128.
// `dc_codes` > 0 replaces the DC table by one declaring that many codes; `data_bytes` sets the
// length of the entropy-coded data (default: exactly what the blocks need).
std::vector<uint8_t> tiny_jpeg(int w, int h, int dc_codes = 0, int data_bytes = -1) {
  std::vector<uint8_t> b = {0xFF, 0xD8};
  b.insert(b.end(), {0xFF, 0xDB, 0x00, 0x43, 0x00});  // DQT: table 0, all ones
  b.insert(b.end(), 64, 1);
  b.insert(b.end(), {0xFF, 0xC0, 0x00, 0x0B, 0x08});  // SOF0, 8-bit
  put16(b, h);
  put16(b, w);
  b.insert(b.end(), {0x01, 0x01, 0x11, 0x00});        // 1 component: id 1, 1x1, table 0
  for (int tc = 0; tc < 2; ++tc) {                    // DHT: DC table 0, AC table 0
    std::vector<uint8_t> counts(16, 0), symbols;
    if (tc == 0 && dc_codes > 0) {
      for (int len = 9, left = dc_codes; left > 0; ++len) {  // 255 of length 9, the rest 10, ..
        counts[len - 1] = static_cast<uint8_t>(std::min(left, 255));
        left -= counts[len - 1];
      }
      symbols.assign(static_cast<size_t>(dc_codes), 0);
    } else {
      counts[0] = 1;  // one code of length 1 ("0") for symbol 0: DC category 0 / AC end-of-block
      symbols = {0};
    }
    b.insert(b.end(), {0xFF, 0xC4});
    put16(b, static_cast<int>(2 + 17 + symbols.size()));
    b.push_back(static_cast<uint8_t>(tc << 4));
    b.insert(b.end(), counts.begin(), counts.end());
    b.insert(b.end(), symbols.begin(), symbols.end());
  }
  b.insert(b.end(), {0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00});  // SOS
  const int blocks = ((w + 7) / 8) * ((h + 7) / 8);
  const int need = (2 * blocks + 7) / 8;
  const int n = data_bytes < 0 ? need : data_bytes;
  for (int i = 0; i < n; ++i) {
    // 2 zero bits per block, the bits after the last block padded with ones.
    const int used = std::clamp(2 * blocks - 8 * i, 0, 8);
    b.push_back(static_cast<uint8_t>(0xFF >> used));
    if (b.back() == 0xFF) b.push_back(0x00);  // byte stuffing
  }
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

// A PNG chunk with a zero CRC (stb_image and the guard do not check it).
std::vector<uint8_t> png_chunk(const char* type, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> c(12 + data.size(), 0);
  for (int i = 0; i < 4; ++i) {
    c[i] = static_cast<uint8_t>(data.size() >> (24 - 8 * i));
    c[4 + i] = static_cast<uint8_t>(type[i]);
  }
  std::copy(data.begin(), data.end(), c.begin() + 8);
  return c;
}

std::string guard_error(const std::vector<uint8_t>& bytes, const std::string& name) {
  return error_of([&] { guard_image(bytes.data(), bytes.size(), name); });
}

}  // namespace

TEST_CASE("image guard: files written by stb_image_write and hand-built ones pass and decode") {
  TempDir tmp;
  const GrayImage face = test_face(9, 37, 29);
  write_png(tmp / "ok.png", face);
  write_jpg(tmp / "ok.jpg", face, 80);
  for (const char* f : {"ok.png", "ok.jpg"}) {
    const std::vector<uint8_t> bytes = read_file_bytes(tmp / f, 1 << 20);
    CAPTURE(f);
    CHECK(guard_error(bytes, f) == "<no error>");
    const GrayImage img = decode_image(bytes.data(), bytes.size(), f);
    CHECK(img.width == 37);
    CHECK(img.height == 29);
  }
  CHECK(read_image(tmp / "ok.png").pixels == face.pixels);

  // The hand-built JPEG (flat 128) at several sizes: 16x8 is two blocks (4 bits: 0x0F), 32x8 four
  // (exactly 0x00), 40x8 five (0x00 0x3F); 13x21 is six blocks (0x00 0x0F) and also gets a spare
  // padding byte 0xFF, which the encoder must stuff as 0xFF 0x00.
  for (auto [w, h, extra] : {std::tuple{8, 8, 0}, std::tuple{16, 8, 0}, std::tuple{32, 8, 0},
                             std::tuple{40, 8, 0}, std::tuple{13, 21, 0}, std::tuple{13, 21, 1}}) {
    const int blocks = ((w + 7) / 8) * ((h + 7) / 8);
    const std::vector<uint8_t> jpg = tiny_jpeg(w, h, 0, (2 * blocks + 7) / 8 + extra);
    CAPTURE(w);
    CAPTURE(h);
    CAPTURE(extra);
    CHECK(guard_error(jpg, "tiny.jpg") == "<no error>");
    const GrayImage img = decode_image(jpg.data(), jpg.size(), "tiny.jpg");
    CHECK(img.width == w);
    CHECK(img.height == h);
    CHECK(std::all_of(img.pixels.begin(), img.pixels.end(), [](uint8_t v) { return v == 128; }));
  }
}

TEST_CASE("image guard: a JPEG Huffman table with more than 256 codes is rejected naming DHT") {
  std::vector<uint8_t> jpg = tiny_jpeg(8, 8, 257);
  std::string msg = error_of([&] { decode_image(jpg.data(), jpg.size(), "dht257.jpg"); });
  CAPTURE(msg);
  CHECK(contains(msg, "dht257.jpg"));
  CHECK(contains(msg, "corrupt"));
  CHECK(contains(msg, "DHT"));
  CHECK(contains(msg, "257 codes"));
  CHECK(contains(msg, "offset"));
  // 256 codes is the most a table holds: that one is fine structurally (it is only unused).
  jpg = tiny_jpeg(8, 8, 256);
  CHECK(!contains(guard_error(jpg, "dht256.jpg"), "DHT"));

  // Symbols running past the end of the DHT segment: shorten the first DHT's length field.
  jpg = tiny_jpeg(8, 8);
  for (size_t i = 0; i + 3 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) {
      jpg[i + 3] -= 1;  // 20 -> 19 bytes: the symbol byte is now outside the segment
      break;
    }
  msg = guard_error(jpg, "short_dht.jpg");
  CAPTURE(msg);
  CHECK(contains(msg, "DHT"));
  CHECK(contains(msg, "run past the end of the segment"));
}

TEST_CASE("image guard: JPEG structure - lengths, SOF/SOS/EOI, empty and truncated scans") {
  const std::vector<uint8_t> ok = tiny_jpeg(64, 64);  // 64 blocks, 16 data bytes
  REQUIRE(guard_error(ok, "ok.jpg") == "<no error>");

  // A segment length running past the end of the file.
  std::vector<uint8_t> jpg(ok.begin(), ok.begin() + 10);
  std::string msg = guard_error(jpg, "cut.jpg");
  CAPTURE(msg);
  CHECK(contains(msg, "cut.jpg"));
  CHECK(contains(msg, "DQT segment: length 67 runs past the end of the file"));

  // No EOI.
  jpg.assign(ok.begin(), ok.end() - 2);
  CHECK(contains(guard_error(jpg, "noeoi.jpg"), "no EOI"));

  // No SOS at all: SOI, tables, EOI.
  jpg = ok;
  const uint8_t sos_marker[2] = {0xFF, 0xDA};
  const auto sos = std::search(jpg.begin(), jpg.end(), sos_marker, sos_marker + 2);
  REQUIRE(sos != jpg.end());
  jpg.erase(sos, jpg.end() - 2);
  CHECK(contains(guard_error(jpg, "nosos.jpg"), "never coded"));

  // SOS with no entropy-coded data after it.
  msg = guard_error(tiny_jpeg(64, 64, 0, 0), "empty_scan.jpg");
  CAPTURE(msg);
  CHECK(contains(msg, "no entropy-coded data"));

  // Scan data that ends (at the EOI marker) before all 64 blocks are decoded: the input that
  // drives stb_image 2.27's bit counter negative. 4 bytes hold 16 of the 64 blocks.
  msg = error_of([&] {
    const std::vector<uint8_t> t = tiny_jpeg(64, 64, 0, 4);
    decode_image(t.data(), t.size(), "short_scan.jpg");
  });
  CAPTURE(msg);
  CHECK(contains(msg, "short_scan.jpg"));
  CHECK(contains(msg, "corrupt or truncated"));
  CHECK(contains(msg, "ends after block 16 of 64"));

  // Garbage instead of a marker between segments; an unsupported (arithmetic-coded) frame.
  jpg = ok;
  jpg[2] = 0x42;
  CHECK(contains(guard_error(jpg, "garbage.jpg"), "expected a marker"));
  jpg = ok;
  for (size_t i = 0; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 1] = 0xC9;
      break;
    }
  CHECK(contains(guard_error(jpg, "arith.jpg"), "unsupported SOF9"));
}

TEST_CASE("image guard: PNG chunks - empty IDAT, missing IEND/IDAT, bad lengths, IHDR first") {
  TempDir tmp;
  write_png(tmp / "ok.png", test_face(3));
  const std::vector<uint8_t> ok = read_file_bytes(tmp / "ok.png", 1 << 20);
  REQUIRE(guard_error(ok, "ok.png") == "<no error>");
  const size_t after_ihdr = 8 + 12 + 13;

  // An empty IDAT right after IHDR (stb_image 2.27: memcpy(NULL, .., 0)).
  std::vector<uint8_t> png = ok;
  const std::vector<uint8_t> empty_idat = png_chunk("IDAT", {});
  png.insert(png.begin() + after_ihdr, empty_idat.begin(), empty_idat.end());
  std::string msg = error_of([&] { decode_image(png.data(), png.size(), "empty_idat.png"); });
  CAPTURE(msg);
  CHECK(contains(msg, "empty_idat.png"));
  CHECK(contains(msg, "corrupt"));
  CHECK(contains(msg, "empty IDAT chunk"));
  CHECK(contains(msg, "offset 33"));

  // No IEND (cut before it), no IDAT at all, a length past the end, a first chunk other than IHDR.
  png.assign(ok.begin(), ok.end() - 12);
  CHECK(contains(guard_error(png, "noiend.png"), "without an IEND"));
  png.assign(ok.begin(), ok.begin() + after_ihdr);
  const std::vector<uint8_t> iend = png_chunk("IEND", {});
  png.insert(png.end(), iend.begin(), iend.end());
  CHECK(contains(guard_error(png, "noidat.png"), "IEND before any IDAT"));
  png = ok;
  png[after_ihdr] = 0x7F;  // the IDAT length's high byte
  CHECK(contains(guard_error(png, "long.png"), "past the end of the file"));
  png = ok;
  const std::vector<uint8_t> text = png_chunk("tEXt", {'a', 0, 'b'});
  png.insert(png.begin() + 8, text.begin(), text.end());
  CHECK(contains(guard_error(png, "late_ihdr.png"), "not IHDR"));
}

// ---- Folder reader -----------------------------------------------------------------------------

TEST_CASE("folder reader: class folders map by name to FER ids; PNG and JPG; parallel decode") {
  TempDir tmp;
  make_split_folder(tmp.path / "train", 3);
  for (int threads : {1, 4}) {
    ReadOptions opts;
    opts.threads = threads;
    const Dataset ds = read_fer_folder(tmp / "train", opts);
    REQUIRE(ds.size() == 21);
    CHECK(ds.class_names == fer_class_names());
    CHECK(class_counts(ds) == std::vector<int64_t>(7, 3));
    for (int64_t i = 0; i < ds.size(); ++i) {
      const int id = ds.labels[i];
      // The first pixel carries 30 * id (exact for PNG, close for the JPG).
      CHECK(std::abs(ds.image(i)[0] - 30 * id) <= 8);
    }
    // Ordered by class id then file name: the first PNG of 'happy' (id 3) is item 9.
    CHECK(ds.labels[9] == 3);
    CHECK(std::vector<uint8_t>(ds.image(9), ds.image(9) + kFacePixels) == test_face(90).pixels);
    // Each face keeps the file it came from (fer_eval's predictions.csv names it).
    REQUIRE(ds.sources.size() == 21);
    CHECK(ds.source(9) == (tmp.path / "train" / "happy" / "img_0.png").string());
    CHECK(ds.source(20) == (tmp.path / "train" / "neutral" / "img_2.jpg").string());
  }
  const Dataset via_root = load_fer2013(tmp.path.string(), Split::Train);
  CHECK(via_root.size() == 21);
  CHECK(contains(error_of([&] { load_fer2013(tmp.path.string(), Split::Val); }), "neither"));
}

TEST_CASE("folder reader: a missing path says where to get the data and which layouts work") {
  const std::string msg = error_of([] { load_fer2013("/nonexistent/fer2013", Split::Train); });
  CAPTURE(msg);
  CHECK(contains(msg, "/nonexistent/fer2013"));
  CHECK(contains(msg, "kaggle.com"));
  CHECK(contains(msg, "ROOT/<split>/<class>/*.jpg"));
  CHECK(contains(msg, "fer2013.csv"));
  CHECK(contains(msg, "emotion,pixels,Usage"));
  CHECK(contains(error_of([] { read_fer_folder("/nonexistent/val"); }), "kaggle.com"));
}

TEST_CASE("folder reader: empty and unknown class folders, bad images; skip_bad counts them") {
  SUBCASE("empty class folder") {
    TempDir tmp;
    make_split_folder(tmp.path / "val", 2);
    for (const auto& f : fs::directory_iterator(tmp.path / "val" / "disgust")) fs::remove(f.path());
    const std::string msg = error_of([&] { read_fer_folder(tmp / "val"); });
    CHECK(contains(msg, "disgust"));
    CHECK(contains(msg, "no .jpg/.jpeg/.png images"));
    ReadOptions allow;
    allow.allow_empty_class = true;
    CHECK(read_fer_folder(tmp / "val", allow).size() == 12);
    ReadOptions skip;
    skip.skip_bad = true;
    const Dataset ds = read_fer_folder(tmp / "val", skip);
    CHECK(ds.size() == 12);
    CHECK(ds.problems.size() == 1);
    // A class folder that is missing altogether is treated the same way.
    fs::remove(tmp.path / "val" / "disgust");
    CHECK(contains(error_of([&] { read_fer_folder(tmp / "val"); }), "'disgust' is missing"));
  }
  SUBCASE("unknown class folder") {
    TempDir tmp;
    make_split_folder(tmp.path / "val", 2);
    fs::create_directories(tmp.path / "val" / "contempt");
    write_png(tmp / "val/contempt/x.png", test_face(1));
    write_png(tmp / "val/contempt/y.png", test_face(2));
    const std::string msg = error_of([&] { read_fer_folder(tmp / "val"); });
    CHECK(contains(msg, "unknown class folder"));
    CHECK(contains(msg, "contempt"));
    ReadOptions skip;
    skip.skip_bad = true;
    const Dataset ds = read_fer_folder(tmp / "val", skip);
    CHECK(ds.size() == 14);
    CHECK(ds.skipped == 2);
    REQUIRE(ds.problems.size() == 1);
    CHECK(contains(ds.problems[0], "contempt"));
  }
  SUBCASE("corrupt, truncated and huge images") {
    TempDir tmp;
    make_split_folder(tmp.path / "val", 2);
    const std::vector<uint8_t> jpg = read_file_bytes(tmp / "val/FEAR/img_1.jpg", 1 << 20);
    write_bytes(tmp / "val/FEAR/truncated.jpg", std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2));
    std::string msg = error_of([&] { read_fer_folder(tmp / "val"); });
    CHECK(contains(msg, "truncated.jpg"));
    write_bytes(tmp / "val/sad/huge.png", png_header(20000, 20000));
    write_bytes(tmp / "val/sad/noise.jpeg", std::vector<uint8_t>(500, 7));
    msg = error_of([&] { read_fer_folder(tmp / "val"); });
    CHECK(contains(msg, "truncated.jpg"));  // the first bad file, by class and name
    CHECK(contains(msg, "2 more bad images"));
    ReadOptions skip;
    skip.skip_bad = true;
    skip.threads = 3;
    const Dataset ds = read_fer_folder(tmp / "val", skip);
    CHECK(ds.size() == 14);
    CHECK(ds.skipped == 3);
    REQUIRE(ds.problems.size() == 3);
    CHECK(contains(ds.problems[1], "huge.png"));
    CHECK(contains(ds.problems[1], "20000x20000"));
  }
}

// ---- CSV reader --------------------------------------------------------------------------------

namespace {
std::string join_pixels(const std::vector<int>& pixels) {
  std::string s;
  for (size_t i = 0; i < pixels.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(pixels[i]);
  }
  return s;
}
std::string csv_row(int label, const std::vector<int>& pixels, const std::string& usage) {
  std::string s = std::to_string(label);
  s += ',';
  s += join_pixels(pixels);
  s += ',';
  s += usage;
  s += '\n';
  return s;
}
std::string with_char(std::string s, size_t at, char c) {
  s[at] = c;
  return s;
}
std::vector<int> ramp(int offset) {
  std::vector<int> v(kFacePixels);
  for (int i = 0; i < kFacePixels; ++i) v[i] = (i + offset) % 256;
  return v;
}
}  // namespace

TEST_CASE("csv reader: round trip, split selection, file and root forms") {
  const Dataset faces = make_synthetic_faces(2, 7);  // 14 faces, labels 0..6
  const std::string text =
      format_fer_csv(faces, Split::Train) + format_fer_csv(faces, Split::Val, false) +
      csv_row(3, ramp(5), "PrivateTest");
  const Dataset all = parse_fer_csv(text, std::nullopt, "mem.csv");
  CHECK(all.size() == 29);
  const Dataset train = parse_fer_csv(text, Split::Train, "mem.csv");
  CHECK(train.labels == faces.labels);
  CHECK(train.pixels == faces.pixels);
  CHECK(parse_fer_csv(text, Split::Val, "mem.csv").size() == 14);
  const Dataset test = parse_fer_csv(text, Split::Test, "mem.csv");
  REQUIRE(test.size() == 1);
  CHECK(test.labels[0] == 3);
  CHECK(test.image(0)[10] == 15);
  // Sources are file:line (the header is line 1; the PrivateTest row is the last of 30 lines).
  CHECK(train.source(0) == "mem.csv:2");
  CHECK(test.source(0) == "mem.csv:30");
  CHECK(parse_fer_csv(text, Split::Test, "", {}).source(0) == "<memory>:30");

  // Column order, quotes, CRLF line ends and a BOM are accepted.
  std::string reordered = "\xEF\xBB\xBF" "Usage,emotion,pixels\r\n";
  reordered += "PublicTest,4,\"";
  reordered += join_pixels(ramp(1));
  reordered += "\"\r\n";
  const Dataset r = parse_fer_csv(reordered, Split::Val, "reordered.csv");
  REQUIRE(r.size() == 1);
  CHECK(r.labels[0] == 4);
  CHECK(r.image(0)[0] == 1);

  TempDir tmp;
  write_text(tmp / "fer2013.csv", text);
  CHECK(read_fer_csv(tmp / "fer2013.csv", Split::Train).size() == 14);
  CHECK(load_fer2013(tmp / "fer2013.csv", Split::Val).size() == 14);  // a .csv path
  CHECK(load_fer2013(tmp.path.string(), Split::Test).size() == 1);    // ROOT/fer2013.csv
  CHECK(parse_split("PublicTest") == Split::Val);
  CHECK(parse_split("train") == Split::Train);
  CHECK(parse_split("privatetest") == Split::Test);
  CHECK(std::string(split_usage(Split::Val)) == "PublicTest");
}

TEST_CASE("csv reader: every bad row names the file and line; skip_bad counts them") {
  const std::string header = "emotion,pixels,Usage\n";
  const std::string good = csv_row(2, ramp(0), "Training");
  std::vector<int> short_row = ramp(0);
  short_row.pop_back();
  std::vector<int> out_of_range = ramp(0);
  out_of_range[100] = 256;

  struct Case {
    std::string row, expect;
  };
  const std::vector<Case> cases = {
      {csv_row(2, short_row, "Training"), "2303 pixel values, expected 2304"},
      {csv_row(2, out_of_range, "Training"), "pixel 101 value 256 is out of range"},
      {csv_row(7, ramp(0), "Training"), "emotion label '7' is out of range 0..6"},
      {csv_row(-1, ramp(0), "Training"), "out of range 0..6"},
      {with_char(csv_row(1, ramp(0), "Training"), 0, 'x'), "emotion 'x' is not an integer"},
      {csv_row(2, ramp(0), "Training").replace(8, 1, "1a"), "pixel 4 '1a' is not an integer"},
      {csv_row(2, ramp(0), "Validation"), "unknown Usage 'Validation'"},
      {"3,1 2 3\n", "missing columns"},
  };
  for (const Case& c : cases) {
    const std::string text = header + good + c.row + good;
    const std::string msg = error_of([&] { parse_fer_csv(text, Split::Train, "bad.csv"); });
    CAPTURE(msg);
    CHECK(contains(msg, "'bad.csv' line 3"));
    CHECK(contains(msg, c.expect));
    ReadOptions skip;
    skip.skip_bad = true;
    const Dataset ds = parse_fer_csv(text, Split::Train, "bad.csv", skip);
    CHECK(ds.size() == 2);
    CHECK(ds.skipped == 1);
  }
  // All bad rows together, from a file.
  TempDir tmp;
  std::string text = header;
  for (const Case& c : cases) text += c.row + good;
  write_text(tmp / "many.csv", text);
  ReadOptions skip;
  skip.skip_bad = true;
  const Dataset ds = read_fer_csv(tmp / "many.csv", Split::Train, skip);
  CHECK(ds.size() == static_cast<int64_t>(cases.size()));
  CHECK(ds.skipped == static_cast<int64_t>(cases.size()));
  CHECK(contains(error_of([&] { read_fer_csv(tmp / "many.csv", Split::Train); }), "many.csv' line 2"));

  // Header problems always throw, on line 1.
  CHECK(contains(error_of([] { parse_fer_csv("emotion,Usage\n", Split::Train, "h.csv"); }),
                 "'h.csv' line 1: missing column 'pixels'"));
  CHECK(contains(error_of([] { parse_fer_csv("emotion,pixels\n", Split::Train, "h.csv"); }),
                 "missing column 'Usage'"));
  CHECK(contains(error_of([] { parse_fer_csv("", Split::Train, "h.csv"); }), "line 1: empty file"));
}

// ---- Preprocessing -----------------------------------------------------------------------------

TEST_CASE("histogram equalisation matches OpenCV's equalizeHist on a hand-computed example") {
  // hist: 10 x2, 20 x1, 30 x3, 40 x2; total 8, cdf_min 2, scale 255/6 = 42.5.
  // lut[10] = 0, lut[20] = 1 * 42.5 = 42.5 -> 42 (cvRound: half to even), lut[30] = 4 * 42.5 = 170,
  // lut[40] = 6 * 42.5 = 255.
  std::vector<uint8_t> px = {10, 10, 20, 30, 30, 30, 40, 40};
  CHECK(equalize_hist(px) == std::vector<uint8_t>{0, 0, 42, 170, 170, 170, 255, 255});
  // hist 0 x1, 1 x2, 255 x1: total 4, cdf_min 1, scale 85: lut[1] = 170, lut[255] = 255.
  CHECK(equalize_hist(std::vector<uint8_t>{1, 0, 255, 1}) == std::vector<uint8_t>{170, 0, 255, 170});
  // A constant image is unchanged.
  CHECK(equalize_hist(std::vector<uint8_t>(16, 77)) == std::vector<uint8_t>(16, 77));

  // to_unit_float: equalised and scaled to [0, 1] by default; raw / 255 with equalize off.
  std::vector<float> out(8);
  to_unit_float(px.data(), out.data(), px.size(), PreprocessOptions{});
  CHECK(out[2] == doctest::Approx(42 / 255.0f));
  CHECK(out[7] == 1.0f);
  PreprocessOptions raw;
  raw.equalize = false;
  to_unit_float(px.data(), out.data(), px.size(), raw);
  CHECK(out[0] == doctest::Approx(10 / 255.0f));
  raw.standardize = true;
  raw.mean = 0.5f;
  raw.std = 0.25f;
  standardize(out.data(), out.size(), raw);
  CHECK(out[0] == doctest::Approx((10 / 255.0f - 0.5f) / 0.25f));

  const Dataset faces = make_synthetic_faces(1, 3);
  const fer::Tensor t = faces_to_tensor(faces.pixels.data(), faces.size());
  CHECK(t.shape() == fer::Shape{7, 1, 48, 48});
  const std::vector<float> v = t.to_vector();
  CHECK(*std::max_element(v.begin(), v.begin() + kFacePixels) == 1.0f);
  CHECK(*std::min_element(v.begin(), v.begin() + kFacePixels) == 0.0f);
}

// ---- Augmentation ------------------------------------------------------------------------------

namespace {
AugmentOptions everything_on() {
  AugmentOptions o;
  o.rrc_scale_min = 0.8f;
  o.crop = true;
  o.hflip = true;
  o.rotation_deg = 15;
  o.shift_frac = 0.1f;
  o.zoom_frac = 0.1f;
  o.shear_deg = 10;
  o.brightness = 0.2f;
  o.contrast = 0.2f;
  o.erase = true;
  o.erase_p = 1.0f;
  return o;
}
}  // namespace

TEST_CASE("augmentation: identity when off, exact flip, seeded reproducibility") {
  const std::vector<float> face = face_floats(1);

  SUBCASE("all off: unchanged, no random numbers drawn") {
    std::vector<float> img = face;
    fer::Generator gen = sample_generator(1, 2, 3);
    const uint64_t state = gen.state();
    CHECK_FALSE(AugmentOptions{}.any());
    augment(img.data(), AugmentOptions{}, gen);
    CHECK(img == face);
    CHECK(gen.state() == state);
    // A warp with the identity matrix is the identity too.
    const float identity[6] = {1, 0, 0, 0, 1, 0};
    std::vector<float> warped(kFacePixels);
    warp_affine(face.data(), warped.data(), identity, Border::Zeros);
    CHECK(warped == face);
  }
  SUBCASE("horizontal flip with p = 1 mirrors the pixels exactly") {
    AugmentOptions o;
    o.hflip = true;
    o.hflip_p = 1.0f;
    std::vector<float> img = face;
    fer::Generator gen(5);
    augment(img.data(), o, gen);
    for (int y = 0; y < 48; ++y)
      for (int x = 0; x < 48; ++x) REQUIRE(img[y * 48 + x] == face[y * 48 + (47 - x)]);
  }
  SUBCASE("random crop with padding is an integer shift with zero fill") {
    AugmentOptions o;
    o.crop = true;
    o.crop_padding = 4;
    std::vector<float> ones(kFacePixels, 1.0f);
    int shifted = 0;
    for (uint64_t s = 0; s < 20; ++s) {
      std::vector<float> img = ones;
      fer::Generator gen = sample_generator(s, 0, 0);
      augment(img.data(), o, gen);
      const int zeros = static_cast<int>(std::count(img.begin(), img.end(), 0.0f));
      const int kept = static_cast<int>(std::count(img.begin(), img.end(), 1.0f));
      CHECK(zeros + kept == kFacePixels);
      CHECK(zeros <= 48 * 8 + 48 * 8);
      shifted += zeros > 0;
    }
    CHECK(shifted > 10);
  }
  SUBCASE("random-resized crop: an axis-aligned box of the drawn area and aspect, magnified") {
    // A horizontal ramp (value = x): the output's rows stay increasing and span the box's width,
    // sqrt(area * ratio) with area 0.25 x 48^2 and ratio in [3/4, 4/3]: 20.8 to 27.7 pixels.
    std::vector<float> ramp(kFacePixels);
    for (int y = 0; y < 48; ++y)
      for (int x = 0; x < 48; ++x) ramp[y * 48 + x] = static_cast<float>(x);
    AugmentOptions o;
    o.rrc_scale_min = o.rrc_scale_max = 0.25f;
    CHECK(o.any());
    for (uint64_t s = 0; s < 20; ++s) {
      std::vector<float> img = ramp;
      fer::Generator gen = sample_generator(s, 0, 0);
      augment(img.data(), o, gen);
      for (int x = 1; x < 48; ++x) REQUIRE(img[5 * 48 + x] >= img[5 * 48 + x - 1]);
      const float span = img[5 * 48 + 47] - img[5 * 48];
      CHECK(span >= 20.8f * 47 / 48 - 0.01f);
      CHECK(span <= 27.8f);
      CHECK(img[5 * 48] == doctest::Approx(img[40 * 48]).epsilon(1e-5));  // no vertical change
    }
    AugmentOptions bad;
    bad.rrc_scale_min = 0.9f;
    bad.rrc_scale_max = 0.5f;
    CHECK_THROWS(bad.validate());
  }
  SUBCASE("same seed -> identical; other seed, epoch or index -> different") {
    const AugmentOptions o = everything_on();
    auto run = [&](uint64_t seed, uint64_t epoch, uint64_t index) {
      std::vector<float> img = face;
      fer::Generator gen = sample_generator(seed, epoch, index);
      augment(img.data(), o, gen);
      return img;
    };
    const std::vector<float> a = run(1, 0, 7);
    CHECK(a.size() == static_cast<size_t>(kFacePixels));
    CHECK(a == run(1, 0, 7));
    CHECK(a != run(2, 0, 7));
    CHECK(a != run(1, 1, 7));
    CHECK(a != run(1, 0, 8));
    CHECK(a != face);
    CHECK(std::all_of(a.begin(), a.end(), [](float v) { return std::isfinite(v); }));
  }
  SUBCASE("photometric jitter and erasing") {
    AugmentOptions o;
    o.brightness = 0.1f;
    std::vector<float> img(kFacePixels, 0.5f);
    fer::Generator gen(3);
    augment(img.data(), o, gen);
    CHECK(std::all_of(img.begin(), img.end(), [&](float v) { return v == img[0]; }));
    CHECK(std::fabs(img[0] - 0.5f) <= 0.1f);

    AugmentOptions e;
    e.erase = true;
    e.erase_p = 1.0f;
    e.erase_value = -1.0f;
    for (uint64_t s = 0; s < 10; ++s) {
      std::vector<float> im = face;
      fer::Generator g = sample_generator(s, 0, 0);
      augment(im.data(), e, g);
      const auto erased = std::count(im.begin(), im.end(), -1.0f);
      CHECK(erased >= 0.015 * kFacePixels);
      CHECK(erased <= 0.40 * kFacePixels);
    }
  }
  SUBCASE("geometric warp keeps values in range and moves pixels") {
    AugmentOptions o;
    o.rotation_deg = 20;
    std::vector<float> img = face;
    fer::Generator gen(9);
    augment(img.data(), o, gen);
    CHECK(img != face);
    CHECK(std::all_of(img.begin(), img.end(), [](float v) { return v >= 0 && v <= 1; }));
  }
  CHECK_THROWS_AS([] { AugmentOptions o; o.zoom_frac = 2; o.validate(); }(), fer::Error);
}

// ---- Dataset transforms and class balance ------------------------------------------------------

namespace {
// Synthetic faces with unequal class sizes: class c keeps 10 + 13 * c items.
Dataset unequal_dataset() {
  const Dataset all = make_synthetic_faces(100, 11);
  std::vector<int64_t> keep;
  for (int c = 0; c < 7; ++c)
    for (int i = 0; i < 10 + 13 * c; ++i) keep.push_back(c * 100 + i);
  return subset(all, keep);
}
}  // namespace

TEST_CASE("dataset: stratified split keeps class proportions, seeded") {
  const Dataset ds = unequal_dataset();
  const TrainVal s = stratified_split(ds, 0.2, 42);
  const std::vector<int64_t> counts = class_counts(ds), tc = class_counts(s.train), vc = class_counts(s.val);
  for (int c = 0; c < 7; ++c) {
    CHECK(vc[c] == std::llround(counts[c] * 0.2));
    CHECK(tc[c] + vc[c] == counts[c]);
  }
  CHECK(s.train.size() + s.val.size() == ds.size());
  // Same seed -> same split; another seed -> another selection.
  const TrainVal again = stratified_split(ds, 0.2, 42), other = stratified_split(ds, 0.2, 43);
  CHECK(again.val.pixels == s.val.pixels);
  CHECK(other.val.pixels != s.val.pixels);
  // No image is in both halves (synthetic faces are all distinct).
  std::set<uint64_t> val_images;
  for (int64_t i = 0; i < s.val.size(); ++i) val_images.insert(image_hash(s.val.image(i)));
  for (int64_t i = 0; i < s.train.size(); ++i) CHECK(val_images.count(image_hash(s.train.image(i))) == 0);
}

TEST_CASE("dataset: per-class cap, drop-disgust remap, subset") {
  const Dataset ds = unequal_dataset();
  const Dataset capped = cap_per_class(ds, 30, 5);
  const std::vector<int64_t> counts = class_counts(ds), cc = class_counts(capped);
  for (int c = 0; c < 7; ++c) CHECK(cc[c] == std::min<int64_t>(counts[c], 30));
  CHECK(cap_per_class(ds, 30, 5).pixels == capped.pixels);
  CHECK(cap_per_class(ds, 30, 6).pixels != capped.pixels);

  const Dataset six = drop_disgust(ds);
  CHECK(six.class_names == std::vector<std::string>{"angry", "fear", "happy", "sad", "surprise", "neutral"});
  CHECK(six.num_classes() == 6);
  CHECK(six.size() == ds.size() - counts[1]);
  const std::vector<int64_t> sc = class_counts(six);
  CHECK(sc == std::vector<int64_t>{counts[0], counts[2], counts[3], counts[4], counts[5], counts[6]});
  // Images follow their labels: the first "fear" image of six is the first fear image of ds.
  const int64_t first_fear_ds = std::find(ds.labels.begin(), ds.labels.end(), 2) - ds.labels.begin();
  const int64_t first_fear_six = std::find(six.labels.begin(), six.labels.end(), 1) - six.labels.begin();
  CHECK(std::equal(ds.image(first_fear_ds), ds.image(first_fear_ds) + kFacePixels, six.image(first_fear_six)));
  CHECK_THROWS_AS(drop_class(six, "disgust"), fer::Error);

  // Sources: none for synthetic data; when present, they follow their items through subset and
  // drop_class, and an item added without one after named ones gets "".
  CHECK(ds.sources.empty());
  CHECK(ds.source(0).empty());
  Dataset named;
  named.class_names = fer_class_names();
  named.add(ds.image(0), 0);
  named.add(ds.image(1), 1, "b.png");
  named.add(ds.image(2), 2);
  named.check();
  CHECK(named.sources == std::vector<std::string>{"", "b.png", ""});
  CHECK(subset(named, {1, 1}).sources == std::vector<std::string>{"b.png", "b.png"});
  const Dataset no_b = drop_disgust(named);  // "b.png" was the disgust face
  CHECK(no_b.size() == 2);
  CHECK((no_b.source(0).empty() && no_b.source(1).empty()));
  CHECK(drop_class(named, "angry").sources == std::vector<std::string>{"b.png", ""});
  named.sources.pop_back();
  CHECK_THROWS_AS(named.check(), fer::Error);
}

TEST_CASE("class balance: sklearn 'balanced' weights and the balanced sampler") {
  // n = 20, k = 3: 20 / (3 * 10), 20 / (3 * 2), 20 / (3 * 8).
  const std::vector<float> w = balanced_class_weights(std::vector<int64_t>{10, 2, 8});
  CHECK(w[0] == doctest::Approx(0.666667));
  CHECK(w[1] == doctest::Approx(3.333333));
  CHECK(w[2] == doctest::Approx(0.833333));
  // FER2013 train counts (README): 28709 / (7 * count).
  const std::vector<float> fer = balanced_class_weights(std::vector<int64_t>{3995, 436, 4097, 7215, 4830, 3171, 4965});
  CHECK(fer[0] == doctest::Approx(1.026611));
  CHECK(fer[1] == doctest::Approx(9.406619));
  CHECK(fer[3] == doctest::Approx(0.568438));
  CHECK(balanced_class_weights(std::vector<int64_t>{5, 0})[1] == 0.0f);

  const Dataset ds = unequal_dataset();
  const std::vector<int64_t> e0 = balanced_epoch(ds.labels, 7, 1, 0, 70000);
  CHECK(e0 == balanced_epoch(ds.labels, 7, 1, 0, 70000));
  CHECK(e0 != balanced_epoch(ds.labels, 7, 1, 1, 70000));
  std::vector<int64_t> per_class(7, 0);
  for (int64_t i : e0) ++per_class[ds.labels[i]];
  for (int c = 0; c < 7; ++c) CHECK(std::abs(per_class[c] - 10000) < 500);
  CHECK(balanced_epoch(ds.labels, 7, 1, 0).size() == static_cast<size_t>(ds.size()));
}

// ---- Batch loader ------------------------------------------------------------------------------

TEST_CASE("loader: every index once per epoch, shapes, labels, drop_last") {
  auto ds = std::make_shared<Dataset>(make_synthetic_faces(15, 2));  // 105 items
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 3;
  BatchLoader loader(ds, o);
  CHECK(loader.batches_per_epoch() == 11);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch(epoch);
    std::vector<int> seen(ds->size(), 0);
    int64_t batches = 0;
    for (Batch b; loader.next(b);) {
      CHECK(b.index == batches);
      CHECK(b.epoch == epoch);
      const int64_t n = b.size();
      CHECK(n == (batches == 10 ? 5 : 10));
      CHECK(b.images.shape() == fer::Shape{n, 1, 48, 48});
      CHECK(b.labels.shape() == fer::Shape{n});
      const std::vector<float> labels = b.labels.to_vector();
      for (int64_t j = 0; j < n; ++j) {
        ++seen[b.indices[j]];
        CHECK(labels[j] == static_cast<float>(ds->labels[b.indices[j]]));
      }
      ++batches;
    }
    CHECK(batches == 11);
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
    Batch extra;
    CHECK_FALSE(loader.next(extra));
  }
  CHECK(loader.epoch_order(0) != loader.epoch_order(1));

  o.drop_last = true;
  BatchLoader dropping(ds, o);
  int64_t batches = 0;
  for (Batch b; dropping.next(b);) {
    CHECK(b.size() == 10);
    ++batches;
  }
  CHECK(batches == 10);

  // No shuffle, no augmentation: images are exactly the preprocessed faces, in order.
  o.drop_last = false;
  o.shuffle = false;
  BatchLoader plain(ds, o);
  Batch first;
  REQUIRE(plain.next(first));
  CHECK(first.indices == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(tensor_values(first.images) == tensor_values(faces_to_tensor(ds->pixels.data(), 10)));
}

TEST_CASE("loader: with a crop side, every image is a window of its face at a seeded offset") {
  auto ds = std::make_shared<Dataset>(make_synthetic_faces(4, 2));  // 28 items
  LoaderOptions o;
  o.batch_size = 7;
  o.shuffle = false;
  o.workers = 0;
  o.preprocess.crop = 40;
  BatchLoader loader(ds, o);
  const std::vector<float> full = tensor_values(faces_to_tensor(ds->pixels.data(), ds->size()));
  std::set<std::pair<int, int>> offsets;
  for (Batch b; loader.next(b);) {
    REQUIRE(b.images.shape() == fer::Shape{7, 1, 40, 40});
    const std::vector<float> v = tensor_values(b.images);
    for (int64_t j = 0; j < b.size(); ++j) {
      const float* face = full.data() + b.indices[j] * kFacePixels;
      const float* view = v.data() + j * 1600;
      bool found = false;
      for (int top = 0; top <= 8 && !found; ++top)
        for (int left = 0; left <= 8 && !found; ++left) {
          bool same = true;
          for (int y = 0; y < 40 && same; ++y)
            same = std::equal(view + y * 40, view + (y + 1) * 40, face + (top + y) * 48 + left);
          if (same) found = true, offsets.insert({top, left});
        }
      CHECK(found);
    }
  }
  CHECK(offsets.size() > 10);  // the windows move
  o.preprocess.crop = 49;
  CHECK_THROWS(BatchLoader(ds, o));
}

TEST_CASE("loader: same order and content for 0, 1 and 3 workers; early stop is clean") {
  auto ds = std::make_shared<Dataset>(make_synthetic_faces(12, 4));  // 84 items
  auto collect = [&](int workers, bool balanced) {
    LoaderOptions o;
    o.batch_size = 8;
    o.workers = workers;
    o.prefetch = 2;
    o.seed = 99;
    o.balanced = balanced;
    o.augment = everything_on();
    o.preprocess.standardize = true;
    o.preprocess.mean = 0.5f;
    o.preprocess.std = 0.25f;
    BatchLoader loader(ds, o);
    std::vector<int64_t> order;
    std::vector<float> pixels;
    for (int64_t epoch : {0, 1}) {
      loader.start_epoch(epoch);
      for (Batch b; loader.next(b);) {
        order.insert(order.end(), b.indices.begin(), b.indices.end());
        const std::vector<float> v = b.images.to_vector();
        pixels.insert(pixels.end(), v.begin(), v.end());
      }
    }
    return std::pair{order, pixels};
  };
  for (bool balanced : {false, true}) {
    const auto one = collect(1, balanced);
    CHECK(one.first.size() == 2 * 84u);
    CHECK(collect(3, balanced) == one);
    CHECK(collect(0, balanced) == one);
  }

  // Consumers that stop early, restart an epoch or never start: no deadlock, clean join.
  for (int workers : {1, 2, 4}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.prefetch = 1;
    BatchLoader loader(ds, o);
    Batch b;
    REQUIRE(loader.next(b));
    loader.start_epoch(5);
    REQUIRE(loader.next(b));
    CHECK(b.epoch == 5);
    CHECK(b.index == 0);
    BatchLoader unused(ds, o);
  }
}

// ---- Synthetic faces ---------------------------------------------------------------------------

TEST_CASE("synthetic faces: reproducible, labelled, and learnable (1-nearest-neighbour)") {
  const Dataset train = make_synthetic_faces(60, 1), test = make_synthetic_faces(30, 2);
  CHECK(train.size() == 420);
  CHECK(class_counts(train) == std::vector<int64_t>(7, 60));
  CHECK(make_synthetic_faces(60, 1).pixels == train.pixels);
  CHECK(test.pixels != make_synthetic_faces(30, 3).pixels);

  // A 1-nearest-neighbour rule on the equalised, scaled images separates the classes well
  // (chance is 1/7), despite the random placement and noise.
  const std::vector<float> trv = faces_to_tensor(train.pixels.data(), train.size()).to_vector();
  const std::vector<float> tev = faces_to_tensor(test.pixels.data(), test.size()).to_vector();
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = -1;
    double best_d = 1e300;
    for (int64_t j = 0; j < train.size(); ++j) {
      double d = 0;
      for (int k = 0; k < kFacePixels; ++k) {
        const double diff = tev[i * kFacePixels + k] - trv[j * kFacePixels + k];
        d += diff * diff;
      }
      if (d < best_d) best_d = d, best = train.labels[j];
    }
    correct += best == test.labels[i];
  }
  const double accuracy = static_cast<double>(correct) / test.size();
  MESSAGE("synthetic faces, 1-nearest-neighbour test accuracy: ", accuracy);
  CHECK(accuracy > 0.7);
}

// ---- The real data set -------------------------------------------------------------------------

TEST_CASE("FER2013 val/ from ../shared/fer2013 (skipped when absent)") {
  const fs::path root = fer_data_dir();
  if (!fs::is_directory(root / "val")) {
    MESSAGE("SKIPPED: no FER2013 data at '", root.string(), "' (set FER_DATA); ", fer2013_help());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset val = load_fer2013(root.string(), Split::Val);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("loaded ", val.size(), " val images from ", root.string(), " in ", seconds, " s");
  CHECK(val.size() == 3589);
  CHECK(val.skipped == 0);
  // README counts, by FER id: angry, disgust, fear, happy, sad, surprise, neutral.
  CHECK(class_counts(val) == std::vector<int64_t>{467, 56, 496, 895, 653, 415, 607});
  // The images are already equalised: equalising again changes them very little.
  double change = 0;
  for (int64_t i = 0; i < 50; ++i) {
    const std::vector<uint8_t> px(val.image(i), val.image(i) + kFacePixels);
    const std::vector<uint8_t> eq = equalize_hist(px);
    for (int k = 0; k < kFacePixels; ++k) change += std::abs(eq[k] - px[k]);
  }
  change /= 50.0 * kFacePixels;
  MESSAGE("mean |equalise(x) - x| on val images: ", change, " gray levels");
  CHECK(change < 6.0);

  // The CSV form of the same faces reads back identically.
  const Dataset from_csv = parse_fer_csv(format_fer_csv(val, Split::Val), Split::Val, "val.csv");
  CHECK(from_csv.labels == val.labels);
  CHECK(from_csv.pixels == val.pixels);
}

TEST_CASE("FER2013 train/ from ../shared/fer2013: 28,709 faces, parallel load (skipped when absent)") {
  const fs::path root = fer_data_dir();
  if (!fs::is_directory(root / "train")) {
    MESSAGE("SKIPPED: no FER2013 train/ at '", root.string(), "' (set FER_DATA)");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset train = load_fer2013(root.string(), Split::Train);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("loaded ", train.size(), " train images in ", seconds, " s");
  CHECK(train.size() == 28709);
  CHECK(class_counts(train) == std::vector<int64_t>{3995, 436, 4097, 7215, 4830, 3171, 4965});
  const Dataset six = drop_disgust(train);
  CHECK(six.size() == 28709 - 436);
}
