// Tests of the FaceAnalyzer (apps/inference/face_analyzer.h) with the shipped checkpoint, and of the
// fer_predict app end to end (the built binary, found through FER_BUILD_DIR, which CTest sets).
// FER2013 faces come from $FER_DATA/val; photos from Debian's opencv-doc and the cascade from
// opencv-data. Each test skips visibly when what it needs is absent.
#include <doctest/doctest.h>

#include "tests/support/temp_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/inference/face_analyzer.h"
#include "apps/report/charts.h"
#include "apps/training/checkpoint.h"
#include "engine/calibration.h"
#include "data/image.h"
#include "data/video.h"
#include "engine/error.h"
#include "engine/random.h"
#include "models/registry.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace fer;
using fer::testing::TempDir;
using fer::testing::throws_naming;

namespace {

const std::string kDoc = "/usr/share/doc/opencv-doc/";
const std::string kLena = kDoc + "opencv4/html/faceDetection.png";         // 1 face, 512x512
const std::string kFour = kDoc + "opencv4/html/facereg.jpg";               // 4 faces, 200x200
const std::string kNoFace = kDoc + "examples/data/HappyFish.jpg";          // a fish
const std::string kCascade = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";

fs::path source_dir() {
  if (const char* env = std::getenv("FER_SOURCE_DIR"); env && *env) return env;
  return fs::absolute(__FILE__).parent_path().parent_path();
}
fs::path fer_data_dir() {
  if (const char* env = std::getenv("FER_DATA"); env && *env) return env;
  return source_dir().parent_path() / "shared" / "fer2013";
}
std::string checkpoint() { return (source_dir() / kDefaultCheckpoint).string(); }

bool missing(const std::string& path, const char* what) {
  if (fs::exists(path)) return false;
  MESSAGE("SKIPPED: " << path << " is absent (" << what << ")");
  return true;
}

// The first `per_class` images of each class folder of FER2013's val split (sorted by name), with
// the folder's class name; empty (and a SKIPPED line) when the data is absent.
std::vector<std::pair<std::string, std::string>> val_faces(int per_class) {
  const fs::path val = fer_data_dir() / "val";
  std::vector<std::pair<std::string, std::string>> out;
  if (missing(val.string(), "FER2013 images: set FER_DATA or put them in ../shared/fer2013")) return out;
  for (const char* cls : {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(val / cls)) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (int i = 0; i < per_class && i < static_cast<int>(files.size()); ++i) out.emplace_back(files[i], cls);
  }
  return out;
}


std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The mean of -log p(true class) over the rows of fer_eval's predictions.csv
// (index,source,true,predicted,p_<class>...).
double mean_nll(const std::string& csv_path) {
  const std::vector<std::string> rows = lines_of(read_text(csv_path));
  REQUIRE(rows.size() > 1);
  auto cells = [](const std::string& line) {
    std::vector<std::string> out;
    std::stringstream in(line);
    for (std::string cell; std::getline(in, cell, ',');) out.push_back(cell);
    return out;
  };
  const std::vector<std::string> header = cells(rows[0]);
  double sum = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string> row = cells(rows[i]);
    REQUIRE(row.size() == header.size());
    const auto column = std::find(header.begin(), header.end(), "p_" + row[2]);
    REQUIRE(column != header.end());
    sum -= std::log(std::stod(row[static_cast<size_t>(column - header.begin())]));
  }
  return sum / static_cast<double>(rows.size() - 1);
}

double sum_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

AnalyzerOptions crops_options() {
  AnalyzerOptions o;
  o.checkpoint = checkpoint();
  o.detect = false;
  return o;
}

// ---- Running the built fer_predict -------------------------------------------------------------

struct Run {
  int status = -1;
  std::string out, err;
};

// A built app: $FER_BUILD_DIR/<name> (CTest sets it), else beside this test binary; "" (with a
// SKIPPED line) when it is not built.
std::string app_binary(const std::string& name) {
  std::error_code ec;
  const char* env = std::getenv("FER_BUILD_DIR");
  const fs::path dir = env && *env ? fs::path(env) : fs::read_symlink("/proc/self/exe", ec).parent_path();
  const fs::path path = dir / name;
  if (!fs::exists(path)) {
    MESSAGE("SKIPPED: " << name << " end-to-end tests: " << path.string() << " is not built");
    return "";
  }
  return path.string();
}
std::string fer_predict_binary() { return app_binary("fer_predict"); }

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Run run_predict(const std::string& binary, const std::vector<std::string>& args, const TempDir& tmp) {
  std::string cmd = quoted(binary);
  for (const std::string& a : args) {
    cmd += ' ';
    cmd += quoted(a);
  }
  cmd += " > ";
  cmd += quoted(tmp / "stdout.txt");
  cmd += " 2> ";
  cmd += quoted(tmp / "stderr.txt");
  Run r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(tmp / "stdout.txt");
  r.err = read_text(tmp / "stderr.txt");
  return r;
}

