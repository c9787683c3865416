// Face tracks across frames; see face_tracker.h.
#include "apps/inference/face_tracker.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace fer {

namespace {
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
  FER_CHECK(options.smoothing >= 0 && options.smoothing < 1, "tracker: smoothing must be in [0, 1), got ",
            options.smoothing);
  FER_CHECK(options.min_iou > 0 && options.min_iou <= 1 && options.max_gap_s > 0,
            "tracker: min_iou in (0, 1] and a positive max gap expected");
}

FaceBox FaceTracker::predicted(const Track& t, double time_s) const {
  if (t.previous_time < 0 || t.time <= t.previous_time) return t.box;
  const double k = (time_s - t.time) / (t.time - t.previous_time);  // frames of motion to add
  auto step = [k](int now, int before) { return static_cast<int>(std::lround(now + k * (now - before))); };
  return {step(t.box.x, t.previous_box.x), step(t.box.y, t.previous_box.y), t.box.width, t.box.height};
}

std::vector<int> FaceTracker::update(double time_s, std::vector<FacePrediction>& faces) {
  // Tracks unseen for too long end.
  for (auto it = live_.begin(); it != live_.end();) {
    if (time_s - it->time > options_.max_gap_s) {
      ended_.push_back(it->summary);
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
  // Greedy pairing: by overlap first, then by centre distance.
  std::vector<int> track_of(faces.size(), -1);
  std::vector<bool> taken(live_.size(), false);
  struct Pair { double score; size_t face, track; };
  std::vector<Pair> pairs;
  for (size_t f = 0; f < faces.size(); ++f)
    for (size_t t = 0; t < live_.size(); ++t) {
      const FaceBox p = predicted(live_[t], time_s);
      const double o = iou(faces[f].box, p);
      if (o >= options_.min_iou) pairs.push_back({2.0 + o, f, t});
      else if (centre_shift(faces[f].box, p) < options_.max_centre_shift) pairs.push_back({1.0 - centre_shift(faces[f].box, p), f, t});
    }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.score > b.score; });
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
    if (t.summary.frames > 0) {
      t.previous_box = t.box;
      t.previous_time = t.time;
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
    s.times.push_back(time_s);
    s.probabilities.push_back(face.probabilities);
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
