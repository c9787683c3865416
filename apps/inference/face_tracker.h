// Faces over time: a track per person across a video's frames, so that the rows of one face keep
// one identity, its probabilities can be smoothed, and its emotions summarised and charted.
//
// Association, frame by frame (as SORT does, with a greedy match instead of the Hungarian one):
// each live track predicts its box at the frame's time from its last two boxes (constant
// velocity); detections and predictions are paired greedily by overlap (IoU, highest first,
// at least `min_iou`), then the rest by centre distance (under `max_centre_shift` of the box's
// side); unpaired detections start new tracks; a track unseen for `max_gap_s` seconds ends.
//
// Smoothing (smoothing > 0): each track's probabilities are an exponential moving average,
//   p_t = s p_(t-1) + (1 - s) p_observed,
// and the face's emotion and confidence are taken from it (a flicker of one frame no longer
// flips the label).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "apps/inference/face_analyzer.h"

namespace fer {

struct TrackerOptions {
  float min_iou = 0.3f;
  float max_centre_shift = 0.5f;  // fraction of the box side
  double max_gap_s = 1.0;
  float smoothing = 0.0f;         // in [0, 1); 0 = off
};

// What a track did over the video.
struct TrackSummary {
  int id = 0;
  double first_s = 0, last_s = 0;  // first and last time seen
  int64_t frames = 0;              // frames it was seen in
  std::vector<double> shares;      // per class: the share of its frames with that emotion on top
  int dominant = 0;                // the class most often on top
  std::vector<double> times;       // its timeline: each sighting's time
  std::vector<std::vector<float>> probabilities;  // and (smoothed) probabilities
};

class FaceTracker {
 public:
  FaceTracker(std::vector<std::string> class_names, TrackerOptions options = {});
  // The faces of the frame at `time_s` (seconds, increasing): their track ids, one per face, in
  // order; with smoothing, the faces' probabilities, emotion and confidence are replaced by the
  // track's smoothed ones.
  std::vector<int> update(double time_s, std::vector<FacePrediction>& faces);
  // Every track so far, by id.
  std::vector<TrackSummary> summaries() const;

 private:
  struct Track {
    int id = 0;
    FaceBox box, previous_box;
    double time = 0, previous_time = -1;
    std::vector<float> smoothed;
    TrackSummary summary;
  };
  FaceBox predicted(const Track& t, double time_s) const;
  std::vector<std::string> names_;
  TrackerOptions options_;
  std::vector<Track> live_;
  std::vector<TrackSummary> ended_;
  int next_id_ = 1;
};

// The JSON of a video's tracks: [{"track": 1, "first": 0.0, "last": 4.2, "seconds": 4.2,
// "frames": 43, "dominant": "happy", "shares": {"angry": 0.0, ...}}, ...].
std::string tracks_to_json(const std::vector<TrackSummary>& tracks, const std::vector<std::string>& class_names);

}  // namespace fer