// Checks one face object of fer_predict's JSON; returns its probabilities' sum.
void check_face_json(const nlohmann::json& f, const std::vector<std::string>& names) {
  REQUIRE(f.at("box").is_array());
  REQUIRE(f.at("box").size() == 4);
  for (const auto& v : f.at("box")) CHECK(v.is_number_integer());
  const auto& emotions = f.at("emotions");
  REQUIRE(emotions.size() == names.size());
  double sum = 0, best = -1;
  std::string best_name;
  for (const std::string& n : names) {
    const double p = emotions.at(n).get<double>();
    CHECK(p >= 0);
    CHECK(p <= 1);
    sum += p;
    if (p > best) best = p, best_name = n;
  }
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(f.at("emotion").get<std::string>() == best_name);
  CHECK(f.at("confidence").get<double>() == doctest::Approx(best).epsilon(1e-6));
}

// The same faces (boxes and emotions equal, probabilities within float noise of another batch).
void same_faces(const nlohmann::json& a, const nlohmann::json& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["box"] == b[i]["box"]);
    CHECK(a[i]["emotion"] == b[i]["emotion"]);
    for (const auto& [name, p] : a[i]["emotions"].items())
      CHECK(p.get<double>() == doctest::Approx(b[i]["emotions"][name].get<double>()).epsilon(1e-4));
  }
}

const std::vector<std::string> kFerNames{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

// An ensemble's answers `ab` (one face per image) are the mean of its two members' `a` and `b`, and
// the members differ (otherwise the check would not tell a mean from one member).
void check_mean_of_members(const std::vector<std::vector<FacePrediction>>& a,
                           const std::vector<std::vector<FacePrediction>>& b,
                           const std::vector<std::vector<FacePrediction>>& ab) {
  REQUIRE(a.size() == ab.size());
  REQUIRE(b.size() == ab.size());
  bool members_differ = false;
  for (size_t i = 0; i < ab.size(); ++i)
    for (size_t c = 0; c < 7; ++c) {
      const float pa = a[i][0].probabilities[c], pb = b[i][0].probabilities[c];
      members_differ |= std::fabs(pa - pb) > 1e-3f;
      CHECK(ab[i][0].probabilities[c] == doctest::Approx((pa + pb) / 2).epsilon(1e-5));
    }
  CHECK(members_differ);
}

}  // namespace

// ---- FaceAnalyzer ------------------------------------------------------------------------------

TEST_CASE("analyzer: FER2013 val crops without detection, batched like one by one, above chance") {
  const auto faces = val_faces(10);
  if (faces.empty()) return;
  const FaceAnalyzer analyzer(crops_options());
  CHECK(analyzer.class_names() == kFerNames);
  CHECK(analyzer.input_size() == 48);
  std::vector<data::GrayImage> images;
  for (const auto& [path, cls] : faces) images.push_back(data::read_image(path));
  const auto batched = analyzer.analyze_batch(images);
  REQUIRE(batched.size() == images.size());
  int correct = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    INFO(faces[i].first);
    REQUIRE(batched[i].size() == 1);
    const FacePrediction& p = batched[i][0];
    CHECK(p.box.x == 0);
    CHECK(p.box.y == 0);
    CHECK(p.box.width == 48);
    CHECK(p.box.height == 48);
    REQUIRE(p.probabilities.size() == 7);
    CHECK(sum_of(p.probabilities) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(p.label == std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin());
    CHECK(p.emotion == kFerNames[p.label]);
    CHECK(p.confidence == p.probabilities[p.label]);
    correct += p.emotion == faces[i].second;
    if (i % 10 == 0) {  // one image alone gives the same probabilities as inside the batch
      const std::vector<FacePrediction> alone = analyzer.analyze(images[i]);
      REQUIRE(alone.size() == 1);
      for (size_t c = 0; c < 7; ++c) CHECK(alone[0].probabilities[c] == doctest::Approx(p.probabilities[c]).epsilon(1e-4));
    }
  }
  // The shipped model scores ~66% on val; 7 classes by chance would be ~14%.
  MESSAGE("accuracy on " << images.size() << " val faces: " << correct << "/" << images.size());
  CHECK(correct >= static_cast<int>(0.35 * images.size()));
}

