#include "data/face_scenes.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "engine/error.h"
#include "engine/random.h"

namespace fer::data {

namespace {

bool overlaps(const Rect& a, const Rect& b, double grow) {
  const int ga = static_cast<int>(a.width * grow), gb = static_cast<int>(b.width * grow);
  return a.x - ga < b.x + b.width + gb && b.x - gb < a.x + a.width + ga &&
         a.y - ga < b.y + b.height + gb && b.y - gb < a.y + a.height + ga;
}

// Blends `face` (already side x side) into `scene` at `box` with a linear ramp of `ramp` pixels.
void paste(GrayImage& scene, const GrayImage& face, const Rect& box, double ramp) {
  for (int y = 0; y < box.height; ++y)
    for (int x = 0; x < box.width; ++x) {
      const double edge = std::min({x + 0.5, y + 0.5, box.width - x - 0.5, box.height - y - 0.5});
      const double alpha = ramp <= 0 ? 1.0 : std::min(1.0, edge / ramp);
      uint8_t& dst = scene.pixels[static_cast<size_t>(box.y + y) * scene.width + box.x + x];
      const double v = alpha * face.pixels[static_cast<size_t>(y) * face.width + x] + (1 - alpha) * dst;
      dst = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
    }
}

}  // namespace

FaceScene compose_face_scene(const GrayImage& background, const std::vector<GrayImage>& faces,
                             size_t first_face, uint64_t seed, const FaceSceneOptions& o) {
  FER_CHECK(!faces.empty(), "face scene: no face images to paste");
  FER_CHECK(background.width > 0 && background.height > 0, "face scene: empty background");
  FER_CHECK(o.width >= 64 && o.min_side >= 8 && o.min_side <= o.max_side && o.min_faces >= 0 &&
                o.min_faces <= o.max_faces,
            "face scene: bad options (width ", o.width, ", sides ", o.min_side, "..", o.max_side,
            ", faces ", o.min_faces, "..", o.max_faces, ")");
  const int height = std::max(64, static_cast<int>(std::lround(
                                      static_cast<double>(o.width) * background.height / background.width)));
  FaceScene scene{resize_gray(background, o.width, height), {}};

  Generator rng(seed);
  const int wanted = o.min_faces + static_cast<int>(rng.below(static_cast<uint64_t>(o.max_faces - o.min_faces + 1)));
  const int max_side = std::min({o.max_side, o.width, height});
  const double log_lo = std::log(static_cast<double>(std::min(o.min_side, max_side)));
  const double log_hi = std::log(static_cast<double>(max_side));
  for (int attempt = 0; attempt < 200 && static_cast<int>(scene.faces.size()) < wanted; ++attempt) {
    const int side = static_cast<int>(std::lround(std::exp(log_lo + (log_hi - log_lo) * rng.uniform())));
    const Rect box{static_cast<int>(rng.below(static_cast<uint64_t>(o.width - side + 1))),
                   static_cast<int>(rng.below(static_cast<uint64_t>(height - side + 1))), side, side};
    if (std::any_of(scene.faces.begin(), scene.faces.end(),
                    [&](const Rect& other) { return overlaps(box, other, 0.25); }))
      continue;
    const GrayImage& face = faces[(first_face + scene.faces.size()) % faces.size()];
    FER_CHECK(face.width > 0 && face.height > 0, "face scene: empty face image");
    paste(scene.image, resize_gray(face, side, side), box, o.feather * side);
    scene.faces.push_back(box);
  }
  return scene;
}

int64_t box_intersection(const Rect& a, const Rect& b) {
  const int64_t iw = std::max(0, std::min(a.x + a.width, b.x + b.width) - std::max(a.x, b.x));
  const int64_t ih = std::max(0, std::min(a.y + a.height, b.y + b.height) - std::max(a.y, b.y));
  return iw * ih;
}

double box_iou(const Rect& a, const Rect& b) {
  const int64_t inter = box_intersection(a, b);
  const int64_t uni = int64_t{a.width} * a.height + int64_t{b.width} * b.height - inter;
  return uni <= 0 ? 0.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

DetectionCounts& DetectionCounts::operator+=(const DetectionCounts& o) {
  true_positives += o.true_positives;
  false_positives += o.false_positives;
  misses += o.misses;
  return *this;
}

double DetectionCounts::precision() const {
  const int64_t n = true_positives + false_positives;
  return n == 0 ? 1.0 : static_cast<double>(true_positives) / static_cast<double>(n);
}

double DetectionCounts::recall() const {
  const int64_t n = true_positives + misses;
  return n == 0 ? 1.0 : static_cast<double>(true_positives) / static_cast<double>(n);
}

DetectionCounts match_detections(const std::vector<Rect>& detected, const std::vector<Rect>& truth,
                                 double iou_threshold, std::vector<bool>* found) {
  std::vector<std::tuple<double, size_t, size_t>> pairs;  // (IoU, detection, truth)
  for (size_t d = 0; d < detected.size(); ++d)
    for (size_t t = 0; t < truth.size(); ++t) {
      const double iou = box_iou(detected[d], truth[t]);
      if (iou >= iou_threshold) pairs.emplace_back(iou, d, t);
    }
  std::sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  std::vector<bool> used_d(detected.size()), used_t(truth.size());
  DetectionCounts c;
  for (const auto& [iou, d, t] : pairs) {
    if (used_d[d] || used_t[t]) continue;
    used_d[d] = used_t[t] = true;
    ++c.true_positives;
  }
  c.false_positives = static_cast<int64_t>(detected.size()) - c.true_positives;
  c.misses = static_cast<int64_t>(truth.size()) - c.true_positives;
  if (found) *found = used_t;
  return c;
}

}  // namespace fer::data
