// Reading videos: FFmpeg's libraries (libavformat for the containers, libavcodec for the codecs,
// libswscale for the pixel formats), so every container and codec Debian's FFmpeg reads works:
// mp4/H.264, webm/VP8/VP9, avi/MJPEG/MPEG-4, mkv, mov, y4m, ...
//
// A VideoReader decodes one frame at a time and hands out the sampled ones as 8-bit gray images:
// memory stays bounded by one frame whatever the video's length. Sampling: every N-th frame
// (`every`), or at most F frames per second of video time (`fps`, by the frames' timestamps).
// A file FFmpeg cannot open, a video too large, or a stream that breaks off is a fer::Error that
// names the file and, once decoding has begun, the frame and time reached.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "data/image.h"

namespace fer::data {

struct VideoInfo {
  std::string container, codec;
  int width = 0, height = 0;
  double fps = 0;         // the stream's frame rate (0 when it declares none)
  double duration_s = 0;  // 0 when unknown
  int64_t frames = 0;     // as declared or estimated from duration x fps; 0 when unknown
};

struct VideoFrame {
  int64_t index = 0;  // among all decoded frames, from 0
  double time_s = 0;  // presentation time from the stream's start
  GrayImage image;
};

struct VideoSampling {
  int64_t every = 1;  // keep every N-th frame
  double fps = 0;     // > 0: keep at most this many frames per second instead
};

class VideoReader {
 public:
  VideoReader(const std::string& path, VideoSampling sampling = {}, int max_side = 8192);
  // A video held in memory (an upload): read through FFmpeg's I/O callbacks, never written to
  // disk. `name` stands for it in errors. The bytes must outlive the reader.
  VideoReader(const uint8_t* bytes, size_t size, const std::string& name, VideoSampling sampling = {},
              int max_side = 8192);
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoInfo& info() const;
  // The next sampled frame; false at the end of the video.
  bool next(VideoFrame& frame);
  int64_t frames_decoded() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writing videos: frames (RGB) encoded with the codec the file's extension calls for: .mp4, .mov,
// .mkv H.264 (libx264) when FFmpeg has it, else MPEG-4 part 2; .avi MJPEG; .webm VP8; .y4m raw
// frames.
// What fer_predict --annotate writes, and how the tests make their sample videos. finish() writes
// the trailer; the destructor of an unfinished writer leaves a file that may not play.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, double fps);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;
  void write(const RgbImage& frame);
  void write(const GrayImage& frame);
  void finish();
  const std::string& codec() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether a path names a video by its extension (.mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .y4m
// .mjpeg .mjpg .ogv .wmv .flv .ts).
bool is_video_path(const std::string& path);

}  // namespace fer::data
