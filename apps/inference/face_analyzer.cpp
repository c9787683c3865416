// FaceAnalyzer: detection -> crops -> preprocessing -> one batched forward. See face_analyzer.h.
#include "apps/inference/face_analyzer.h"

#include "data/face_finder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/training/checkpoint.h"
#include "data/face_detect.h"
#include "data/face_finder.h"
#include "data/preprocess.h"
#include "engine/autograd.h"
#include "engine/calibration.h"
#include "engine/error.h"

namespace fer {

namespace fs = std::filesystem;

namespace {

// The side of the faces a model reads: its input, or the 48 pixels of a FER2013 face when it reads
// crops of it (predict_batch takes them).
int64_t face_side(const ModelSpec& spec) {
  return spec.preprocess.crop > 0 ? data::kFaceSize : spec.config.input_size;
}

// Whether two models take the same input tensors: the same face side and pixel preprocessing. A
// crop is not part of it: predict_batch takes each model's own from the same faces.
bool same_input(const ModelSpec& a, const ModelSpec& b) {
  data::PreprocessOptions pa = a.preprocess, pb = b.preprocess;
  pa.crop = pb.crop = 0;
  return face_side(a) == face_side(b) && pa == pb;
}

// One face of one image: the image and the face's box in it.
using FaceRef = std::pair<const data::GrayImage*, data::Rect>;

struct Member {
  std::shared_ptr<Module> model;
  double temperature = 1.0;  // its calibration (1: none)
  ModelSpec spec;
};

}  // namespace

struct FaceAnalyzer::Impl {
  AnalyzerOptions options;
  std::string checkpoint_path;  // the files loaded, comma-separated
  std::vector<Member> members;  // one per checkpoint: an ensemble when several
  std::optional<data::FaceFinder> finder;
  mutable std::mutex model_mutex;  // Module::forward is not re-entrant

  // The first member's spec: its classes are every member's, its reading the analyzer's input size.
  const ModelSpec& first() const { return members.front().spec; }

  std::vector<data::Rect> faces_of(const data::GrayImage& image) const {
    if (!options.detect) return {data::Rect{0, 0, image.width, image.height}};
    return finder->find(image);
  }

  // The input of one face as `reader` reads it: crop with margin (clamped), resize, preprocess.
  void face_input(const ModelSpec& reader, const data::GrayImage& image, const data::Rect& r, float* out) const {
    const int S = static_cast<int>(face_side(reader));
    data::GrayImage crop;
    if (!options.detect) {
      crop = image;
    } else {
      const double mx = options.margin * r.width, my = options.margin * r.height;
      const int x0 = std::max(0, static_cast<int>(std::floor(r.x - mx)));
      const int y0 = std::max(0, static_cast<int>(std::floor(r.y - my)));
      const int x1 = std::min(image.width, static_cast<int>(std::ceil(r.x + r.width + mx)));
      const int y1 = std::min(image.height, static_cast<int>(std::ceil(r.y + r.height + my)));
      FER_CHECK(x1 > x0 && y1 > y0, "face box ", r.x, ",", r.y, " ", r.width, "x", r.height,
                " lies outside the ", image.width, "x", image.height, " image");
      crop.width = x1 - x0;
      crop.height = y1 - y0;
      crop.pixels.resize(static_cast<size_t>(crop.width) * crop.height);
      for (int y = y0; y < y1; ++y)
        std::copy_n(image.pixels.data() + static_cast<size_t>(y) * image.width + x0, crop.width,
                    crop.pixels.data() + static_cast<size_t>(y - y0) * crop.width);
    }
    const data::GrayImage face = data::resize_gray(crop, S, S);
    data::to_unit_float(face.pixels.data(), out, face.pixels.size(), reader.preprocess);
    data::standardize(out, face.pixels.size(), reader.preprocess);
  }

  // The faces as `reader` reads them: a tensor [n, 1, S, S] on the analyzer's device.
  Tensor inputs(const ModelSpec& reader, const FaceRef* faces, int64_t n) const {
    const int64_t S = face_side(reader);
    std::vector<float> values(static_cast<size_t>(n * S * S));
    for (int64_t k = 0; k < n; ++k) face_input(reader, *faces[k].first, faces[k].second, values.data() + k * S * S);
    return Tensor::from_vector({n, 1, S, S}, values).to(options.device);
  }

