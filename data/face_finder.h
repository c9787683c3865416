// FaceFinder: the faces of a photo, as the apps search for them. One or more Haar cascades
// (data/face_detect.h) and the clean-up their raw output needs:
//
//   frontal   the frontal-face cascade, grouped as OpenCV groups (group_rectangles), keeping each
//             box's support (the number of raw hits it averages);
//   profile   optionally a profile-face cascade (opencv-data's haarcascade_profileface.xml finds
//             faces turned to one side), run on the photo and on its mirror image so that both
//             sides are found; its boxes join the frontal ones;
//   merge     boxes of one face found twice - by two cascades, or by one at two neighbouring
//             scales that grouping left apart - are merged: candidates are taken by decreasing
//             support, and one is dropped when it overlaps a kept box by IoU >= merge_iou; then
//             a box with >= merge_cover of its area inside a larger kept box is dropped too (a
//             part of that face, an eye or a mouth, whatever its support).
//
// Boxes come out largest first, then top to bottom, left to right.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/face_detect.h"

namespace fer::data {

struct FaceFinderOptions {
  DetectOptions detect;        // pyramid, grouping and size bounds, shared by every cascade
  std::string profile_cascade; // empty: frontal faces only
  bool merge = true;           // merge duplicate boxes (off: the frontal cascade's groups as is)
  double merge_iou = 0.3;
  double merge_cover = 0.6;
};

class FaceFinder {
 public:
  // Loads the cascades (errors name the file).
  FaceFinder(const std::string& frontal_cascade, const FaceFinderOptions& options);
  std::vector<Rect> find(const GrayImage& image) const;
  const FaceFinderOptions& options() const { return options_; }

 private:
  FaceFinderOptions options_;
  HaarCascade frontal_;
  std::unique_ptr<HaarCascade> profile_;
};

struct SupportedRect {
  Rect box;
  int support = 0;
};

// The merge step on its own (see above), for tests and other detectors.
std::vector<Rect> merge_duplicate_faces(std::vector<SupportedRect> candidates, double iou_threshold,
                                        double cover_threshold);

// The opencv-data profile-face cascade beside the frontal one, or "" when it is not installed.
std::string default_profile_cascade_path();

}  // namespace fer::data