TEST_CASE("analyzer: several checkpoints are an ensemble - the mean of the members' probabilities") {
  TempDir dir("fer_ensemble");
  // A second member: the shipped spec with other (seeded random) weights.
  LoadedCheckpoint shipped = load_checkpoint(checkpoint());
  manual_seed(5);
  auto other = create_model(shipped.spec.name, shipped.spec.config);
  const std::string other_path = dir.file("other.safetensors");
  save_checkpoint(other_path, *other, shipped.spec);

  std::vector<data::GrayImage> images;
  for (int k = 0; k < 3; ++k) {  // three different 48x48 textures
    data::GrayImage g{48, 48, std::vector<uint8_t>(48 * 48)};
    for (int i = 0; i < 48 * 48; ++i) g.pixels[i] = static_cast<uint8_t>((i * (7 + 13 * k)) % 251);
    images.push_back(g);
  }
  AnalyzerOptions o = crops_options();
  const auto a = FaceAnalyzer(o).analyze_batch(images);
  o.checkpoint = other_path;
  const auto b = FaceAnalyzer(o).analyze_batch(images);
  o.checkpoint = checkpoint() + "," + other_path;
  const FaceAnalyzer both(o);
  CHECK(both.model_name() == "ensemble of 2: fer_vgg_small, fer_vgg_small");
  CHECK(both.checkpoint_path().find(',') != std::string::npos);
  check_mean_of_members(a, b, both.analyze_batch(images));

  // A member that names other classes is refused, naming it.
  ModelSpec six = shipped.spec;
  six.class_names.pop_back();
  six.config.num_classes = 6;
  const std::string six_path = dir.file("six.safetensors");
  save_checkpoint(six_path, *create_model(six.name, six.config), six);
  o.checkpoint = checkpoint() + "," + six_path;
  CHECK(throws_naming([&] { FaceAnalyzer x(o); }, six_path + "' (6 classes) does not name the classes of"));
}

TEST_CASE("analyzer: ensemble members read the faces their own way (a 40x40-crop member beside a whole-face one)") {
  TempDir dir("fer_ensemble_crop");
  LoadedCheckpoint shipped = load_checkpoint(checkpoint());
  // A member trained on 40x40 crops of the face, standardised: another input size, crop and
  // preprocessing than the shipped network's.
  ModelSpec cropped = shipped.spec;
  cropped.config.input_size = 40;
  cropped.preprocess.crop = 40;
  cropped.preprocess.standardize = true;
  cropped.preprocess.mean = 0.5f;
  cropped.preprocess.std = 0.25f;
  manual_seed(6);
  const std::string cropped_path = dir.file("crop40.safetensors");
  save_checkpoint(cropped_path, *create_model(cropped.name, cropped.config), cropped);

  std::vector<data::GrayImage> images;
  for (int k = 0; k < 3; ++k) {  // photos larger than a face, so that each member resizes them
    data::GrayImage g{60, 60, std::vector<uint8_t>(60 * 60)};
    for (int i = 0; i < 60 * 60; ++i) g.pixels[i] = static_cast<uint8_t>((i * (5 + 11 * k)) % 253);
    images.push_back(g);
  }
  for (Tta tta : {Tta::None, Tta::TenCrop}) {
    AnalyzerOptions o = crops_options();
    o.tta = tta;
    const auto a = FaceAnalyzer(o).analyze_batch(images);
    o.checkpoint = cropped_path;
    const FaceAnalyzer crop_alone(o);
    CHECK(crop_alone.input_size() == 48);  // it reads 48x48 faces, crops of them
    const auto b = crop_alone.analyze_batch(images);
    o.checkpoint = checkpoint() + "," + cropped_path;
    check_mean_of_members(a, b, FaceAnalyzer(o).analyze_batch(images));
  }
}

TEST_CASE("ensemble manifests: members relative to the manifest, by path or by shipped name; bad ones named") {
  TempDir dir("fer_manifest");
  fs::create_directories(dir.path / "models/pretrained");
  LoadedCheckpoint shipped = load_checkpoint(checkpoint());
  save_checkpoint(dir / "models/pretrained/a.safetensors", *shipped.model, shipped.spec);
  manual_seed(4);
  save_checkpoint(dir / "models/pretrained/b.safetensors", *create_model(shipped.spec.name, shipped.spec.config), shipped.spec);
  std::ofstream(dir / "models/pretrained/duo.json") << R"({"name": "duo", "members": ["a.safetensors", "b.safetensors"]})";
  const std::vector<std::string> members = checkpoint_members(dir / "models/pretrained/duo.json");
  REQUIRE(members.size() == 2);
  CHECK(fs::equivalent(members[1], dir / "models/pretrained/b.safetensors"));
  // A manifest and a plain file together; a bare name is looked up in models/pretrained.
  CHECK(checkpoint_members(dir / "models/pretrained/duo.json," + checkpoint()).size() == 3);
  const char* old = std::getenv("FER_SOURCE_DIR");
  const std::string saved = old ? old : "";
  setenv("FER_SOURCE_DIR", dir.path.c_str(), 1);
  const std::vector<std::string> by_name = checkpoint_members("duo");
  if (saved.empty()) unsetenv("FER_SOURCE_DIR");
  else setenv("FER_SOURCE_DIR", saved.c_str(), 1);
  CHECK(by_name.size() == 2);

  AnalyzerOptions o = crops_options();
  o.checkpoint = dir / "models/pretrained/duo.json";
  const FaceAnalyzer duo(o);
  CHECK(duo.model_name() == "ensemble of 2: fer_vgg_small, fer_vgg_small");

  std::ofstream(dir / "bad.json") << "{\"members\": []}";
  CHECK(throws_naming([&] { checkpoint_members(dir / "bad.json"); }, "bad.json: expected {\"members\""));
  std::ofstream(dir / "gone.json") << "{\"members\": [\"missing.safetensors\"]}";
  CHECK(throws_naming([&] { checkpoint_members(dir / "gone.json"); }, "missing.safetensors does not exist"));
  std::ofstream(dir / "junk.json") << "not json";
  CHECK(throws_naming([&] { checkpoint_members(dir / "junk.json"); }, "junk.json: not JSON"));
}

