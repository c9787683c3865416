// Face tracks for live streams: fer_serve's webcam mode sends one frame per request, and a face
// keeps its track id from one request to the next because each request names its stream, a
// session id the page chooses (POST /api/predict?session=ID). Each session has its own
// FaceTracker (apps/inference/face_tracker.h: the same association and smoothing as videos).
//
// Clients choose the ids, so nothing they send can make the store grow without bound:
//   - at most `max_sessions` sessions; a new one evicts the least recently used;
//   - a session unseen for `idle_s` seconds is dropped (checked at every call);
//   - a session's tracker keeps no history (TrackerOptions::keep_history = false): its memory is
//     that of the faces seen in the last `max_gap_s` seconds;
//   - ids are 1..kMaxSessionIdLength characters (the HTTP layer checks their alphabet).
// A frame's time is the caller's clock (fer_serve's steady clock at the request), never the
// client's, and it never goes back within a session (two requests of one session may race).
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "apps/inference/face_tracker.h"

namespace fer {

constexpr size_t kMaxSessionIdLength = 64;

struct LiveTrackOptions {
  size_t max_sessions = 64;
  double idle_s = 60;
  // Live frames arrive 1-10 times a second with the jitter of a network and a busy server: a
  // track survives a few missed frames.
  double max_gap_s = 2.0;
};

class LiveTracks {
 public:
  LiveTracks(std::vector<std::string> class_names, LiveTrackOptions options = {});
  // The track ids of `faces`, the frame of `session` seen at `now_s` (seconds on a steady
  // clock); with `smoothing` in (0, 1) their probabilities, emotion and confidence become their
  // track's smoothed ones (FaceTracker::update). A new id starts a session. Thread-safe.
  std::vector<int> update(const std::string& session, double now_s, float smoothing,
                          std::vector<FacePrediction>& faces);
  size_t sessions() const;

 private:
  struct Session {
    FaceTracker tracker;
    double started_s = 0, last_s = 0;
  };
  void drop_idle(double now_s);
  std::vector<std::string> names_;
  LiveTrackOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Session> sessions_;
};

}  // namespace fer
