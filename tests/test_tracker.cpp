// Face tracks across video frames (apps/inference/face_tracker.h): identities kept through motion
// and the order of detections, a track ended after a gap, smoothing, summaries.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "apps/inference/face_tracker.h"

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
  const int first = tracker.update(0.0, one)[0];
  CHECK(tracker.update(0.4, one)[0] == first);  // within the gap
  CHECK(tracker.update(1.2, one)[0] != first);  // 0.8 s unseen: ended
  std::vector<FacePrediction> two{face(50, 50, 60, {0.5f, 0.3f, 0.2f}), face(400, 50, 60, {0.5f, 0.3f, 0.2f})};
  const std::vector<int> ids = tracker.update(1.3, two);
  CHECK(ids[0] != ids[1]);
  CHECK(tracker.summaries().size() == 3);
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