TEST_CASE("analyzer: a checkpoint's calibration temperature is applied to its probabilities") {
  TempDir dir("fer_calibrated");
  LoadedCheckpoint shipped = load_checkpoint(checkpoint());
  const std::string raw_path = dir.file("raw.safetensors"), hot_path = dir.file("hot.safetensors");
  save_checkpoint(raw_path, *shipped.model, shipped.spec);  // the same weights, no temperature
  save_checkpoint(hot_path, *shipped.model, shipped.spec);
  store_calibration(hot_path, 2.5, "test");
  std::vector<data::GrayImage> images;
  for (int k = 0; k < 2; ++k) {
    data::GrayImage g{48, 48, std::vector<uint8_t>(48 * 48)};
    for (int i = 0; i < 48 * 48; ++i) g.pixels[i] = static_cast<uint8_t>((i * (5 + 11 * k)) % 253);
    images.push_back(g);
  }
  AnalyzerOptions o = crops_options();
  o.checkpoint = raw_path;
  const auto raw = FaceAnalyzer(o).analyze_batch(images);
  o.checkpoint = hot_path;
  const auto hot = FaceAnalyzer(o).analyze_batch(images);
  for (size_t i = 0; i < images.size(); ++i) {
    std::vector<float> expected = raw[i][0].probabilities;
    metrics::apply_temperature(expected, 7, 2.5);
    CHECK(hot[i][0].label == raw[i][0].label);
    CHECK(hot[i][0].confidence < raw[i][0].confidence);
    for (size_t c = 0; c < 7; ++c) CHECK(hot[i][0].probabilities[c] == doctest::Approx(expected[c]).epsilon(1e-5));
  }
}

TEST_CASE("analyzer: concurrent analyze() calls give the serial results") {
  const auto faces = val_faces(2);
  if (faces.empty()) return;
  const FaceAnalyzer analyzer(crops_options());
  std::vector<data::GrayImage> images;
  for (const auto& f : faces) images.push_back(data::read_image(f.first));
  std::vector<std::vector<float>> serial;
  for (const auto& img : images) serial.push_back(analyzer.analyze(img).at(0).probabilities);
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int rep = 0; rep < 3; ++rep)
          for (size_t i = (t + rep) % images.size(), n = 0; n < images.size(); ++n, i = (i + 1) % images.size()) {
            const auto p = analyzer.analyze(images[i]).at(0).probabilities;
            for (size_t c = 0; c < p.size(); ++c) mismatches += std::abs(p[c] - serial[i][c]) > 1e-6f;
          }
      } catch (...) {
        ++errors;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(mismatches == 0);
}

TEST_CASE("analyzer: photos with detection - boxes, largest first, none for a fish") {
  if (missing(kCascade, "Debian package opencv-data")) return;
  if (missing(kLena, "Debian package opencv-doc")) return;
  AnalyzerOptions o;
  o.checkpoint = checkpoint();
  const FaceAnalyzer analyzer(o);
  const std::vector<FacePrediction> lena = analyzer.analyze(data::read_image(kLena));
  REQUIRE(lena.size() == 1);
  // Hand-measured: the face is centred near (302, 295), about 190 px tall.
  CHECK(std::hypot(lena[0].box.x + lena[0].box.width / 2.0 - 302, lena[0].box.y + lena[0].box.height / 2.0 - 295) < 30);
  CHECK(sum_of(lena[0].probabilities) == doctest::Approx(1.0).epsilon(1e-5));
  if (!missing(kFour, "Debian package opencv-doc")) {
    const auto four = analyzer.analyze(data::read_image(kFour));
    CHECK(four.size() == 4);
    for (size_t i = 1; i < four.size(); ++i)
      CHECK(four[i - 1].box.width * four[i - 1].box.height >= four[i].box.width * four[i].box.height);
    // The two smiling women (top right, bottom left tiles) read as happy.
    int happy = 0;
    for (const auto& f : four) happy += f.emotion == "happy" && ((f.box.x > 100) != (f.box.y > 100));
    CHECK(happy == 2);
  }
  if (!missing(kNoFace, "Debian package opencv-doc")) CHECK(analyzer.analyze(data::read_image(kNoFace)).empty());
  // Encoded input: the same result, and a corrupt upload names itself.
  const std::string bytes = read_text(kLena);
  const auto encoded = analyzer.analyze_encoded(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "lena.png");
  REQUIRE(encoded.size() == 1);
  CHECK(encoded[0].probabilities == lena[0].probabilities);
  const std::string junk = "definitely not an image";
  CHECK(throws_naming([&] { analyzer.analyze_encoded(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "upload.jpg"); },
                      "upload.jpg"));
}

