// FaceAnalyzer: the emotions of the faces in an arbitrary photo, as fer_predict and fer_serve
// report them (the same fields as the `fer` Python package's detect_emotions()).
//
//   photo (any size, colour or gray) -> grayscale -> Haar-cascade face detection (data/face_detect.h)
//   -> each face cropped with a margin -> resized to the model's input -> the checkpoint's
//   preprocessing (histogram equalisation...) -> the model -> softmax probabilities.
//
// With detect = false the whole image is taken as one face (FER2013-style crops).
// analyze() may be called from several threads at once (fer_serve does): detection runs
// concurrently, the model forward is serialised inside.
//
// The crop of a detected box (x, y, w, h) is [x - margin*w, x + w + margin*w) x
// [y - margin*h, y + h + margin*h), clamped to the image, resized with data::resize_gray (area
// averaging when shrinking) to the model's input_size (48x48, the whole FER2013 face, for a model
// trained on crops of it). All faces of one call go through the model together (in batches of at
// most kFacesPerForward), with the checkpoint's test-time augmentation option (predict_batch in
// apps/training/evaluate.h). Several checkpoints are an ensemble: each member reads the faces its
// own way (input size, crop, preprocessing), and their calibrated probabilities are averaged.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apps/training/evaluate.h"
#include "data/image.h"
#include "engine/device.h"

namespace fer {

struct FaceBox {
  int x = 0, y = 0, width = 0, height = 0;  // pixels of the original image, (x, y) top-left
};

struct FacePrediction {
  FaceBox box;
  int label = 0;                     // index of the most probable class
  std::string emotion;               // its name ("happy")
  float confidence = 0;              // its probability
  std::vector<float> probabilities;  // one per class, in class_names() order, sum 1
};

// The checkpoint fer_predict and fer_serve use when none is given.
constexpr const char* kDefaultCheckpoint = "models/pretrained/fer_vgg_small.safetensors";

// At most this many faces per model forward (a crowd photo is split into several batches).
constexpr int kFacesPerForward = 64;

struct AnalyzerOptions {
  // Also searched relative to the executable's source tree. Several, comma-separated, are an
  // ensemble: the mean of their probabilities.
  std::string checkpoint = kDefaultCheckpoint;
  Device device = Device::CPU;
  bool detect = true;            // false: the image is one face crop
  float margin = 0.1f;           // crop margin around each detected box, fraction of its side
  int min_face = 24;             // smallest face searched, pixels
  float scale_factor = 1.1f;     // pyramid step of the detector
  int min_neighbors = 4;         // detections needed to keep a grouped box (more than this many)
  Tta tta = Tta::None;
  std::string cascade;           // Haar cascade XML; empty = the opencv-data default path
  int max_side = 2048;           // detection runs on a copy shrunk to this side (0 = never)
  bool merge_duplicates = true;  // one box per face (data/face_finder.h)
  bool profile = false;          // also the profile-face cascade, both sides (2-3x slower)
};

class FaceAnalyzer {
 public:
  // Loads the checkpoint (located with locate_checkpoint) and, when options.detect, the cascade.
  // Throws a fer::Error naming the file or the option at fault.
  explicit FaceAnalyzer(const AnalyzerOptions& options);
  ~FaceAnalyzer();

  const std::vector<std::string>& class_names() const;
  const std::string& checkpoint_path() const;  // the file(s) actually loaded, comma-separated
  // The architecture ("fer_vgg_small"); an ensemble's is "ensemble of N: a, b".
  std::string model_name() const;
  // The side of the faces the (first) model reads: 48 for FER2013 models, also those that read
  // 40x40 crops of the 48x48 face.
  int input_size() const;

  // Every face of the image, largest first; an image with no face gives an empty list.
  std::vector<FacePrediction> analyze(const data::GrayImage& image) const;
  // Several images at once: their faces share model batches (what fer_predict's batch mode
  // uses; faster than one analyze() per image when each image has few faces). Result i belongs
  // to images[i].
  std::vector<std::vector<FacePrediction>> analyze_batch(const std::vector<data::GrayImage>& images) const;
  // Decodes (bounded by `limits`, error naming `name`) and analyses.
  std::vector<FacePrediction> analyze_encoded(const uint8_t* bytes, size_t size,
                                              const std::string& name,
                                              const data::ImageLimits& limits = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The JSON of one image's faces, as both apps print it:
//   [{"box": [x, y, w, h], "emotion": "happy", "confidence": 0.93,
//     "emotions": {"angry": 0.01, ..., "neutral": 0.02}}, ...]
// Probabilities are rounded to 6 decimals. With `tracks` (one per face, videos: face_tracker.h)
// each face also carries its "track" id.
std::string faces_to_json(const std::vector<FacePrediction>& faces,
                          const std::vector<std::string>& class_names, const std::vector<int>& tracks = {});

}  // namespace fer
