// Face tracks across frames; see face_tracker.h.
#include "apps/inference/face_tracker.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace fer {

namespace {
// The velocity's exponential average: v = keep v + (1 - keep) v_measured, per sighting.
constexpr double kVelocityKeep = 0.5;

double iou(const FaceBox& a, const FaceBox& b) {
  const double x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const double x1 = std::min(a.x + a.width, b.x + b.width), y1 = std::min(a.y + a.height, b.y + b.height);
  const double inter = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
  const double uni = static_cast<double>(a.width) * a.height + static_cast<double>(b.width) * b.height - inter;
  return uni > 0 ? inter / uni : 0.0;
}

// Distance between the boxes' centres, in units of the larger side.
double centre_shift(const FaceBox& a, const FaceBox& b) {
  const double dx = (a.x + a.width / 2.0) - (b.x + b.width / 2.0);
  const double dy = (a.y + a.height / 2.0) - (b.y + b.height / 2.0);
  return std::hypot(dx, dy) / std::max({a.width, a.height, b.width, b.height, 1});
}
}  // namespace

FaceTracker::FaceTracker(std::vector<std::string> class_names, TrackerOptions options)
    : names_(std::move(class_names)), options_(options) {
  set_smoothing(options.smoothing);
  FER_CHECK(options.min_iou > 0 && options.min_iou <= 1 && options.max_gap_s > 0,
            "tracker: min_iou in (0, 1] and a positive max gap expected");
}

void FaceTracker::set_smoothing(float smoothing) {
  FER_CHECK(smoothing >= 0 && smoothing < 1, "tracker: smoothing must be in [0, 1), got ", smoothing);
  options_.smoothing = smoothing;
}

FaceBox FaceTracker::predicted(const Track& t, double time_s) const {
  const double dt = time_s - t.time;
  return {static_cast<int>(std::lround(t.box.x + t.vx * dt)), static_cast<int>(std::lround(t.box.y + t.vy * dt)),
          t.box.width, t.box.height};
}

std::vector<int> FaceTracker::update(double time_s, std::vector<FacePrediction>& faces) {
  // Tracks unseen for too long end, once they have missed a frame: a track seen in the latest
  // frame goes on however long the next one takes (a live stream slows down when the server is
  // busy, and its faces are still in view).
  for (auto it = live_.begin(); it != live_.end();) {
    if (time_s - it->time > options_.max_gap_s && it->time < previous_frame_s_) {
      if (options_.keep_history) ended_.push_back(std::move(it->summary));
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
  // Greedy pairing: pairs that overlap before pairs that are only near; within each, tracks seen
  // in the previous frame before tracks that were not (DeepSORT's matching cascade: while one
  // face hides another, the visible face's detection lies on both predictions, and belongs to
  // the track that saw it last); then the best overlap, or the least centre distance.
  std::vector<int> track_of(faces.size(), -1);
  std::vector<bool> taken(live_.size(), false);
  struct Pair { int tier; double score; size_t face, track; };
  std::vector<Pair> pairs;
  for (size_t f = 0; f < faces.size(); ++f)
    for (size_t t = 0; t < live_.size(); ++t) {
      const FaceBox p = predicted(live_[t], time_s);
      const double o = iou(faces[f].box, p);
      const int fresh = live_[t].time >= previous_frame_s_ ? 1 : 0;
      if (o >= options_.min_iou) pairs.push_back({2 + fresh, o, f, t});
      else if (centre_shift(faces[f].box, p) < options_.max_centre_shift) pairs.push_back({fresh, -centre_shift(faces[f].box, p), f, t});
    }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    return a.tier != b.tier ? a.tier > b.tier : a.score > b.score;
  });
  previous_frame_s_ = time_s;
  for (const Pair& p : pairs)
    if (track_of[p.face] < 0 && !taken[p.track]) track_of[p.face] = static_cast<int>(p.track), taken[p.track] = true;

  std::vector<int> ids(faces.size());
  for (size_t f = 0; f < faces.size(); ++f) {
    if (track_of[f] < 0) {  // a new face
      Track t;
      t.id = next_id_++;
      t.summary.id = t.id;
      t.summary.first_s = time_s;
      t.summary.shares.assign(names_.size(), 0.0);
      t.box = faces[f].box;
      t.time = time_s;
      live_.push_back(std::move(t));
      taken.push_back(true);
      track_of[f] = static_cast<int>(live_.size() - 1);
    }
    Track& t = live_[static_cast<size_t>(track_of[f])];
    if (t.summary.frames > 0 && time_s > t.time) {
      const FaceBox& b = faces[f].box;
      const double dt = time_s - t.time;
      const double mx = ((b.x + b.width / 2.0) - (t.box.x + t.box.width / 2.0)) / dt;
      const double my = ((b.y + b.height / 2.0) - (t.box.y + t.box.height / 2.0)) / dt;
      const double keep = t.summary.frames > 1 ? kVelocityKeep : 0.0;
      t.vx = keep * t.vx + (1 - keep) * mx;
      t.vy = keep * t.vy + (1 - keep) * my;
    }
    t.box = faces[f].box;
    t.time = time_s;
    FacePrediction& face = faces[f];
    if (options_.smoothing > 0 && !t.smoothed.empty()) {
      for (size_t c = 0; c < t.smoothed.size(); ++c)
        t.smoothed[c] = options_.smoothing * t.smoothed[c] + (1.0f - options_.smoothing) * face.probabilities[c];
      face.probabilities = t.smoothed;
      face.label = static_cast<int>(std::max_element(t.smoothed.begin(), t.smoothed.end()) - t.smoothed.begin());
      face.emotion = names_[static_cast<size_t>(face.label)];
      face.confidence = t.smoothed[static_cast<size_t>(face.label)];
    } else {
      t.smoothed = face.probabilities;
    }
    TrackSummary& s = t.summary;
    s.last_s = time_s;
    ++s.frames;
    s.shares[static_cast<size_t>(face.label)] += 1.0;
    if (options_.keep_history) {
      s.times.push_back(time_s);
      s.probabilities.push_back(face.probabilities);
    }
    ids[f] = t.id;
  }
  return ids;
}

std::vector<TrackSummary> FaceTracker::summaries() const {
  std::vector<TrackSummary> all = ended_;
  for (const Track& t : live_) all.push_back(t.summary);
  for (TrackSummary& s : all) {
    s.dominant = static_cast<int>(std::max_element(s.shares.begin(), s.shares.end()) - s.shares.begin());
    for (double& share : s.shares) share /= static_cast<double>(std::max<int64_t>(s.frames, 1));
  }
  std::sort(all.begin(), all.end(), [](const TrackSummary& a, const TrackSummary& b) { return a.id < b.id; });
  return all;
}

std::string tracks_to_json(const std::vector<TrackSummary>& tracks, const std::vector<std::string>& class_names) {
  nlohmann::json out = nlohmann::json::array();
  for (const TrackSummary& t : tracks) {
    nlohmann::json shares;
    for (size_t c = 0; c < class_names.size() && c < t.shares.size(); ++c) shares[class_names[c]] = t.shares[c];
    out.push_back({{"track", t.id}, {"first", t.first_s}, {"last", t.last_s}, {"seconds", t.last_s - t.first_s},
                   {"frames", t.frames}, {"dominant", class_names[static_cast<size_t>(t.dominant)]},
                   {"shares", shares}});
  }
  return out.dump();
}

}  // namespace fer