TEST_CASE("analyzer: bad options and missing files are named") {
  AnalyzerOptions o = crops_options();
  o.margin = 2;
  CHECK(throws_naming([&] { FaceAnalyzer a(o); }, "margin"));
  o = crops_options();
  o.scale_factor = 0.9f;
  CHECK(throws_naming([&] { FaceAnalyzer a(o); }, "scale_factor"));
  o = crops_options();
  o.checkpoint = "no/such/model.safetensors";
  CHECK(throws_naming([&] { FaceAnalyzer a(o); }, "'no/such/model.safetensors' not found"));
  o = crops_options();
  o.detect = true;
  o.cascade = "/nonexistent/cascade.xml";
  CHECK(throws_naming([&] { FaceAnalyzer a(o); }, "/nonexistent/cascade.xml"));
  o = crops_options();
  const FaceAnalyzer ok(o);
  CHECK(throws_naming([&] { ok.analyze(data::GrayImage{4, 4, {}}); }, "malformed image 4x4"));
}

TEST_CASE("analyzer: the default checkpoint is found from another directory") {
  if (missing(checkpoint(), "the shipped checkpoint")) return;
  const fs::path before = fs::current_path();
  TempDir tmp;
  fs::current_path(tmp.path);
  const char* env = std::getenv("FER_SOURCE_DIR");
  const std::string saved = env ? env : "";
  setenv("FER_SOURCE_DIR", source_dir().c_str(), 1);
  std::string via_env, via_exe;
  try {
    via_env = locate_checkpoint(kDefaultCheckpoint);
    unsetenv("FER_SOURCE_DIR");  // then the executable's ../ (the test binary sits in the build dir)
    via_exe = locate_checkpoint(kDefaultCheckpoint);
  } catch (...) {
  }
  if (env) setenv("FER_SOURCE_DIR", saved.c_str(), 1);
  fs::current_path(before);
  CHECK(fs::equivalent(via_env, checkpoint()));
  CHECK(fs::equivalent(via_exe, checkpoint()));
  CHECK(throws_naming([] { locate_checkpoint("/abs/missing.safetensors"); }, "'/abs/missing.safetensors' does not exist"));
}

TEST_CASE("faces_to_json: fields, class order, rounding") {
  FacePrediction f;
  f.box = {3, 4, 50, 60};
  f.probabilities = {0.1f, 0.0f, 0.05f, 0.7f, 0.05f, 0.0f, 0.1f};
  f.label = 3;
  f.emotion = "happy";
  f.confidence = 0.7f;
  const std::string text = faces_to_json({f, f}, kFerNames);
  const nlohmann::json j = nlohmann::json::parse(text);
  REQUIRE(j.size() == 2);
  CHECK(j[0]["box"] == nlohmann::json({3, 4, 50, 60}));
  CHECK(j[0]["emotion"] == "happy");
  CHECK(j[0]["confidence"].get<double>() == 0.7);  // rounded to 6 decimals: no float noise
  check_face_json(j[1], kFerNames);
  // Keys in class order, as the header documents.
  CHECK(text.find("\"angry\"") < text.find("\"neutral\""));
  CHECK(text.find("\"surprise\"") < text.find("\"neutral\""));
  CHECK(faces_to_json({}, kFerNames) == "[]");
  CHECK(throws_naming([&] { faces_to_json({f}, {"a", "b"}); }, "7 probabilities for 2 class names"));
}

// ---- fer_predict end to end --------------------------------------------------------------------

