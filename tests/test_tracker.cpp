// Face tracks across video frames (apps/inference/face_tracker.h): identities kept through motion
// and the order of detections, a track ended after a gap, smoothing, summaries; identity swaps
// counted on synthetic scenes of moving faces against their known truth; the live sessions'
// store (apps/inference/live_tracks.h) and its bounds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "apps/inference/face_tracker.h"
#include "apps/inference/live_tracks.h"

using namespace fer;

namespace {
const std::vector<std::string> kNames{"a", "b", "c"};

FacePrediction face(int x, int y, int side, std::vector<float> p) {
  FacePrediction f;
  f.box = {x, y, side, side};
  f.probabilities = p;
  f.label = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
  f.emotion = kNames[static_cast<size_t>(f.label)];
  f.confidence = p[static_cast<size_t>(f.label)];
  return f;
}
}  // namespace

TEST_CASE("tracker: two faces keep their ids while one moves fast and the detections come in any order") {
  FaceTracker tracker(kNames);
  std::vector<int> a_ids, b_ids;
  for (int k = 0; k < 10; ++k) {
    // Face A slides right 30 px a frame (its box of 60 overlaps its last one by half: the motion
    // model keeps it); face B stays put far below.
    std::vector<FacePrediction> faces{face(10 + 30 * k, 10, 60, {0.7f, 0.2f, 0.1f}), face(100, 300, 80, {0.1f, 0.1f, 0.8f})};
    if (k % 2) std::swap(faces[0], faces[1]);
    const std::vector<int> ids = tracker.update(0.1 * k, faces);
    a_ids.push_back(ids[k % 2 ? 1 : 0]);
    b_ids.push_back(ids[k % 2 ? 0 : 1]);
  }
  CHECK(std::all_of(a_ids.begin(), a_ids.end(), [&](int id) { return id == a_ids[0]; }));
  CHECK(std::all_of(b_ids.begin(), b_ids.end(), [&](int id) { return id == b_ids[0]; }));
  CHECK(a_ids[0] != b_ids[0]);
  const std::vector<TrackSummary> s = tracker.summaries();
  REQUIRE(s.size() == 2);
  CHECK(s[0].frames == 10);
  CHECK(s[0].first_s == doctest::Approx(0.0));
  CHECK(s[0].last_s == doctest::Approx(0.9));
  CHECK(kNames[static_cast<size_t>(s[0].dominant)] == "a");
  CHECK(s[1].shares[2] == doctest::Approx(1.0));
  const nlohmann::json j = nlohmann::json::parse(tracks_to_json(s, kNames));
  CHECK(j[1]["dominant"] == "c");
  CHECK(j[0]["frames"] == 10);
}

TEST_CASE("tracker: a face gone longer than the gap comes back as a new track; a nearby new face too") {
  TrackerOptions o;
  o.max_gap_s = 0.5;
  FaceTracker tracker(kNames, o);
  std::vector<FacePrediction> one{face(50, 50, 60, {0.5f, 0.3f, 0.2f})};
  std::vector<FacePrediction> none;
  const int first = tracker.update(0.0, one)[0];
  CHECK(tracker.update(0.4, one)[0] == first);  // within the gap
  tracker.update(0.6, none);                    // a frame without it
  CHECK(tracker.update(1.2, one)[0] != first);  // 0.8 s unseen, a frame missed: ended
  std::vector<FacePrediction> two{face(50, 50, 60, {0.5f, 0.3f, 0.2f}), face(400, 50, 60, {0.5f, 0.3f, 0.2f})};
  const std::vector<int> ids = tracker.update(1.3, two);
  CHECK(ids[0] != ids[1]);
  CHECK(tracker.summaries().size() == 3);
}

