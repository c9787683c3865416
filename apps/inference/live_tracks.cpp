// Face tracks of live streams, one tracker per session; see live_tracks.h.
#include "apps/inference/live_tracks.h"

#include <algorithm>

#include "engine/error.h"

namespace fer {

LiveTracks::LiveTracks(std::vector<std::string> class_names, LiveTrackOptions options)
    : names_(std::move(class_names)), options_(options) {
  FER_CHECK(options.max_sessions >= 1 && options.idle_s > 0 && options.max_gap_s > 0,
            "live tracks: at least one session, a positive idle time and gap expected");
}

void LiveTracks::drop_idle(double now_s) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now_s - it->second.last_s > options_.idle_s) it = sessions_.erase(it);
    else ++it;
  }
}

std::vector<int> LiveTracks::update(const std::string& session, double now_s, float smoothing,
                                    std::vector<FacePrediction>& faces) {
  FER_CHECK(!session.empty() && session.size() <= kMaxSessionIdLength, "live tracks: a session id of 1 to ",
            kMaxSessionIdLength, " characters expected, got ", session.size());
  std::lock_guard<std::mutex> lock(mutex_);
  drop_idle(now_s);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) {
    if (sessions_.size() >= options_.max_sessions) {
      auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
        return a.second.last_s < b.second.last_s;
      });
      sessions_.erase(oldest);
    }
    TrackerOptions tracking;
    tracking.max_gap_s = options_.max_gap_s;
    tracking.keep_history = false;
    it = sessions_.emplace(session, Session{FaceTracker(names_, tracking), now_s, now_s}).first;
  }
  Session& s = it->second;
  s.last_s = std::max(s.last_s, now_s);  // a request that raced ahead keeps the time going forward
  s.tracker.set_smoothing(smoothing);
  return s.tracker.update(s.last_s - s.started_s, faces);
}

size_t LiveTracks::sessions() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sessions_.size();
}

}  // namespace fer