TEST_CASE("fer_predict: --no-detect on FER2013 crops, JSON lines, CSV, --out, --list, folders") {
  const std::string bin = fer_predict_binary();
  if (bin.empty()) return;
  const auto faces = val_faces(1);
  if (faces.empty()) return;
  TempDir tmp;
  std::vector<std::string> files;
  for (const auto& f : faces) files.push_back(f.first);

  std::vector<std::string> args{"--no-detect", "--no-progress"};
  args.insert(args.end(), files.begin(), files.end());
  const Run json = run_predict(bin, args, tmp);
  INFO("stderr: " << json.err);
  REQUIRE(json.status == 0);
  const auto lines = lines_of(json.out);
  REQUIRE(lines.size() == files.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    CHECK(j.at("file") == files[i]);
    CHECK(j.at("width") == 48);
    REQUIRE(j.at("faces").size() == 1);
    CHECK(j["faces"][0]["box"] == nlohmann::json({0, 0, 48, 48}));
    check_face_json(j["faces"][0], kFerNames);
  }
  CHECK(json.err.find("faces/s") != std::string::npos);  // the summary

  // CSV to a file: a header and one row per face with 8 + 7 columns.
  args = {"--no-detect", "--format", "csv", "--out", tmp / "sub/out.csv"};
  args.insert(args.end(), files.begin(), files.end());
  const Run csv = run_predict(bin, args, tmp);
  REQUIRE(csv.status == 0);
  CHECK(csv.out.empty());
  const auto rows = lines_of(read_text(tmp / "sub/out.csv"));
  REQUIRE(rows.size() == files.size() + 1);
  CHECK(rows[0] == "file,face,x,y,width,height,emotion,confidence,p_angry,p_disgust,p_fear,p_happy,p_sad,"
                   "p_surprise,p_neutral");
  CHECK(!fs::exists(tmp / "sub/out.csv.tmp"));
  for (size_t i = 1; i < rows.size(); ++i) {
    CHECK(std::count(rows[i].begin(), rows[i].end(), ',') == 14);
    CHECK(rows[i].rfind(files[i - 1] + ",0,0,0,48,48,", 0) == 0);
  }

  // --list and a folder (recursive, images only, sorted) give the same predictions as the files.
  {
    std::ofstream list(tmp / "list.txt");
    list << "# FER faces\n\n";
    for (const auto& f : files) list << f << "\n";
  }
  fs::create_directories(tmp / "tree/a/b");
  fs::copy_file(files[0], tmp / "tree/a/b/x.jpg");
  fs::copy_file(files[1], tmp / "tree/a/y.jpg");
  std::ofstream(tmp / "tree/a/notes.txt") << "not an image";
  const Run listed = run_predict(bin, {"--no-detect", "--list", tmp / "list.txt", tmp / "tree"}, tmp);
  INFO("stderr: " << listed.err);
  REQUIRE(listed.status == 0);
  const auto listed_lines = lines_of(listed.out);
  REQUIRE(listed_lines.size() == 2 + files.size());
  CHECK(nlohmann::json::parse(listed_lines[0])["file"] == tmp / "tree/a/b/x.jpg");
  CHECK(nlohmann::json::parse(listed_lines[1])["file"] == tmp / "tree/a/y.jpg");
  same_faces(nlohmann::json::parse(listed_lines[0])["faces"], nlohmann::json::parse(lines[0])["faces"]);
  CHECK(nlohmann::json::parse(listed_lines[2])["file"] == files[0]);
  same_faces(nlohmann::json::parse(listed_lines[2])["faces"], nlohmann::json::parse(lines[0])["faces"]);
}

