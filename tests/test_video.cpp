// Videos through FFmpeg (data/video.h): written and read back in every container fer_predict
// names (mp4, avi/MJPEG, webm/VP8, y4m), frame counts and timestamps, sampling by frame count and
// by time, bounded reads, and damaged files named in the error.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/video.h"
#include "engine/error.h"
#include "tests/support/temp_dir.h"

using namespace fer;
using namespace fer::data;
using fer::testing::TempDir;
namespace fs = std::filesystem;

namespace {
// Frame k of a test video: a gradient whose mean brightness is 40 + 8k.
GrayImage test_frame(int w, int h, int k) {
  GrayImage g{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels[static_cast<size_t>(y) * w + x] = static_cast<uint8_t>(40 + 8 * k + (x - w / 2) / 4);
  return g;
}

void write_video(const std::string& path, int frames, double fps) {
  VideoWriter w(path, 64, 48, fps);
  for (int k = 0; k < frames; ++k) w.write(test_frame(64, 48, k));
  w.finish();
}

double mean(const GrayImage& g) {
  return std::accumulate(g.pixels.begin(), g.pixels.end(), 0.0) / static_cast<double>(g.pixels.size());
}
}  // namespace

TEST_CASE("videos: written and read back in mp4, avi (MJPEG), webm (VP8) and y4m, every frame in order") {
  TempDir dir("fer_video");
  for (const char* name : {"clip.mp4", "clip.avi", "clip.webm", "clip.y4m"}) {
    const std::string path = dir / name;
    write_video(path, 20, 10.0);
    VideoReader r(path);
    INFO(name << ": " << r.info().container << " / " << r.info().codec);
    CHECK(r.info().width == 64);
    CHECK(r.info().height == 48);
    CHECK(r.info().fps == doctest::Approx(10.0));
    VideoFrame f;
    int64_t count = 0;
    while (r.next(f)) {
      CHECK(f.index == count);
      CHECK(f.time_s == doctest::Approx(count / 10.0).epsilon(0.01));
      CHECK(f.image.width == 64);
      CHECK(std::abs(mean(f.image) - (40 + 8 * count)) < 6);  // lossy codecs: close, not exact
      ++count;
    }
    CHECK(count == 20);
    CHECK(r.frames_decoded() == 20);
  }
}

TEST_CASE("videos: sampling every N-th frame or F frames per second of video time") {
  TempDir dir("fer_video_sampling");
  const std::string path = dir / "clip.avi";
  write_video(path, 30, 10.0);
  std::vector<int64_t> kept;
  VideoFrame f;
  VideoReader every3(path, {3, 0});
  while (every3.next(f)) kept.push_back(f.index);
  CHECK(kept == std::vector<int64_t>{0, 3, 6, 9, 12, 15, 18, 21, 24, 27});
  kept.clear();
  VideoReader per_second(path, {1, 2.5});  // one frame every 0.4 s of a 10 fps video
  while (per_second.next(f)) kept.push_back(f.index);
  CHECK(kept == std::vector<int64_t>{0, 4, 8, 12, 16, 20, 24, 28});
  CHECK_THROWS(VideoReader(path, {0, 0}));
}

TEST_CASE("videos: a file that is not a video, a truncated one and a missing one are named") {
  TempDir dir("fer_video_bad");
  const std::string text = dir / "notes.mp4";
  std::ofstream(text) << "this is not a video";
  CHECK_THROWS_WITH(VideoReader{text}, doctest::Contains((text + "': FFmpeg cannot open it").c_str()));
  CHECK_THROWS_WITH(VideoReader{dir / "missing.mp4"}, doctest::Contains("does not exist"));

  // An mp4 cut in half has lost its index: refused when opened.
  const std::string whole = dir / "whole.mp4", cut = dir / "cut.mp4";
  write_video(whole, 20, 10.0);
  {
    std::ifstream in(whole, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  bool named = false;
  try {
    VideoReader r(cut);
    VideoFrame f;
    while (r.next(f)) {
    }
  } catch (const Error& e) {
    named = std::string(e.what()).find(cut) != std::string::npos;
  }
  CHECK(named);

  // A y4m stream cut inside a frame: the frames before it, then an error naming the frame reached
  // or a clean end without the broken frame.
  const std::string y4m = dir / "whole.y4m", y4m_cut = dir / "cut.y4m";
  write_video(y4m, 10, 10.0);
  {
    std::ifstream in(y4m, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(y4m_cut, std::ios::binary) << bytes.substr(0, bytes.size() - 2000);
  }
  VideoReader r(y4m_cut);
  VideoFrame f;
  int64_t frames = 0;
  try {
    while (r.next(f)) ++frames;
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("after frame") != std::string::npos);
  }
  CHECK(frames == 9);
}

TEST_CASE("videos: read from memory (an upload) as from the file") {
  TempDir dir("fer_video_memory");
  const std::string path = dir / "clip.mp4";
  write_video(path, 15, 10.0);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  VideoReader from_file(path), from_memory(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "upload");
  VideoFrame a, b;
  int64_t n = 0;
  while (from_file.next(a)) {
    REQUIRE(from_memory.next(b));
    CHECK(a.index == b.index);
    CHECK(a.image.pixels == b.image.pixels);
    ++n;
  }
  CHECK(!from_memory.next(b));
  CHECK(n == 15);
  const std::string junk = "not a video at all";
  CHECK_THROWS_WITH(VideoReader(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "upload"),
                    doctest::Contains("video 'upload': FFmpeg cannot open it"));
}

TEST_CASE("videos: paths are recognised by their extension") {
  CHECK(is_video_path("a/b/clip.MP4"));
  CHECK(is_video_path("x.webm"));
  CHECK(is_video_path("x.y4m"));
  CHECK(!is_video_path("photo.jpg"));
  CHECK(!is_video_path("noext"));
}

// MPEG-4 in AVI with B-frames (opencv-doc's Megamind.avi): the container stores no presentation
// times, so the decoder's first frame comes out one frame after the stream's start. Frame k must
// still be at k / fps: the first decoded frame is time 0.
TEST_CASE("videos: frame times start at 0 on an AVI with B-frames (skipped without opencv-doc)") {
  const std::string path = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";
  if (!fs::exists(path)) {
    MESSAGE("SKIPPED: " << path << " is absent (Debian package opencv-doc)");
    return;
  }
  VideoReader r(path);
  REQUIRE(r.info().fps > 0);
  VideoFrame f;
  for (int k = 0; k < 48 && r.next(f); ++k) {
    INFO("frame " << k << " at " << f.time_s << " s");
    CHECK(f.time_s == doctest::Approx(k / r.info().fps).epsilon(1e-3));
  }
}