TEST_CASE("tracker: frames that come slowly (a busy server) keep the tracks of faces seen in each") {
  TrackerOptions o;
  o.max_gap_s = 0.5;
  FaceTracker tracker(kNames, o);
  std::vector<FacePrediction> one{face(50, 50, 60, {0.5f, 0.3f, 0.2f})};
  const int first = tracker.update(0.0, one)[0];
  CHECK(tracker.update(2.0, one)[0] == first);  // 2 s between frames, the face in both
  CHECK(tracker.update(5.0, one)[0] == first);
  CHECK(tracker.live_tracks() == 1);
  std::vector<FacePrediction> none;
  tracker.update(5.1, none);  // then it leaves: missed, and 0.5 s later ended
  CHECK(tracker.live_tracks() == 1);
  tracker.update(5.7, none);
  CHECK(tracker.live_tracks() == 0);
}

TEST_CASE("tracker: smoothing averages a track's probabilities over time and relabels from them") {
  TrackerOptions o;
  o.smoothing = 0.5f;
  FaceTracker tracker(kNames, o);
  std::vector<FacePrediction> f{face(0, 0, 50, {0.8f, 0.1f, 0.1f})};
  tracker.update(0.0, f);
  std::vector<FacePrediction> g{face(2, 0, 50, {0.1f, 0.7f, 0.2f})};  // one frame's flicker
  tracker.update(0.1, g);
  CHECK(g[0].probabilities[0] == doctest::Approx(0.45f));
  CHECK(g[0].probabilities[1] == doctest::Approx(0.40f));
  CHECK(g[0].emotion == "a");  // the flicker did not flip the label
  CHECK(g[0].confidence == doctest::Approx(0.45f));
  CHECK_THROWS(FaceTracker(kNames, TrackerOptions{0.3f, 0.5f, 1.0, 1.0f}));
}

TEST_CASE("tracker: smoothing can be turned on and off while the tracks go on; a stream keeps no history") {
  TrackerOptions o;
  o.keep_history = false;
  o.max_gap_s = 0.5;
  FaceTracker tracker(kNames, o);
  std::vector<FacePrediction> f{face(0, 0, 50, {0.8f, 0.1f, 0.1f})};
  const int id = tracker.update(0.0, f)[0];
  tracker.set_smoothing(0.5f);
  std::vector<FacePrediction> g{face(2, 0, 50, {0.2f, 0.7f, 0.1f})};
  CHECK(tracker.update(0.1, g)[0] == id);
  CHECK(g[0].probabilities[0] == doctest::Approx(0.5f));  // from the raw 0.8 of the frame before
  tracker.set_smoothing(0.0f);
  std::vector<FacePrediction> h{face(4, 0, 50, {0.1f, 0.1f, 0.8f})};
  CHECK(tracker.update(0.2, h)[0] == id);
  CHECK(h[0].probabilities[2] == doctest::Approx(0.8f));
  CHECK_THROWS(tracker.set_smoothing(1.0f));
  CHECK_THROWS(tracker.set_smoothing(-0.1f));

  // A new face every frame, each far from the others: the tracks alive are those of the last
  // 0.5 s, and nothing else is kept.
  for (int k = 0; k < 300; ++k) {
    std::vector<FacePrediction> one{face(1000 * (k + 1), 0, 50, {0.5f, 0.3f, 0.2f})};
    tracker.update(0.3 + 0.1 * k, one);
  }
  CHECK(tracker.live_tracks() <= 6);
  const std::vector<TrackSummary> s = tracker.summaries();
  CHECK(s.size() == tracker.live_tracks());
  for (const TrackSummary& t : s) CHECK(t.times.empty());
}

