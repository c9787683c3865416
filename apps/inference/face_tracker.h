// Faces over time: a track per person across a video's frames, so that the rows of one face keep
// one identity, its probabilities can be smoothed, and its emotions summarised and charted.
//
// Association, frame by frame (as SORT does, with a greedy match instead of the Hungarian one):
// each live track predicts its box at the frame's time at constant velocity, its centre's
// velocity being an average over its sightings (v = 0.5 v + 0.5 v_measured: a detector's jitter
// of a few pixels between two boxes is not taken for motion); detections and predictions are
// paired greedily, first by overlap (IoU at least `min_iou`), then the rest by centre distance
// (under `max_centre_shift` of the box's side), and within each the tracks seen in the previous
// frame before those that were not (DeepSORT's matching cascade: while one face hides another,
// the visible one's detection overlaps both predictions and belongs to the track that saw it
// last), then the best overlap or nearest centre first; unpaired detections start new tracks; a
// track unseen for `max_gap_s` seconds ends, if it missed at least the latest frame (frames
// that come slowly, from a busy server, do not end the tracks of faces still in view). tests/test_tracker.cpp counts identity swaps on
// synthetic scenes (faces in lanes, crossing, hidden, missed, leaving and coming back).
//
// Smoothing (smoothing > 0): each track's probabilities are an exponential moving average,
//   p_t = s p_(t-1) + (1 - s) p_observed,
// and the face's emotion and confidence are taken from it (a flicker of one frame no longer
// flips the label).
//
// A video's tracker keeps every track's timeline for its summary; a stream that never ends (a
// webcam: apps/inference/live_tracks.h) sets keep_history = false, and its memory is then that
// of the tracks alive now: no timelines, and ended tracks are forgotten.
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
  bool keep_history = true;       // false: no timelines, ended tracks forgotten (streams)
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
  // Smoothing from the next frame on (a viewer may turn it on and off while tracks go on); a
  // track's average goes on from its latest probabilities.
  void set_smoothing(float smoothing);
  // Every track so far, by id (without keep_history: the live ones, with no timelines).
  std::vector<TrackSummary> summaries() const;
  // Tracks alive now (seen in the latest frame or within max_gap_s of it).
  size_t live_tracks() const { return live_.size(); }

 private:
  struct Track {
    int id = 0;
    FaceBox box;             // at its latest sighting, `time`
    double time = 0;
    double vx = 0, vy = 0;   // its centre's velocity, pixels per second (averaged)
    std::vector<float> smoothed;
    TrackSummary summary;
  };
  FaceBox predicted(const Track& t, double time_s) const;
  std::vector<std::string> names_;
  TrackerOptions options_;
  std::vector<Track> live_;
  std::vector<TrackSummary> ended_;
  int next_id_ = 1;
  double previous_frame_s_ = -1e300;  // the time of the latest update
};

// The JSON of a video's tracks: [{"track": 1, "first": 0.0, "last": 4.2, "seconds": 4.2,
// "frames": 43, "dominant": "happy", "shares": {"angry": 0.0, ...}}, ...].
std::string tracks_to_json(const std::vector<TrackSummary>& tracks, const std::vector<std::string>& class_names);

}  // namespace fer
