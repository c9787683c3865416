// Photos with several faces whose boxes are known, for measuring a face detector.
//
// Debian's packages hold few real photos of groups, and nobody here can draw boxes by hand on
// hundreds of faces, so the labelled set is generated with its truth known: real face crops
// (FER2013's, which are cut from the chin to above the eyebrows, about where a person draws a face
// box) are pasted at random sizes and places into real photos without faces (opencv-doc's
// buildings, fruit, paintings, boards...), as a crowd photo would hold them:
//
//   the background is resized to `width` pixels wide (keeping its aspect ratio);
//   each face's side is drawn log-uniformly from [min_side, max_side] (so small faces are as
//   common as large ones, per octave) and its place uniformly, rejecting places that overlap an
//   earlier face (boxes grown by a quarter of their side), up to max_faces;
//   the crop is resized to side x side and blended in with a border ramp `feather` * side wide
//   (alpha rising linearly from the box edge), so that no hard rectangle edge gives it away;
//   the truth is the pasted box.
//
// Everything is reproducible from the seed. match_detections scores a detector's boxes against
// the truth the usual way (PASCAL VOC's): detections and true boxes are paired greedily by
// decreasing IoU, a pair counts when IoU >= threshold, each true box at most once; unpaired
// detections are false positives, unpaired true boxes misses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/face_detect.h"
#include "data/image.h"

namespace fer::data {

struct FaceSceneOptions {
  int width = 1280;           // of the scene, pixels (the height follows the background's shape)
  int min_faces = 3, max_faces = 8;
  int min_side = 24, max_side = 240;  // face box side range, pixels
  double feather = 0.12;      // blend ramp width, fraction of the face side
};

struct FaceScene {
  GrayImage image;
  std::vector<Rect> faces;  // the truth, in the order pasted
};

// A scene from `background` and faces taken in turn from `faces` starting at `first_face`
// (wrapping around). Throws when there are no faces or a face image is empty.
FaceScene compose_face_scene(const GrayImage& background, const std::vector<GrayImage>& faces,
                             size_t first_face, uint64_t seed, const FaceSceneOptions& options = {});

// Area of the intersection of two boxes (0 when they do not meet).
int64_t box_intersection(const Rect& a, const Rect& b);
// Intersection over union of two boxes (0 when either is empty).
double box_iou(const Rect& a, const Rect& b);

struct DetectionCounts {
  int64_t true_positives = 0, false_positives = 0, misses = 0;
  DetectionCounts& operator+=(const DetectionCounts& o);
  double precision() const;  // TP / (TP + FP); 1 when nothing was detected
  double recall() const;     // TP / (TP + misses); 1 when there was nothing to find
};

// With `found`, found[t] says whether truth[t] was paired.
DetectionCounts match_detections(const std::vector<Rect>& detected, const std::vector<Rect>& truth,
                                 double iou_threshold = 0.5, std::vector<bool>* found = nullptr);

}  // namespace fer::data