// ---- Identity swaps on synthetic moving faces ----------------------------------------------------
// A scene is a list of truth faces, each a path of boxes over the frames of a 640x480 video at
// 10 frames/s, absent where the face is out of view, hidden behind a nearer face, or missed by
// the detector. The tracker sees each frame's detections jittered (position and size) and in a
// shuffled order. A swap: a truth face whose track id differs from its id at its previous
// detection, when the two detections are no more than the tracker's gap (max_gap_s) apart. A face
// away longer must come back as a new track: an id never given to any face before ("stolen" ids
// are counted apart).
namespace {

constexpr double kFrameSeconds = 0.1;
// Swaps allowed in 20 noisy runs of the crossing scene. Measured over 200 runs (jitter +-4 px):
// 11 swaps in 42,800 detections (0 in the 20 runs here), where the association before the
// velocity average and the matching cascade (velocity from the last two boxes only) made 301,
// and 13 in the lanes scene, which now has none.
constexpr int kCrossingSwapBound = 2;

// splitmix64: the same numbers on every standard library (std::uniform_int_distribution is not).
struct Random {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int uniform(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
};

struct TruthFace {
  double x0, y0, vx, vy;  // centre at frame 0 and its velocity, pixels per frame
  int side;
  double wobble = 0;                  // amplitude of a vertical sway (pixels), period 2 s
  std::set<int> missed;               // frames where the detector misses it
  std::pair<int, int> away{-1, -1};   // frames [first, last] out of view (walked out and back)
  int turn_at = -1;                   // from this frame on it walks back (velocity reversed)
};

// The truth box of face `f` at frame k, or none.
bool truth_box(const TruthFace& f, int k, FaceBox& box) {
  if (f.missed.count(k) || (k >= f.away.first && k <= f.away.second)) return false;
  const int forward = f.turn_at < 0 ? k : std::min(k, f.turn_at);
  const int back = f.turn_at < 0 ? 0 : std::max(0, k - f.turn_at);
  const double cx = f.x0 + f.vx * (forward - back);
  const double cy = f.y0 + f.vy * (forward - back) + f.wobble * std::sin(k * kFrameSeconds * M_PI);
  box = {static_cast<int>(std::lround(cx - f.side / 2.0)), static_cast<int>(std::lround(cy - f.side / 2.0)), f.side, f.side};
  return box.x >= 0 && box.y >= 0 && box.x + box.width <= 640 && box.y + box.height <= 480;
}

double overlap(const FaceBox& a, const FaceBox& b) {
  const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int x1 = std::min(a.x + a.width, b.x + b.width), y1 = std::min(a.y + a.height, b.y + b.height);
  const double inter = std::max(0, x1 - x0) * static_cast<double>(std::max(0, y1 - y0));
  return inter / (a.width * static_cast<double>(a.height) + b.width * static_cast<double>(b.height) - inter);
}

struct SwapCount {
  int swaps = 0;     // ids changed between detections within the gap
  int returns = 0;   // comebacks after a longer absence
  int stolen = 0;    // ... that took an id another face had had
  int detections = 0;
  std::string where;  // the first swaps, for the message of a failure
};

// One run of a scene: `frames` frames, jitter of +-`jitter` px on each box's centre and side,
// detections shuffled, a face hidden while it overlaps an earlier face of the list (nearer the
// camera) by IoU > 0.4, and the whole of frame `blank` missed (no detections at all).
SwapCount count_swaps(const std::vector<TruthFace>& scene, int frames, int jitter, int blank, uint64_t seed,
                      const TrackerOptions& options = {}) {
  Random random{seed};
  FaceTracker tracker(kNames, options);
  SwapCount count;
  std::map<int, std::pair<int, double>> last;  // truth face -> (its track id, time) at its last detection
  std::map<int, int> owner;                    // track id -> the truth face it was first given to
  for (int k = 0; k < frames; ++k) {
    std::vector<FaceBox> truth(scene.size());
    std::vector<int> visible;
    for (size_t i = 0; i < scene.size(); ++i) {
      if (k == blank || !truth_box(scene[i], k, truth[i])) continue;
      const bool hidden = std::any_of(visible.begin(), visible.end(),
                                      [&](int j) { return overlap(truth[i], truth[static_cast<size_t>(j)]) > 0.4; });
      if (!hidden) visible.push_back(static_cast<int>(i));
    }
    for (size_t i = visible.size(); i > 1; --i)  // Fisher-Yates: detectors list faces in any order
      std::swap(visible[i - 1], visible[static_cast<size_t>(random.uniform(0, static_cast<int>(i) - 1))]);
    std::vector<FacePrediction> detections;
    for (int i : visible) {
      const FaceBox& t = truth[static_cast<size_t>(i)];
      const int side = t.width + random.uniform(-jitter, jitter);
      const int cx = t.x + t.width / 2 + random.uniform(-jitter, jitter);
      const int cy = t.y + t.height / 2 + random.uniform(-jitter, jitter);
      detections.push_back(face(cx - side / 2, cy - side / 2, side, {0.6f, 0.3f, 0.1f}));
    }
    const double time = k * kFrameSeconds;
    const std::vector<int> ids = tracker.update(time, detections);
    for (size_t d = 0; d < visible.size(); ++d) {
      const int truth_id = visible[d], id = ids[d];
      ++count.detections;
      const auto before = last.find(truth_id);
      if (before != last.end()) {
        if (time - before->second.second <= options.max_gap_s + 1e-9) {
          if (before->second.first != id) {
            ++count.swaps;
            if (count.where.size() < 200)
              count.where += " (seed " + std::to_string(seed) + ", frame " + std::to_string(k) + ", face " +
                             std::to_string(truth_id) + ": track " + std::to_string(before->second.first) + " -> " +
                             std::to_string(id) + ")";
          }
        } else {
          ++count.returns;
          if (owner.count(id) && owner[id] != truth_id) ++count.stolen;
        }
      }
      owner.emplace(id, truth_id);
      last[truth_id] = {id, time};
    }
  }
  return count;
}

// Faces in lanes: different sizes, speeds and directions, swaying, one turning back; single
// missed detections; nobody's path crosses another's.
std::vector<TruthFace> lanes_scene() {
  std::vector<TruthFace> scene(4);
  scene[0] = {60, 70, 9, 0, 90, 8, {12, 25}};
  scene[1] = {580, 200, -7, 0, 70, 12, {7}};
  scene[2] = {60, 330, 16, 1, 60, 6, {20, 31}};  // fast (a quarter of its side a frame), out at ~35
  scene[3] = {320, 430, 3, -0.5, 50, 0, {}};
  scene[3].turn_at = 30;
  return scene;
}

// Crossings: two faces meet head-on on almost the same row (the one behind is hidden for a few
// frames), two cross in an X, and one walks out of view for two seconds and back in.
std::vector<TruthFace> crossing_scene() {
  std::vector<TruthFace> scene(5);
  scene[0] = {60, 150, 12, 0, 80, 0, {}};
  scene[1] = {580, 165, -12, 0, 76, 0, {18}};
  scene[2] = {80, 260, 10, 3.5, 70, 0, {}};
  scene[3] = {80, 440, 10, -3.5, 70, 0, {33}};
  scene[4] = {560, 60, 12, 0, 60, 0, {}};  // out at the right edge after ~3 frames ...
  scene[4].turn_at = 18;                   // ... and back in, walking left, from frame ~32
  return scene;
}

}  // namespace

TEST_CASE("tracker: identity swaps counted on synthetic moving faces (lanes: none; crossings: bounded)") {
  constexpr int kRuns = 20, kFrames = 60, kJitter = 4;
  SwapCount lanes, crossings;
  for (int run = 0; run < kRuns; ++run) {
    const SwapCount a = count_swaps(lanes_scene(), kFrames, kJitter, /*blank=*/38, 1000 + run);
    const SwapCount b = count_swaps(crossing_scene(), kFrames, kJitter, /*blank=*/40, 2000 + run);
    lanes.swaps += a.swaps, lanes.detections += a.detections, lanes.where += a.where;
    crossings.swaps += b.swaps, crossings.detections += b.detections, crossings.where += b.where;
    crossings.returns += b.returns, crossings.stolen += b.stolen;
  }
  MESSAGE("lanes: " << lanes.swaps << " swaps in " << lanes.detections << " detections over " << kRuns << " runs");
  MESSAGE("crossings: " << crossings.swaps << " swaps in " << crossings.detections << " detections over " << kRuns
                        << " runs; " << crossings.returns << " returns after a long absence, " << crossings.stolen
                        << " with another face's id");
  CHECK(lanes.detections > kRuns * 150);  // the scenes are what they claim: faces were seen
  CHECK_MESSAGE(lanes.swaps == 0, "swaps at" << lanes.where);
  CHECK(crossings.returns == kRuns);  // the face that walked out came back once per run ...
  CHECK(crossings.stolen == 0);       // ... as a new track, never as another face's
  CHECK_MESSAGE(crossings.swaps <= kCrossingSwapBound, "swaps at" << crossings.where);
}

// ---- Live sessions (fer_serve's webcam mode) -----------------------------------------------------
TEST_CASE("live tracks: a face keeps its id across a session's frames; sessions are independent") {
  LiveTracks live(kNames);
  std::vector<int> ids;
  for (int k = 0; k < 8; ++k) {
    std::vector<FacePrediction> f{face(100 + 6 * k, 80, 70, {0.6f, 0.3f, 0.1f}), face(400, 90, 70, {0.1f, 0.2f, 0.7f})};
    const std::vector<int> got = live.update("page-1", 10.0 + 0.3 * k, 0.0f, f);
    REQUIRE(got.size() == 2);
    CHECK(got[0] == 1);
    CHECK(got[1] == 2);
  }
  std::vector<FacePrediction> other{face(400, 90, 70, {0.1f, 0.2f, 0.7f})};
  CHECK(live.update("page-2", 12.0, 0.0f, other) == std::vector<int>{1});  // its own numbering
  CHECK(live.sessions() == 2);
  // Smoothing per request; a request that raced ahead of an earlier one does not break the time.
  std::vector<FacePrediction> flicker{face(150, 80, 70, {0.35f, 0.55f, 0.1f})};
  CHECK(live.update("page-1", 12.5, 0.5f, flicker)[0] == 1);
  CHECK(flicker[0].emotion == "a");
  std::vector<FacePrediction> late{face(152, 80, 70, {0.6f, 0.3f, 0.1f})};
  CHECK(live.update("page-1", 12.4, 0.5f, late)[0] == 1);
  CHECK_THROWS(live.update("", 13.0, 0.0f, late));
  CHECK_THROWS(live.update(std::string(kMaxSessionIdLength + 1, 'x'), 13.0, 0.0f, late));
}

TEST_CASE("live tracks: at most max_sessions sessions (the least recently used goes), idle ones dropped") {
  LiveTrackOptions o;
  o.max_sessions = 3;
  o.idle_s = 30;
  LiveTracks live(kNames, o);
  auto at = [](int x) { return std::vector<FacePrediction>{face(x, 50, 60, {0.5f, 0.3f, 0.2f})}; };
  std::vector<FacePrediction> f = at(0);
  CHECK(live.update("first", 0.0, 0, f)[0] == 1);
  for (int s = 0; s < 10; ++s) {
    f = at(0);
    live.update("other" + std::to_string(s), 0.1 * (s + 1), 0, f);
    CHECK(live.sessions() <= 3);
  }
  CHECK(live.sessions() == 3);
  // "first" was evicted: a face far from its old one is track 1 of a new session (it would be
  // track 2 of the old one).
  f = at(500);
  CHECK(live.update("first", 1.5, 0, f)[0] == 1);
  f = at(0);
  CHECK(live.update("other9", 1.6, 0, f)[0] == 1);  // recent: still there, its face still track 1
  f = at(500);
  CHECK(live.update("other9", 1.7, 0, f)[0] == 2);

  // 40 s later every session but the caller's is idle and dropped.
  f = at(0);
  live.update("late", 41.7, 0, f);
  CHECK(live.sessions() == 1);

  // Many threads, many sessions: still bounded, no race (run under the sanitizers too).
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&live, t] {
      for (int k = 0; k < 200; ++k) {
        std::vector<FacePrediction> g{face(10 * (k % 7), 50, 60, {0.5f, 0.3f, 0.2f})};
        live.update("thread" + std::to_string(t) + "-" + std::to_string(k % 5), 50.0 + 0.01 * k, 0.3f, g);
      }
    });
  for (auto& t : threads) t.join();
  CHECK(live.sessions() == 3);
}