TEST_CASE("fer_predict: a corrupt image stops the run naming it; --skip-bad counts it") {
  const std::string bin = fer_predict_binary();
  if (bin.empty()) return;
  const auto faces = val_faces(1);
  if (faces.empty()) return;
  TempDir tmp;
  std::ofstream(tmp / "broken.jpg") << "\xFF\xD8 this is not really a JPEG";
  const std::vector<std::string> inputs{faces[0].first, tmp / "broken.jpg", faces[1].first};
  std::vector<std::string> args{"--no-detect"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  const Run strict = run_predict(bin, args, tmp);
  CHECK(strict.status == 2);
  CHECK(strict.err.find(tmp / "broken.jpg") != std::string::npos);
  CHECK(strict.err.find("--skip-bad") != std::string::npos);

  args.push_back("--skip-bad");
  const Run lenient = run_predict(bin, args, tmp);
  INFO("stderr: " << lenient.err);
  CHECK(lenient.status == 0);
  CHECK(lines_of(lenient.out).size() == 2);
  CHECK(lenient.err.find("skipped: image '" + tmp / "broken.jpg") != std::string::npos);
  CHECK(lenient.err.find("2 images (0 without a face, 1 skipped)") != std::string::npos);

  const Run no_input = run_predict(bin, {}, tmp);
  CHECK(no_input.status == 2);
  CHECK(no_input.err.find("no input images") != std::string::npos);
  const Run bad_flag = run_predict(bin, {"--format", "xml", faces[0].first}, tmp);
  CHECK(bad_flag.status == 2);
  CHECK(bad_flag.err.find("--format") != std::string::npos);
}

TEST_CASE("fer_predict: a photo with detection, and --annotate draws the box") {
  const std::string bin = fer_predict_binary();
  if (bin.empty()) return;
  if (missing(kCascade, "Debian package opencv-data")) return;
  if (missing(kLena, "Debian package opencv-doc")) return;
  TempDir tmp;
  std::vector<std::string> args{kLena, "--annotate", tmp / "ann", "--tta", "flip"};
  if (!missing(kNoFace, "Debian package opencv-doc")) args.push_back(kNoFace);
  const Run r = run_predict(bin, args, tmp);
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == args.size() - 4);
  const nlohmann::json j = nlohmann::json::parse(lines[0]);
  CHECK(j["width"] == 512);
  REQUIRE(j["faces"].size() == 1);
  const auto& face = j["faces"][0];
  check_face_json(face, kFerNames);
  const int x = face["box"][0], y = face["box"][1], w = face["box"][2], h = face["box"][3];
  CHECK(std::hypot(x + w / 2.0 - 302, y + h / 2.0 - 295) < 30);
  if (lines.size() > 1) CHECK(nlohmann::json::parse(lines[1])["faces"].empty());

  // The annotated picture: the photo's size, the box's left edge in the emotion's colour.
  const std::string png = tmp / "ann/faceDetection.png";
  REQUIRE(fs::exists(png));
  const std::string bytes = read_text(png);
  const data::RgbImage img = data::decode_image_rgb(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), png);
  CHECK(img.width == 512);
  CHECK(img.height == 512);
  int label = 0;
  for (size_t c = 0; c < kFerNames.size(); ++c)
    if (kFerNames[c] == face["emotion"]) label = static_cast<int>(c);
  const plot::Color expected = plot::palette(label);
  const uint8_t* p = img.pixels.data() + (static_cast<size_t>(y + h / 2) * 512 + x) * 3;
  CHECK(plot::Color{p[0], p[1], p[2]} == expected);
  if (lines.size() > 1) CHECK(fs::exists(tmp / "ann/HappyFish.png"));
}

// ---- Videos ------------------------------------------------------------------------------------

TEST_CASE("fer_predict: a video, sampled, as JSON lines and CSV rows, annotated, and a broken one named") {
  const std::string bin = fer_predict_binary();
  if (bin.empty()) return;
  if (missing(kCascade, "Debian package opencv-data") || missing(kLena, "Debian package opencv-doc")) return;
  TempDir tmp;
  // Twelve frames of the photo at 10 fps.
  const std::string bytes = read_text(kLena);
  const data::RgbImage photo = data::decode_image_rgb(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), kLena);
  const std::string clip = tmp / "clip.mp4";
  {
    data::VideoWriter w(clip, photo.width, photo.height, 10.0);
    for (int k = 0; k < 12; ++k) w.write(photo);
    w.finish();
  }
  Run r = run_predict(bin, {clip, "--every", "4", "--annotate", tmp / "ann", "--smooth", "0.5", "--timeline", tmp / "tl"}, tmp);
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 3);
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    CHECK(j["frame"] == 4 * i);
    CHECK(j["time"].get<double>() == doctest::Approx(0.4 * i));
    REQUIRE(j["faces"].size() == 1);
    check_face_json(j["faces"][0], kFerNames);
    CHECK(j["faces"][0]["track"] == 1);  // one person throughout
  }
  CHECK(r.err.find("3 frames analysed (12 decoded), 3 faces") != std::string::npos);
  CHECK(r.err.find("track 1: 0.00-0.80 s, 3 frames, mostly") != std::string::npos);
  const nlohmann::json tracks = nlohmann::json::parse(read_text(tmp / "tl/clip_tracks.json"));
  REQUIRE(tracks.size() == 1);
  CHECK(tracks[0]["frames"] == 3);
  CHECK(fs::file_size(tmp / "tl/clip_track1.png") > 1000);
  CHECK(r.err.find("frames/s") != std::string::npos);
  // The annotated video: the analysed frames.
  data::VideoReader annotated(tmp / "ann/clip.mp4");
  data::VideoFrame f;
  int frames = 0;
  while (annotated.next(f)) ++frames;
  CHECK(frames == 3);

  // CSV with an image and the video: frame and time columns, one row per face per frame.
  r = run_predict(bin, {kLena, clip, "--fps", "5", "--format", "csv"}, tmp);
  REQUIRE(r.status == 0);
  const auto rows = lines_of(r.out);
  CHECK(rows[0].rfind("file,frame,time,face,track,x,y,width,height,emotion,confidence,p_angry", 0) == 0);
  REQUIRE(rows.size() == 1 + 1 + 6);  // the photo, and 12 frames at 10 fps sampled at 5 per second
  CHECK(rows[1].find(",0,0,0,0,") != std::string::npos);
  CHECK(rows[3].find("clip.mp4,2,0.200,0,1,") != std::string::npos);

  // A damaged video: the error names it; the rows before it are kept in --out.
  const std::string broken = tmp / "broken.mp4";
  std::ofstream(broken, std::ios::binary) << bytes.substr(0, 3000);  // a PNG's head, not a video
  r = run_predict(bin, {kLena, broken, "--out", tmp / "faces.jsonl"}, tmp);
  CHECK(r.status != 0);
  CHECK(r.err.find("broken.mp4") != std::string::npos);
  CHECK(lines_of(read_text(tmp / "faces.jsonl")).size() == 1);
}

