// Video decoding with FFmpeg's libraries; see video.h.
//
// The decode loop is FFmpeg's send/receive model: packets of the video stream are read from the
// container (av_read_frame) and sent to the decoder (avcodec_send_packet); decoded frames come
// out of avcodec_receive_frame, possibly several per packet or none for a while (codecs with
// reordered frames). At the end of the container a null packet drains the decoder.
#include "data/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace fer::data {

namespace {
std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof text);
  return text;
}
}  // namespace

// A video in memory as FFmpeg's I/O: read and seek callbacks over the bytes.
struct MemoryInput {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  static int read(void* opaque, uint8_t* buf, int n) {
    auto* m = static_cast<MemoryInput*>(opaque);
    const size_t k = std::min(static_cast<size_t>(n), m->size - m->pos);
    if (k == 0) return AVERROR_EOF;
    std::memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return static_cast<int>(k);
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* m = static_cast<MemoryInput*>(opaque);
    if (whence == AVSEEK_SIZE) return static_cast<int64_t>(m->size);
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
      case SEEK_SET: base = 0; break;
      case SEEK_CUR: base = static_cast<int64_t>(m->pos); break;
      case SEEK_END: base = static_cast<int64_t>(m->size); break;
      default: return -1;
    }
    const int64_t target = base + offset;
    if (target < 0 || target > static_cast<int64_t>(m->size)) return -1;
    m->pos = static_cast<size_t>(target);
    return target;
  }
};

struct VideoReader::Impl {
  std::string path;
  MemoryInput memory;
  AVIOContext* io = nullptr;  // the memory input's, when reading from memory
  VideoSampling sampling;
  VideoInfo info;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  SwsContext* scaler = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  int stream = -1;
  double time_base = 0;
  int64_t decoded = 0;         // frames out of the decoder so far
  double next_sample_time = 0; // fps sampling: the earliest time of the next kept frame
  double origin = 0;           // the first decoded frame's timestamp: frame times count from it
  bool draining = false, finished = false;

  ~Impl() {
    sws_freeContext(scaler);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
    if (io) av_freep(&io->buffer);
    avio_context_free(&io);
  }

  void open(VideoSampling sampling, int max_side);

  // "file: frame N (t s)" for errors once decoding has begun.
  std::string where() const {
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", decoded > 0 ? frame_time(decoded) : 0.0);
    return path + ": after frame " + std::to_string(decoded) + " (" + t + " s)";
  }
  double frame_time(int64_t index) const { return info.fps > 0 ? index / info.fps : 0.0; }

  // The next decoded frame into `frame`; false at the end.
  bool decode_next() {
    for (;;) {
      const int got = avcodec_receive_frame(codec, frame);
      if (got == 0) return true;
      if (got == AVERROR_EOF) return false;
      FER_CHECK(got == AVERROR(EAGAIN), where(), ": the decoder failed (", av_error(got), ")");
      if (draining) return false;
      // The decoder wants input: the next packet of our stream, or a null one at the end.
      int read;
      for (;;) {
        read = av_read_frame(format, packet);
        if (read < 0 || packet->stream_index == stream) break;
        av_packet_unref(packet);
      }
      if (read == AVERROR_EOF) {
        draining = true;
        FER_CHECK(avcodec_send_packet(codec, nullptr) >= 0, where(), ": cannot drain the decoder");
        continue;
      }
      FER_CHECK(read >= 0, where(), ": the file is corrupt or truncated (", av_error(read), ")");
      const int sent = avcodec_send_packet(codec, packet);
      av_packet_unref(packet);
      FER_CHECK(sent >= 0 || sent == AVERROR(EAGAIN), where(), ": a corrupt frame (", av_error(sent), ")");
    }
  }
};

VideoReader::VideoReader(const std::string& path, VideoSampling sampling, int max_side)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::error_code ec;
  FER_CHECK(std::filesystem::is_regular_file(path, ec), "video '", path, "' does not exist or is not a file");
  impl_->open(sampling, max_side);
}

