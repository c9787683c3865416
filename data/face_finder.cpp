#include "data/face_finder.h"

#include <algorithm>
#include <filesystem>

#include "data/face_scenes.h"
#include "engine/error.h"

namespace fer::data {

namespace {

GrayImage mirrored(const GrayImage& image) {
  GrayImage out = image;
  for (int y = 0; y < image.height; ++y) {
    uint8_t* row = out.pixels.data() + static_cast<size_t>(y) * image.width;
    std::reverse(row, row + image.width);
  }
  return out;
}

// The grouped boxes of one cascade with their support (as HaarCascade::detect, plus the counts).
void grouped(const HaarCascade& cascade, const GrayImage& image, const DetectOptions& o, bool mirror,
             std::vector<SupportedRect>& out) {
  std::vector<int> support;
  const std::vector<Rect> boxes =
      group_rectangles(cascade.detect_raw(image, o), std::max(o.min_neighbors, 1), o.group_eps, &support);
  for (size_t i = 0; i < boxes.size(); ++i) {
    Rect r = boxes[i];
    if (mirror) r.x = image.width - r.x - r.width;
    out.push_back({r, support[i]});
  }
}

bool largest_first(const Rect& a, const Rect& b) {
  const int64_t area_a = int64_t{a.width} * a.height, area_b = int64_t{b.width} * b.height;
  if (area_a != area_b) return area_a > area_b;
  return a.y != b.y ? a.y < b.y : a.x < b.x;
}

}  // namespace

std::vector<Rect> merge_duplicate_faces(std::vector<SupportedRect> candidates, double iou_threshold,
                                        double cover_threshold) {
  std::stable_sort(candidates.begin(), candidates.end(), [](const SupportedRect& a, const SupportedRect& b) {
    return a.support != b.support ? a.support > b.support : largest_first(a.box, b.box);
  });
  // 1. The same face twice: of boxes overlapping by IoU >= iou_threshold the best supported stays.
  std::vector<Rect> kept;
  for (const SupportedRect& c : candidates)
    if (std::none_of(kept.begin(), kept.end(), [&](const Rect& k) { return box_iou(c.box, k) >= iou_threshold; }))
      kept.push_back(c.box);
  // 2. A box mostly inside a larger one is a part of that face (an eye, a mouth), whatever its support.
  auto inside_larger = [&](const Rect& r) {
    return std::any_of(kept.begin(), kept.end(), [&](const Rect& k) {
      const int64_t area_r = int64_t{r.width} * r.height, area_k = int64_t{k.width} * k.height;
      if (area_k <= area_r) return false;
      return static_cast<double>(box_intersection(r, k)) >= cover_threshold * static_cast<double>(area_r);
    });
  };
  std::vector<Rect> out;
  for (const Rect& r : kept)
    if (!inside_larger(r)) out.push_back(r);
  std::sort(out.begin(), out.end(), largest_first);
  return out;
}

FaceFinder::FaceFinder(const std::string& frontal_cascade, const FaceFinderOptions& options)
    : options_(options), frontal_(HaarCascade::load(frontal_cascade)) {
  FER_CHECK(options.merge_iou > 0 && options.merge_iou <= 1 && options.merge_cover > 0 &&
                options.merge_cover <= 1,
            "face finder: merge thresholds must be in (0, 1], got IoU ", options.merge_iou, ", cover ",
            options.merge_cover);
  if (!options.profile_cascade.empty())
    profile_ = std::make_unique<HaarCascade>(HaarCascade::load(options.profile_cascade));
}

std::vector<Rect> FaceFinder::find(const GrayImage& image) const {
  const DetectOptions& o = options_.detect;
  if (!options_.merge && !profile_) return frontal_.detect(image, o);
  if (o.min_neighbors == 0) {  // no grouping asked for: every raw hit of every cascade
    std::vector<Rect> raw = frontal_.detect_raw(image, o);
    if (profile_) {
      for (const Rect& r : profile_->detect_raw(image, o)) raw.push_back(r);
      for (Rect r : profile_->detect_raw(mirrored(image), o)) {
        r.x = image.width - r.x - r.width;
        raw.push_back(r);
      }
    }
    std::stable_sort(raw.begin(), raw.end(), largest_first);
    return raw;
  }
  std::vector<SupportedRect> candidates;
  grouped(frontal_, image, o, false, candidates);
  if (profile_) {
    grouped(*profile_, image, o, false, candidates);
    grouped(*profile_, mirrored(image), o, true, candidates);
  }
  if (!options_.merge) {
    std::vector<Rect> all;
    for (const SupportedRect& c : candidates) all.push_back(c.box);
    std::sort(all.begin(), all.end(), largest_first);
    return all;
  }
  return merge_duplicate_faces(std::move(candidates), options_.merge_iou, options_.merge_cover);
}

std::string default_profile_cascade_path() {
  const std::filesystem::path frontal = default_cascade_path();
  const std::filesystem::path profile = frontal.parent_path() / "haarcascade_profileface.xml";
  return std::filesystem::is_regular_file(profile) ? profile.string() : "";
}

}  // namespace fer::data