// ---- fer_eval: calibration and models side by side ---------------------------------------------

TEST_CASE("fer_eval: --calibrate stores a temperature that later runs apply; --compare tables models") {
  const std::string binary = app_binary("fer_eval");
  const auto faces = val_faces(6);
  if (binary.empty() || faces.empty()) return;
  TempDir tmp("fer_eval_cli");
  for (const auto& [path, cls] : faces) {  // a small val split: ROOT/val/<class>/
    const fs::path dir = tmp.path / "data" / "val" / cls;
    fs::create_directories(dir);
    fs::copy_file(path, dir / fs::path(path).filename());
  }
  LoadedCheckpoint shipped = load_checkpoint(checkpoint());
  const std::string raw = tmp / "raw.safetensors", other = tmp / "other.safetensors";
  save_checkpoint(raw, *shipped.model, shipped.spec);  // the shipped weights without a temperature
  manual_seed(9);
  save_checkpoint(other, *create_model(shipped.spec.name, shipped.spec.config), shipped.spec);

  const std::vector<std::string> data{"--data", tmp / "data", "--split", "val", "--threads", "1"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), data.begin(), data.end());
    return args;
  };
  Run r = run_predict(binary, with({"--checkpoint", raw, "--out", tmp / "eval_raw"}), tmp);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("no temperature in the checkpoint") != std::string::npos);
  r = run_predict(binary, with({"--checkpoint", raw, "--calibrate", "--out", tmp / "eval"}), tmp);
  REQUIRE(r.status == 0);
  const double t = calibration_temperature(load_safetensors(raw).metadata, raw);
  CHECK(t != 1.0);
  CHECK(r.out.find("uncalibrated ->") != std::string::npos);
  CHECK(fs::file_size(tmp / "eval/reliability_diagram.png") > 1000);
  // predictions.csv: one row per face, named by its file.
  const std::vector<std::string> rows = lines_of(read_text(tmp / "eval/predictions.csv"));
  REQUIRE(rows.size() == faces.size() + 1);
  CHECK(rows[0].rfind("index,source,true,predicted,p_angry,", 0) == 0);
  for (size_t i = 1; i < rows.size(); ++i) {
    INFO(rows[i]);
    CHECK(rows[i].find(tmp / "data/val") != std::string::npos);
    CHECK(rows[i].find(".jpg,") != std::string::npos);
  }
  const nlohmann::json report = nlohmann::json::parse(read_text(tmp / "eval/report.json"));
  CHECK(report["calibration"]["temperatures"][0].get<double>() == doctest::Approx(t));
  // The temperature minimises the negative log-likelihood on the split it was fitted on (not the
  // ECE, which may rise on a few dozen faces): the calibrated probabilities of predictions.csv
  // score no worse than the uncalibrated ones (up to the CSV's six digits).
  const double ece = report["calibration"]["ece"].get<double>();
  CHECK((ece >= 0.0 && ece <= 1.0));
  CHECK(mean_nll(tmp / "eval/predictions.csv") <= mean_nll(tmp / "eval_raw/predictions.csv") + 1e-4);
  // The stored temperature is what the next run (and every app) applies.
  r = run_predict(binary, with({"--checkpoint", raw}), tmp);
  CHECK(r.out.find("uncalibrated ->") != std::string::npos);
  CHECK(run_predict(binary, with({"--checkpoint", raw + "," + other, "--calibrate"}), tmp).status != 0);

  r = run_predict(binary, with({"--checkpoint", raw + "," + other, "--compare", "--out", tmp / "cmp"}), tmp);
  REQUIRE(r.status == 0);
  const nlohmann::json table = nlohmann::json::parse(read_text(tmp / "cmp/compare.json"));
  REQUIRE(table.size() == 2);
  CHECK(table[0]["accuracy"].get<double>() > table[1]["accuracy"].get<double>());  // trained vs random
  CHECK(table[0]["parameters"].get<int64_t>() == shipped.model->parameter_count());
  CHECK(table[0]["f1"].size() == 7);
  CHECK(lines_of(read_text(tmp / "cmp/compare.md")).size() == 4);  // header, rule, 2 models
  CHECK(fs::exists(tmp / "cmp/compare.png"));
  CHECK(run_predict(binary, with({"--checkpoint", raw, "--compare"}), tmp).status != 0);
}