VideoReader::VideoReader(const uint8_t* bytes, size_t size, const std::string& name, VideoSampling sampling,
                         int max_side)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = name;
  FER_CHECK(bytes && size > 0, "video '", name, "': empty");
  m.memory = {bytes, size, 0};
  constexpr int kBuffer = 64 << 10;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
  m.io = avio_alloc_context(buffer, kBuffer, 0, &m.memory, MemoryInput::read, nullptr, MemoryInput::seek);
  FER_CHECK(buffer && m.io, "video '", name, "': out of memory");
  m.format = avformat_alloc_context();
  FER_CHECK(m.format, "video '", name, "': out of memory");
  m.format->pb = m.io;
  m.format->flags |= AVFMT_FLAG_CUSTOM_IO;
  m.open(sampling, max_side);
}

void VideoReader::Impl::open(VideoSampling s, int max_side) {
  Impl& m = *this;
  const std::string& path = m.path;
  m.sampling = s;
  FER_CHECK(s.every >= 1, "video sampling: every must be >= 1, got ", s.every);
  FER_CHECK(s.fps >= 0 && std::isfinite(s.fps), "video sampling: fps must be >= 0, got ", s.fps);
  av_log_set_level(AV_LOG_ERROR);  // FFmpeg's own warnings would interleave with our progress line

  int rc = avformat_open_input(&m.format, m.io ? nullptr : path.c_str(), nullptr, nullptr);
  FER_CHECK(rc >= 0, "video '", path, "': FFmpeg cannot open it (", av_error(rc), ")");
  rc = avformat_find_stream_info(m.format, nullptr);
  FER_CHECK(rc >= 0, "video '", path, "': cannot read its streams (", av_error(rc), ")");
  const AVCodec* decoder = nullptr;
  m.stream = av_find_best_stream(m.format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  FER_CHECK(m.stream >= 0 && decoder, "video '", path, "': no video stream FFmpeg can decode (",
            av_error(m.stream), ")");
  AVStream* st = m.format->streams[m.stream];
  m.codec = avcodec_alloc_context3(decoder);
  FER_CHECK(m.codec && avcodec_parameters_to_context(m.codec, st->codecpar) >= 0, "video '", path,
            "': cannot set up the ", decoder->name, " decoder");
  m.codec->thread_count = 1;  // one frame in flight: bounded memory, the same frames every run
  rc = avcodec_open2(m.codec, decoder, nullptr);
  FER_CHECK(rc >= 0, "video '", path, "': cannot open the ", decoder->name, " decoder (", av_error(rc), ")");
  FER_CHECK(m.codec->width > 0 && m.codec->height > 0 && m.codec->width <= max_side && m.codec->height <= max_side,
            "video '", path, "': frames of ", m.codec->width, "x", m.codec->height,
            " (sides from 1 to ", max_side, " accepted)");

  VideoInfo& i = m.info;
  i.container = m.format->iformat->name;
  i.codec = decoder->name;
  i.width = m.codec->width;
  i.height = m.codec->height;
  const AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  i.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
  if (m.format->duration > 0) i.duration_s = m.format->duration / static_cast<double>(AV_TIME_BASE);
  i.frames = st->nb_frames > 0 ? st->nb_frames : static_cast<int64_t>(std::llround(i.duration_s * i.fps));
  m.time_base = av_q2d(st->time_base);
  m.packet = av_packet_alloc();
  m.frame = av_frame_alloc();
  FER_CHECK(m.packet && m.frame, "video '", path, "': out of memory");
}

VideoReader::~VideoReader() = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }
int64_t VideoReader::frames_decoded() const { return impl_->decoded; }