  // Probabilities [n, C] of n faces: the mean of the members' calibrated probabilities, each member
  // reading the faces its own way (the input tensors made once for members that read alike).
  std::vector<float> classify(const FaceRef* faces, int64_t n) const {
    NoGradGuard no_grad;  // grad mode is per thread: this thread's forward records nothing
    std::lock_guard<std::mutex> lock(model_mutex);
    std::vector<float> mean;
    Tensor x;
    const ModelSpec* x_reader = nullptr;
    for (const Member& member : members) {
      if (!x_reader || !same_input(*x_reader, member.spec)) {
        x = inputs(member.spec, faces, n);
        x_reader = &member.spec;
      }
      std::vector<float> p = predict_batch(*member.model, x, options.tta, member.spec.preprocess.crop).to_vector();
      metrics::apply_temperature(p, static_cast<int64_t>(p.size()) / std::max<int64_t>(n, 1), member.temperature);
      if (mean.empty()) mean.assign(p.size(), 0.0f);
      FER_CHECK(p.size() == mean.size(), "checkpoint '", checkpoint_path, "': the ensemble's members "
                "give different numbers of outputs (", p.size(), " and ", mean.size(), ")");
      for (size_t i = 0; i < p.size(); ++i) mean[i] += p[i] / static_cast<float>(members.size());
    }
    return mean;
  }
};

FaceAnalyzer::FaceAnalyzer(const AnalyzerOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  FER_CHECK(std::isfinite(options.margin) && options.margin >= 0 && options.margin <= 1,
            "face analyzer: margin must be in [0, 1], got ", options.margin);
  FER_CHECK(options.min_face >= 0, "face analyzer: min_face must be >= 0, got ", options.min_face);
  FER_CHECK(std::isfinite(options.scale_factor) && options.scale_factor > 1 && options.scale_factor <= 4,
            "face analyzer: scale_factor must be in (1, 4], got ", options.scale_factor);
  FER_CHECK(options.min_neighbors >= 0, "face analyzer: min_neighbors must be >= 0, got ",
            options.min_neighbors);
  FER_CHECK(options.max_side == 0 || options.max_side >= 64,
            "face analyzer: max_side must be 0 (no limit) or >= 64, got ", options.max_side);

  // Several comma-separated checkpoints make an ensemble: the faces go through each member and
  // their probabilities are averaged (as fer_eval --checkpoint a,b). Each member reads the faces
  // its own way (input size, crop, preprocessing); all must name the same classes.
  for (const std::string& path : checkpoint_members(options.checkpoint)) {
    LoadedCheckpoint ck = load_checkpoint(path, options.device);
    ck.model->freeze_for_inference();  // eval mode, and the kernels' transforms kept between faces
    FER_CHECK(ck.spec.config.in_channels == 1, "checkpoint '", path, "': the model takes ",
              ck.spec.config.in_channels, "-channel input; the face analyzer feeds grayscale faces");
    FER_CHECK(ck.spec.config.input_size >= 8 && ck.spec.config.input_size <= 1024, "checkpoint '", path,
              "': implausible input size ", ck.spec.config.input_size);
    FER_CHECK(!ck.spec.class_names.empty(), "checkpoint '", path, "': no class names");
    if (!m.members.empty())
      FER_CHECK(ck.spec.class_names == m.first().class_names, "ensemble: checkpoint '", path, "' (",
                ck.spec.class_names.size(), " classes) does not name the classes of '", m.checkpoint_path, "' (",
                m.first().class_names.size(), " classes, in the same order)");
    m.checkpoint_path += (m.checkpoint_path.empty() ? "" : ",") + path;
    const double temperature = calibration_temperature(ck.file.metadata, path);
    m.members.push_back(Member{ck.model, temperature, std::move(ck.spec)});
  }

  if (options.detect) {
    data::FaceFinderOptions f;
    f.detect.scale_factor = options.scale_factor;
    f.detect.min_neighbors = options.min_neighbors;
    f.detect.min_size = options.min_face;
    f.detect.max_side = options.max_side;
    f.merge = options.merge_duplicates;
    if (options.profile) {
      f.profile_cascade = data::default_profile_cascade_path();
      FER_CHECK(!f.profile_cascade.empty(), "face analyzer: the profile-face cascade "
                "(haarcascade_profileface.xml) is not beside ", data::default_cascade_path(),
                ": install Debian's opencv-data");
    }
    m.finder.emplace(options.cascade.empty() ? data::default_cascade_path() : options.cascade, f);
  }
}

FaceAnalyzer::~FaceAnalyzer() = default;

const std::vector<std::string>& FaceAnalyzer::class_names() const { return impl_->first().class_names; }
const std::string& FaceAnalyzer::checkpoint_path() const { return impl_->checkpoint_path; }
std::string FaceAnalyzer::model_name() const {
  const Impl& m = *impl_;
  if (m.members.size() == 1) return m.first().name;
  std::string names;
  for (const Member& member : m.members) names += (names.empty() ? "" : ", ") + member.spec.name;
  return "ensemble of " + std::to_string(m.members.size()) + ": " + names;
}

int FaceAnalyzer::input_size() const { return static_cast<int>(face_side(impl_->first())); }

std::vector<std::vector<FacePrediction>> FaceAnalyzer::analyze_batch(
    const std::vector<data::GrayImage>& images) const {
  const Impl& m = *impl_;
  for (const data::GrayImage& img : images)
    FER_CHECK(img.width > 0 && img.height > 0 &&
                  img.pixels.size() == static_cast<size_t>(img.width) * img.height,
              "face analyzer: malformed image ", img.width, "x", img.height);

  // Every face of every image, in order: (image index, box).
  std::vector<std::pair<size_t, data::Rect>> faces;
  for (size_t i = 0; i < images.size(); ++i)
    for (const data::Rect& r : m.faces_of(images[i])) faces.emplace_back(i, r);

  std::vector<std::vector<FacePrediction>> out(images.size());
  std::vector<FaceRef> refs;
  for (const auto& [image_index, r] : faces) refs.emplace_back(&images[image_index], r);
  const size_t C = m.first().class_names.size();
  for (size_t begin = 0; begin < faces.size(); begin += kFacesPerForward) {
    const size_t n = std::min<size_t>(kFacesPerForward, faces.size() - begin);
    const std::vector<float> probs = m.classify(refs.data() + begin, static_cast<int64_t>(n));
    FER_CHECK(probs.size() == n * C, "checkpoint '", m.checkpoint_path, "': the model gives ",
              probs.size() / std::max<size_t>(n, 1), " outputs per face for ", C, " class names");
    for (size_t k = 0; k < n; ++k) {
      const auto& [image_index, r] = faces[begin + k];
      FacePrediction p;
      p.box = FaceBox{r.x, r.y, r.width, r.height};
      p.probabilities.assign(probs.begin() + static_cast<std::ptrdiff_t>(k * C),
                             probs.begin() + static_cast<std::ptrdiff_t>((k + 1) * C));
      p.label = static_cast<int>(std::max_element(p.probabilities.begin(), p.probabilities.end()) -
                                 p.probabilities.begin());
      p.emotion = m.first().class_names[p.label];
      p.confidence = p.probabilities[p.label];
      out[image_index].push_back(std::move(p));
    }
  }
  return out;
}

std::vector<FacePrediction> FaceAnalyzer::analyze(const data::GrayImage& image) const {
  std::vector<data::GrayImage> one;
  one.push_back(image);
  return std::move(analyze_batch(one).front());
}

std::vector<FacePrediction> FaceAnalyzer::analyze_encoded(const uint8_t* bytes, size_t size,
                                                          const std::string& name,
                                                          const data::ImageLimits& limits) const {
  return analyze(data::decode_image(bytes, size, name, limits));
}

std::string faces_to_json(const std::vector<FacePrediction>& faces,
                          const std::vector<std::string>& class_names, const std::vector<int>& tracks) {
  FER_CHECK(tracks.empty() || tracks.size() == faces.size(), "faces_to_json: ", tracks.size(),
            " track ids for ", faces.size(), " faces");
  auto rounded = [](float p) { return std::round(static_cast<double>(p) * 1e6) / 1e6; };
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i = 0; i < faces.size(); ++i) {
    const FacePrediction& f = faces[i];
    FER_CHECK(f.probabilities.size() == class_names.size(), "faces_to_json: ", f.probabilities.size(),
              " probabilities for ", class_names.size(), " class names");
    nlohmann::ordered_json emotions = nlohmann::ordered_json::object();
    for (size_t c = 0; c < class_names.size(); ++c) emotions[class_names[c]] = rounded(f.probabilities[c]);
    list.push_back({{"box", {f.box.x, f.box.y, f.box.width, f.box.height}},
                    {"emotion", f.emotion},
                    {"confidence", rounded(f.confidence)},
                    {"emotions", std::move(emotions)}});
    if (!tracks.empty()) list.back()["track"] = tracks[i];
  }
  return list.dump();
}

}  // namespace fer