bool VideoReader::next(VideoFrame& out) {
  Impl& m = *impl_;
  while (!m.finished) {
    if (!m.decode_next()) {
      m.finished = true;
      break;
    }
    const int64_t index = m.decoded++;
    // Times count from the first frame out of the decoder, not from the stream's start_time: in
    // an AVI with B-frames (no presentation times stored) the first frame comes out one frame
    // after the start, and every time would be one frame late.
    const int64_t pts = m.frame->best_effort_timestamp;
    if (index == 0 && pts != AV_NOPTS_VALUE) m.origin = pts * m.time_base;
    const double t = pts != AV_NOPTS_VALUE ? pts * m.time_base - m.origin : m.frame_time(index);
    bool keep;
    if (m.sampling.fps > 0) {
      keep = t + 1e-6 >= m.next_sample_time;
      if (keep) m.next_sample_time = std::max(m.next_sample_time + 1.0 / m.sampling.fps, t);
    } else {
      keep = index % m.sampling.every == 0;
    }
    if (!keep) continue;
    FER_CHECK(m.frame->width == m.info.width && m.frame->height == m.info.height, m.where(),
              ": the frame size changed to ", m.frame->width, "x", m.frame->height);
    m.scaler = sws_getCachedContext(m.scaler, m.frame->width, m.frame->height,
                                    static_cast<AVPixelFormat>(m.frame->format), m.frame->width,
                                    m.frame->height, AV_PIX_FMT_GRAY8, SWS_BILINEAR, nullptr, nullptr, nullptr);
    FER_CHECK(m.scaler != nullptr, m.where(), ": cannot convert pixel format ",
              av_get_pix_fmt_name(static_cast<AVPixelFormat>(m.frame->format)), " to gray");
    out.index = index;
    out.time_s = t;
    out.image.width = m.frame->width;
    out.image.height = m.frame->height;
    out.image.pixels.resize(static_cast<size_t>(m.frame->width) * m.frame->height);
    uint8_t* planes[4] = {out.image.pixels.data(), nullptr, nullptr, nullptr};
    int strides[4] = {m.frame->width, 0, 0, 0};
    sws_scale(m.scaler, m.frame->data, m.frame->linesize, 0, m.frame->height, planes, strides);
    av_frame_unref(m.frame);
    return true;
  }
  return false;
}

// ---- Writing -------------------------------------------------------------------------------------

struct VideoWriter::Impl {
  std::string path;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVStream* stream = nullptr;
  SwsContext* scaler = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  int64_t next_pts = 0;
  bool header = false, finished = false;

  ~Impl() {
    sws_freeContext(scaler);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    if (format && !(format->oformat->flags & AVFMT_NOFILE)) avio_closep(&format->pb);
    avformat_free_context(format);
  }

  // Sends `f` (null: flush) to the encoder and writes every packet it gives back.
  void encode(AVFrame* f) {
    int rc = avcodec_send_frame(codec, f);
    FER_CHECK(rc >= 0, "video '", path, "': the ", codec->codec->name, " encoder failed (", av_error(rc), ")");
    for (;;) {
      rc = avcodec_receive_packet(codec, packet);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      FER_CHECK(rc >= 0, "video '", path, "': the encoder failed (", av_error(rc), ")");
      if (packet->duration <= 0) packet->duration = 1;  // one frame: else mp4 gives the last one none
      av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
      packet->stream_index = stream->index;
      rc = av_interleaved_write_frame(format, packet);
      FER_CHECK(rc >= 0, "video '", path, "': cannot write (", av_error(rc), ")");
    }
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, double fps)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  FER_CHECK(width > 0 && height > 0 && width % 2 == 0 && height % 2 == 0, "video '", path,
            "': frames of ", width, "x", height, " (even sides needed for 4:2:0 video)");
  FER_CHECK(fps > 0 && fps <= 1000, "video '", path, "': fps ", fps, " out of range");
  av_log_set_level(AV_LOG_ERROR);
  int rc = avformat_alloc_output_context2(&m.format, nullptr, nullptr, path.c_str());
  FER_CHECK(rc >= 0 && m.format, "video '", path, "': no container for this file name (", av_error(rc), ")");
  const std::string container = m.format->oformat->name;
  const AVCodec* encoder = nullptr;
  if (container == "avi") encoder = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  else if (container == "webm") encoder = avcodec_find_encoder(AV_CODEC_ID_VP8);
  else if (container == "yuv4mpegpipe") encoder = avcodec_find_encoder(AV_CODEC_ID_WRAPPED_AVFRAME);
  else {
    encoder = avcodec_find_encoder_by_name("libx264");
    if (!encoder) encoder = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  }
  FER_CHECK(encoder, "video '", path, "': FFmpeg has no encoder for ", container);
  m.stream = avformat_new_stream(m.format, nullptr);
  m.codec = avcodec_alloc_context3(encoder);
  FER_CHECK(m.stream && m.codec, "video '", path, "': out of memory");
  m.codec->width = width;
  m.codec->height = height;
  const AVRational rate = av_d2q(fps, 100000);
  m.codec->time_base = av_inv_q(rate);
  m.codec->framerate = rate;
  m.codec->gop_size = 12;
  // No B-frames: frames leave the encoder in order, and the mp4 muxer needs no edit list (with
  // one, FFmpeg's own reader dropped the first frame of an H.264 mp4).
  m.codec->max_b_frames = 0;
  m.codec->pix_fmt = encoder->id == AV_CODEC_ID_MJPEG ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
  if (encoder->id == AV_CODEC_ID_MPEG4 || encoder->id == AV_CODEC_ID_MJPEG) m.codec->bit_rate = 4'000'000;
  if (m.format->oformat->flags & AVFMT_GLOBALHEADER) m.codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  m.codec->thread_count = 1;
  rc = avcodec_open2(m.codec, encoder, nullptr);
  FER_CHECK(rc >= 0, "video '", path, "': cannot open the ", encoder->name, " encoder (", av_error(rc), ")");
  FER_CHECK(avcodec_parameters_from_context(m.stream->codecpar, m.codec) >= 0, "video '", path, "': codec parameters");
  m.stream->time_base = m.codec->time_base;
  if (!(m.format->oformat->flags & AVFMT_NOFILE)) {
    rc = avio_open(&m.format->pb, path.c_str(), AVIO_FLAG_WRITE);
    FER_CHECK(rc >= 0, "video '", path, "': cannot create it (", av_error(rc), ")");
  }
  rc = avformat_write_header(m.format, nullptr);
  FER_CHECK(rc >= 0, "video '", path, "': cannot write the header (", av_error(rc), ")");
  m.header = true;
  m.frame = av_frame_alloc();
  m.packet = av_packet_alloc();
  FER_CHECK(m.frame && m.packet, "video '", path, "': out of memory");
  m.frame->format = m.codec->pix_fmt;
  m.frame->width = width;
  m.frame->height = height;
  FER_CHECK(av_frame_get_buffer(m.frame, 0) >= 0, "video '", path, "': out of memory");
}

VideoWriter::~VideoWriter() = default;

const std::string& VideoWriter::codec() const {
  static thread_local std::string name;
  name = impl_->codec->codec->name;
  return name;
}

void VideoWriter::write(const RgbImage& rgb) {
  Impl& m = *impl_;
  FER_CHECK(!m.finished, "video '", m.path, "': written after finish()");
  FER_CHECK(rgb.width == m.codec->width && rgb.height == m.codec->height, "video '", m.path, "': a ",
            rgb.width, "x", rgb.height, " frame in a ", m.codec->width, "x", m.codec->height, " video");
  FER_CHECK(av_frame_make_writable(m.frame) >= 0, "video '", m.path, "': out of memory");
  m.scaler = sws_getCachedContext(m.scaler, rgb.width, rgb.height, AV_PIX_FMT_RGB24, rgb.width, rgb.height,
                                  m.codec->pix_fmt, SWS_BILINEAR, nullptr, nullptr, nullptr);
  FER_CHECK(m.scaler, "video '", m.path, "': cannot convert RGB to the encoder's pixels");
  const uint8_t* src[4] = {rgb.pixels.data(), nullptr, nullptr, nullptr};
  const int strides[4] = {rgb.width * 3, 0, 0, 0};
  sws_scale(m.scaler, src, strides, 0, rgb.height, m.frame->data, m.frame->linesize);
  m.frame->pts = m.next_pts++;
  m.encode(m.frame);
}

void VideoWriter::write(const GrayImage& gray) { write(gray_to_rgb(gray)); }

void VideoWriter::finish() {
  Impl& m = *impl_;
  if (m.finished) return;
  m.finished = true;
  m.encode(nullptr);
  const int rc = av_write_trailer(m.format);
  FER_CHECK(rc >= 0, "video '", m.path, "': cannot finish it (", av_error(rc), ")");
}

bool is_video_path(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* v : {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".y4m",
                        ".mjpeg", ".mjpg", ".ogv", ".wmv", ".flv", ".ts"})
    if (ext == v) return true;
  return false;
}

}  // namespace fer::data
