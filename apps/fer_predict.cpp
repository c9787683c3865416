// fer_predict: the emotions of the faces in photos, from the command line.
//
//   fer_predict photo.jpg                          faces found, one JSON line per image
//   fer_predict --format csv --out faces.csv DIR   every .jpg/.jpeg/.png under DIR (recursive)
//   fer_predict --list files.txt --annotate out/   paths one per line; pictures with boxes
//   fer_predict --no-detect val/happy              the images are already face crops (FER2013)
//
// JSON (one object per line per image, in input order):
//   {"file": "photo.jpg", "width": 640, "height": 480, "faces": [{"box": [x, y, w, h],
//    "emotion": "happy", "confidence": 0.93, "emotions": {"angry": 0.01, ...}}, ...]}
// CSV (one row per face; an image without a face has no row):
//   file,face,x,y,width,height,emotion,confidence,p_angry,...,p_neutral
// --annotate DIR writes DIR/<name>.png: the photo with each face boxed and labelled
// "emotion 93%" in the emotion's colour.
//
// Videos (.mp4 .webm .avi .mkv .mov .y4m ...; data/video.h) are read frame by frame with FFmpeg,
// every frame or a sample of them (--every N, --fps F): a JSON line per analysed frame
//   {"file": "clip.mp4", "frame": 25, "time": 1.0, "width": 640, "height": 480, "faces": [...]}
// or a CSV row per face per frame (with frame, time and track columns whenever a video is among
// the inputs). Faces keep a track id across frames (apps/inference/face_tracker.h; --smooth S
// smooths each track's probabilities, --timeline DIR writes each track's summary and chart), a progress line with frames/s and ETA, frames/s and faces/s at the end, and with
// --annotate DIR the video with boxes and labels as DIR/<name>.mp4. A video that breaks off
// stops the run with an error naming it, the frame and the time; what was written stays.
//
// Work goes in chunks of --batch images: decoded on all threads, faces detected, then all faces
// of the chunk classified in shared model batches (FaceAnalyzer::analyze_batch). A progress line
// (images done/total, faces/s, ETA) goes to stderr while it runs, and a summary at the end.
// An image that cannot be read or decoded stops the run with an error naming it, or with
// --skip-bad is reported on stderr, counted and left out.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "apps/cli/args.h"
#include "apps/cli/path_list.h"
#include "apps/cli/shared_flags.h"
#include "apps/inference/face_analyzer.h"
#include "apps/inference/face_tracker.h"
#include "apps/report/charts.h"
#include "apps/report/csv.h"
#include "apps/report/canvas.h"
#include "apps/report/png.h"
#include "apps/training/progress.h"
#include "data/image.h"
#include "data/video.h"
#include "engine/backend.h"
#include "engine/error.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {


bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// The inputs in order: positional files as given, folders expanded (sorted, recursive), then the
// --list file's lines (blank lines and lines starting with '#' skipped).
std::vector<std::string> collect_inputs(const std::vector<std::string>& positional, const std::string& list) {
  std::vector<std::string> out;
  for (const std::string& arg : positional) {
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(arg, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && is_image_name(it->path())) found.push_back(it->path().string());
      FER_CHECK(!ec, "folder '", arg, "': cannot list it (", ec.message(), ")");
      FER_CHECK(!found.empty(), "folder '", arg, "' holds no .jpg/.jpeg/.png images");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(arg);  // a missing or unreadable file is reported when it is read
    }
  }
  if (!list.empty()) {
    std::ifstream in(list, std::ios::binary);
    FER_CHECK(in.good(), "--list '", list, "': cannot open it");
    std::ostringstream text;
    text << in.rdbuf();
    FER_CHECK(!in.bad(), "--list '", list, "': cannot read it");
    for (std::string& path : cli::parse_path_list(text.str(), list)) out.push_back(std::move(path));
  }
  FER_CHECK(!out.empty(), "no input images: give image files, folders or --list FILE (see --help)");
  return out;
}

// The photo with every face boxed and labelled "emotion 93%" in its emotion's colour.
plot::Canvas annotate(const data::RgbImage& rgb, const std::vector<FacePrediction>& faces) {
  plot::Canvas canvas(rgb.width, rgb.height);
  for (int y = 0; y < rgb.height; ++y)
    for (int x = 0; x < rgb.width; ++x) {
      const uint8_t* p = rgb.pixels.data() + (static_cast<size_t>(y) * rgb.width + x) * 3;
      canvas.set(x, y, plot::Color{p[0], p[1], p[2]});
    }
  const int side = std::min(rgb.width, rgb.height);
  const int text_scale = std::max(1, side / 250);
  for (const FacePrediction& f : faces) {
    const plot::Color color = plot::palette(f.label);
    const int thickness = std::max(2, std::min(f.box.width, f.box.height) / 60);
    canvas.rect(f.box.x, f.box.y, f.box.width, f.box.height, color, thickness);
    char label[96];
    std::snprintf(label, sizeof label, "%s %.0f%%", f.emotion.c_str(), 100.0 * f.confidence);
    const int pad = text_scale * 2;
    const int tw = plot::Canvas::text_width(label, text_scale) + 2 * pad;
    const int th = plot::Canvas::text_height(label, text_scale) + 2 * pad;
    // Above the box when there is room, else inside its top edge.
    const int ly = f.box.y - th >= 0 ? f.box.y - th : f.box.y;
    const int lx = std::clamp(f.box.x, 0, std::max(0, rgb.width - tw));
    canvas.fill_rect(lx, ly, tw, th, color);
    canvas.text(lx + pad, ly + pad, label, plot::colors::white, text_scale);
  }
  return canvas;
}

// --timeline DIR: DIR/<stem>_tracks.json, and per track DIR/<stem>_track<N>.png, a line per
// emotion of its (smoothed) probabilities over time.
void write_timeline(const std::string& dir, const std::string& video, const std::vector<TrackSummary>& tracks,
                    const std::vector<std::string>& names) {
  fs::create_directories(dir);
  const std::string stem = fs::path(video).stem().string();
  std::ofstream(fs::path(dir) / (stem + "_tracks.json")) << tracks_to_json(tracks, names) << "\n";
  for (const TrackSummary& t : tracks) {
    std::vector<plot::Series> series;
    for (size_t c = 0; c < names.size(); ++c) {
      plot::Series s{names[c], t.times, {}};
      for (const auto& p : t.probabilities) s.y.push_back(p[c]);
      series.push_back(std::move(s));
    }
    plot::line_chart(series, stem + ": face track " + std::to_string(t.id), "time (s)", "probability",
                     (fs::path(dir) / (stem + "_track" + std::to_string(t.id) + ".png")).string());
  }
}

// An output name per input, unique within the run: DIR/<stem>.png, then <stem>_2.png, ...
std::string annotation_path(const std::string& dir, const std::string& input, std::set<std::string>& used) {
  std::string stem = fs::path(input).stem().string();
  if (stem.empty()) stem = "image";
  std::string name = stem + ".png";
  for (int k = 2; used.count(name); ++k) name = stem + "_" + std::to_string(k) + ".png";
  used.insert(name);
  return (fs::path(dir) / name).string();
}


// Where fer_predict's flags go: the analyzer's options, and how the app reads and writes.
struct PredictFlags {
  AnalyzerOptions analyzer;
  std::string list, format, out, annotate, device;
  int64_t batch = 32, threads = 0;
  std::string precision;
  bool skip_bad = false, progress = true;
  int64_t every = 1;
  double fps = 0;
  float smooth = 0;
  std::string timeline;
};

int run(int argc, char** argv) {
  PredictFlags flags;
  AnalyzerOptions& options = flags.analyzer;
  cli::Args args("fer_predict",
                 "Find the faces in photos and predict their emotions.\n"
                 "Inputs: image files (.jpg/.jpeg/.png), folders (searched recursively) and/or --list "
                 "FILE.\nOutput: one JSON object per image per line (or CSV rows, one per face) on "
                 "stdout or --out.");
  args.bind({
      {"checkpoint", kDefaultCheckpoint, "model checkpoint; several, comma-separated, or an ensemble manifest (NAME.json, or the name of one in models/pretrained) are an ensemble (mean probabilities)",
       &options.checkpoint},
      {"list", "", "a text file of image paths, one per line ('#' starts a comment)", &flags.list},
      {"detect", "true", "find faces with the Haar cascade (--no-detect: each image is one face crop)", &options.detect},
      {"format", "json", "json (one line per image) | csv (one row per face)", &flags.format},
      {"out", "", "write the results to this file (default: stdout)", &flags.out},
      {"annotate", "", "write each image with boxes and labels as DIR/<name>.png", &flags.annotate},
      {"tta", "none", "test-time augmentation: none | flip | tencrop",
       [&options](const std::string& v) { options.tta = parse_tta(v); }},
      {"min-face", "24", "smallest face searched, pixels", &options.min_face},
      {"scale-factor", "1.1", "detector pyramid step (> 1; smaller finds more, slower)", &options.scale_factor},
      {"min-neighbors", "4", "raw detections a face needs (more: fewer false faces)", &options.min_neighbors},
      {"margin", "0.1", "crop margin around a detected face, fraction of its side", &options.margin},
      {"max-side", "2048", "detect on a copy of large photos shrunk to this side (0: never)", &options.max_side},
      {"cascade", "", "Haar cascade XML (default: opencv-data's haarcascade_frontalface_alt2.xml)", &options.cascade},
      {"profile", "false", "also opencv-data's profile-face cascade, both sides (finds turned heads; 2-3x slower)",
       &options.profile},
      {"merge", "true", "merge boxes of the same face (two cascades, neighbouring scales, a part inside a face)",
       &options.merge_duplicates},
      {"batch", "32", "images per processing chunk", &flags.batch},
      {"threads", "0", "CPU threads (0 = FER_THREADS or all cores)", &flags.threads},
      cli::precision_flag(flags.precision),
      {"device", "cpu", "cpu | cuda", &flags.device},
      {"skip-bad", "false", "report and count unreadable images instead of stopping", &flags.skip_bad},
      {"every", "1", "videos: analyse every N-th frame", &flags.every},
      {"fps", "0", "videos: analyse at most F frames per second of video (0: as --every says)", &flags.fps},
      {"smooth", "0", "videos: smooth each face track's probabilities over time, p = s p_before + (1 - s) p_now (0: off)",
       &flags.smooth},
      {"timeline", "", "videos: write DIR/<name>_tracks.json (each face track's summary) and DIR/<name>_track<N>.png "
                       "(its emotions over time)", &flags.timeline},
      {"progress", "true", "progress line on stderr (--no-progress to silence it)", &flags.progress},
  });
  args.parse(argc, argv);

  if (flags.threads > 0) set_cpu_threads(static_cast<int>(flags.threads));
  cli::apply_cpu_kernels("fer_predict", flags.precision);
  const std::string& format = flags.format;
  FER_CHECK(format == "json" || format == "csv", "--format: expected json or csv, got '", format, "'");
  const int64_t batch = flags.batch;
  FER_CHECK(batch >= 1 && batch <= 4096, "--batch: expected 1..4096, got ", batch);
  const bool skip_bad = flags.skip_bad;
  const std::string& annotate_dir = flags.annotate;
  options.device = cli::device_or_cpu("fer_predict", flags.device);

  const std::vector<std::string> inputs = collect_inputs(args.positional(), flags.list);
  const FaceAnalyzer analyzer(options);
  const std::vector<std::string>& names = analyzer.class_names();

  // Output: stdout, or a temporary file renamed over --out when everything is written (a device
  // or pipe such as /dev/null is written directly).
  const std::string& out_path = flags.out;
  std::error_code ec;
  const bool out_special = !out_path.empty() && fs::exists(out_path, ec) && !fs::is_regular_file(out_path, ec);
  const std::string out_write = out_special ? out_path : out_path + ".tmp";
  std::ofstream file_out;
  if (!out_path.empty()) {
    if (!out_special && fs::path(out_path).has_parent_path())
      fs::create_directories(fs::path(out_path).parent_path());
    file_out.open(out_write, std::ios::binary);
    FER_CHECK(file_out.good(), "--out: cannot write '", out_write, "'");
  }
  std::ostream& out = out_path.empty() ? std::cout : file_out;
  const bool any_video = std::any_of(inputs.begin(), inputs.end(), data::is_video_path);
  if (format == "csv") {
    out << (any_video ? "file,frame,time,face,track,x,y,width,height,emotion,confidence"
                      : "file,face,x,y,width,height,emotion,confidence");
    for (const std::string& n : names) out << ",p_" << report::csv_field(n);
    out << "\n";
  }
  if (!annotate_dir.empty()) fs::create_directories(annotate_dir);
  std::set<std::string> annotation_names;

  const size_t image_count = static_cast<size_t>(std::count_if(inputs.begin(), inputs.end(),
                                                               [](const std::string& p) { return !data::is_video_path(p); }));
  const bool show_progress = flags.progress && (image_count > 1 || any_video);
  const bool tty = isatty(fileno(stderr));
  const Clock::time_point t0 = Clock::now();
  Clock::time_point last_progress = t0;
  int64_t done = 0, faces_total = 0, skipped = 0, without_face = 0, frames_total = 0;

  // One image's (or one frame's) faces: a JSON line, or a CSV row per face. frame < 0: an image.
  auto write_faces = [&](const std::string& path, int64_t frame, double time, int width, int height,
                         const std::vector<FacePrediction>& faces, const std::vector<int>& tracks = {}) {
    char num[32];
    if (format == "json") {
      // A file name that is not UTF-8 gets U+FFFD in place of its bad bytes (JSON is UTF-8).
      out << "{\"file\":" << nlohmann::json(path).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (frame >= 0) {
        std::snprintf(num, sizeof num, "%.3f", time);
        out << ",\"frame\":" << frame << ",\"time\":" << num;
      }
      out << ",\"width\":" << width << ",\"height\":" << height << ",\"faces\":" << faces_to_json(faces, names, tracks)
          << "}\n";
      return;
    }
    for (size_t i = 0; i < faces.size(); ++i) {
      const FacePrediction& f = faces[i];
      out << report::csv_field(path);
      if (any_video) {
        std::snprintf(num, sizeof num, "%.3f", time);
        out << ',' << std::max<int64_t>(frame, 0) << ',' << (frame >= 0 ? num : "0");
      }
      std::snprintf(num, sizeof num, "%.6f", f.confidence);
      out << ',' << i;
      if (any_video) out << ',' << (i < tracks.size() ? tracks[i] : 0);
      out << ',' << f.box.x << ',' << f.box.y << ',' << f.box.width << ',' << f.box.height << ','
          << report::csv_field(f.emotion) << ',' << num;
      for (float p : f.probabilities) {
        std::snprintf(num, sizeof num, "%.6f", p);
        out << ',' << num;
      }
      out << "\n";
    }
  };

  // A run of image inputs, in chunks of --batch: decoded on all threads, then classified together.
  auto process_images = [&](const std::vector<std::string>& paths) {
    for (size_t begin = 0; begin < paths.size(); begin += static_cast<size_t>(batch)) {
      const size_t n = std::min(paths.size() - begin, static_cast<size_t>(batch));
      // Decode the chunk on all threads; a failure is kept per image.
      std::vector<std::vector<uint8_t>> bytes(n);
      std::vector<data::GrayImage> images(n);
      std::vector<std::string> errors(n);
      const data::ImageLimits limits;
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t k = 0; k < static_cast<int64_t>(n); ++k) {
        const std::string& path = paths[begin + k];
        try {
          bytes[k] = data::read_file_bytes(path, limits.max_bytes);
          images[k] = data::decode_image(bytes[k].data(), bytes[k].size(), path, limits);
          if (annotate_dir.empty()) std::vector<uint8_t>().swap(bytes[k]);  // only kept to draw on
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      }
      std::vector<data::GrayImage> good;
      std::vector<size_t> good_index;
      for (size_t k = 0; k < n; ++k) {
        if (!errors[k].empty()) {
          if (!skip_bad) fail(errors[k], " (--skip-bad to report bad images and go on)");
          if (show_progress && tty) std::fputc('\n', stderr);
          std::fprintf(stderr, "fer_predict: skipped: %s\n", errors[k].c_str());
          ++skipped;
          continue;
        }
        good_index.push_back(k);
        good.push_back(std::move(images[k]));
      }
      const std::vector<std::vector<FacePrediction>> results = analyzer.analyze_batch(good);
      for (size_t g = 0; g < good.size(); ++g) {
        const size_t k = good_index[g];
        const std::string& path = paths[begin + k];
        const std::vector<FacePrediction>& faces = results[g];
        faces_total += static_cast<int64_t>(faces.size());
        without_face += faces.empty();
        write_faces(path, -1, 0.0, good[g].width, good[g].height, faces);
        if (!annotate_dir.empty()) {
          const data::RgbImage rgb = data::decode_image_rgb(bytes[k].data(), bytes[k].size(), path, limits);
          plot::save_png(annotate(rgb, faces), annotation_path(annotate_dir, path, annotation_names));
        }
      }
      FER_CHECK(out.good(), "cannot write the results", out_path.empty() ? "" : " to '" + out_write + "'");
      done += static_cast<int64_t>(n);
      const double elapsed = seconds_since(t0);
      if (show_progress && (seconds_since(last_progress) >= (tty ? 0.5 : 5.0) || done == static_cast<int64_t>(image_count))) {
        last_progress = Clock::now();
        const double eta = elapsed / done * (static_cast<double>(image_count) - done);
        std::fprintf(stderr, "%sfer_predict: %lld/%zu images (%.0f%%), %lld faces, %.1f faces/s, ETA %s%s",
                     tty ? "\r" : "", static_cast<long long>(done), image_count, 100.0 * done / image_count,
                     static_cast<long long>(faces_total), faces_total / std::max(elapsed, 1e-9),
                     format_duration(eta).c_str(), tty ? "   " : "\n");
      }
    }
  };

  // A video, frame by frame (batches of frames classified together); with --annotate, the
  // analysed frames with their boxes as DIR/<name>.mp4.
  auto process_video = [&](const std::string& path) {
    data::VideoReader reader(path, {flags.every, flags.fps});
    const data::VideoInfo& info = reader.info();
    const double out_fps = flags.fps > 0 ? std::min(flags.fps, info.fps > 0 ? info.fps : flags.fps)
                                         : (info.fps > 0 ? info.fps : 25.0) / static_cast<double>(flags.every);
    const int64_t expected = info.frames > 0 ? (flags.fps > 0 && info.duration_s > 0
                                                    ? static_cast<int64_t>(info.duration_s * out_fps) + 1
                                                    : (info.frames + flags.every - 1) / flags.every)
                                             : 0;
    std::fprintf(stderr, "fer_predict: %s: %dx%d, %.2f fps, %.1f s (%s, %s), analysing %s\n", path.c_str(),
                 info.width, info.height, info.fps, info.duration_s, info.container.c_str(), info.codec.c_str(),
                 flags.fps > 0 ? (std::to_string(flags.fps) + " frames per second").c_str()
                               : flags.every > 1 ? ("every " + std::to_string(flags.every) + "th frame").c_str() : "every frame");
    std::unique_ptr<data::VideoWriter> annotated;
    if (!annotate_dir.empty()) {
      std::string name = annotation_path(annotate_dir, path, annotation_names);
      name = name.substr(0, name.size() - 4) + ".mp4";
      annotated = std::make_unique<data::VideoWriter>(name, info.width & ~1, info.height & ~1, out_fps);
    }
    // Frames per batch: the --batch, fewer for large frames (at most ~64 MB of them).
    const int64_t per_batch = std::clamp<int64_t>((64 << 20) / std::max(1, info.width * info.height), 1, batch);
    TrackerOptions tracking;
    tracking.smoothing = flags.smooth;
    FaceTracker tracker(names, tracking);
    const Clock::time_point start = Clock::now();
    int64_t frames = 0, faces_here = 0;
    std::vector<data::VideoFrame> chunk;
    for (bool more = true; more;) {
      chunk.clear();
      data::VideoFrame f;
      while (static_cast<int64_t>(chunk.size()) < per_batch && (more = reader.next(f))) chunk.push_back(std::move(f));
      std::vector<data::GrayImage> images;
      for (auto& c : chunk) images.push_back(c.image);
      std::vector<std::vector<FacePrediction>> results = analyzer.analyze_batch(images);
      for (size_t k = 0; k < chunk.size(); ++k) {
        const std::vector<int> tracks = tracker.update(chunk[k].time_s, results[k]);
        write_faces(path, chunk[k].index, chunk[k].time_s, chunk[k].image.width, chunk[k].image.height, results[k], tracks);
        faces_here += static_cast<int64_t>(results[k].size());
        if (annotated) {
          const data::RgbImage rgb = data::gray_to_rgb(chunk[k].image);
          const plot::Canvas canvas = annotate(rgb, results[k]);
          data::RgbImage drawn{rgb.width & ~1, rgb.height & ~1, {}};
          drawn.pixels.resize(static_cast<size_t>(drawn.width) * drawn.height * 3);
          for (int y = 0; y < drawn.height; ++y)
            for (int x = 0; x < drawn.width; ++x) {
              const plot::Color c = canvas.get(x, y);
              uint8_t* p = drawn.pixels.data() + (static_cast<size_t>(y) * drawn.width + x) * 3;
              p[0] = c.r, p[1] = c.g, p[2] = c.b;
            }
          annotated->write(drawn);
        }
      }
      FER_CHECK(out.good(), "cannot write the results", out_path.empty() ? "" : " to '" + out_write + "'");
      frames += static_cast<int64_t>(chunk.size());
      const double elapsed = seconds_since(start);
      if (show_progress && (seconds_since(last_progress) >= (tty ? 0.5 : 5.0) || !more)) {
        last_progress = Clock::now();
        const double rate = frames / std::max(elapsed, 1e-9);
        const std::string eta = expected > frames ? format_duration((expected - frames) / std::max(rate, 1e-9)) : "-";
        std::fprintf(stderr, "%sfer_predict: %s: frame %lld/%lld, %.1f frames/s, %lld faces, ETA %s%s", tty ? "\r" : "",
                     fs::path(path).filename().c_str(), static_cast<long long>(frames),
                     static_cast<long long>(std::max(expected, frames)), rate, static_cast<long long>(faces_here),
                     eta.c_str(), tty ? "   " : "\n");
      }
    }
    if (annotated) annotated->finish();
    if (show_progress && tty) std::fputc('\n', stderr);
    const double elapsed = seconds_since(start);
    std::fprintf(stderr, "fer_predict: %s: %lld frames analysed (%lld decoded), %lld faces in %.2f s: %.1f frames/s, %.1f faces/s\n",
                 path.c_str(), static_cast<long long>(frames), static_cast<long long>(reader.frames_decoded()),
                 static_cast<long long>(faces_here), elapsed, frames / std::max(elapsed, 1e-9),
                 faces_here / std::max(elapsed, 1e-9));
    frames_total += frames;
    faces_total += faces_here;
    const std::vector<TrackSummary> summaries = tracker.summaries();
    for (const TrackSummary& t : summaries)
      std::fprintf(stderr, "fer_predict: %s: track %d: %.2f-%.2f s, %lld frames, mostly %s (%.0f%%)\n",
                   fs::path(path).filename().c_str(), t.id, t.first_s, t.last_s, static_cast<long long>(t.frames),
                   names[static_cast<size_t>(t.dominant)].c_str(), 100.0 * t.shares[static_cast<size_t>(t.dominant)]);
    if (!flags.timeline.empty()) write_timeline(flags.timeline, path, summaries, names);
  };

  // Inputs in order: runs of images, and each video on its own. On an error, what was written
  // so far is kept (in --out) before the error is reported.
  auto finish_output = [&] {
    out.flush();
    if (!out_path.empty() && file_out.is_open()) {
      file_out.close();
      FER_CHECK(!file_out.fail(), "--out: cannot finish writing '", out_write, "'");
      if (!out_special) fs::rename(out_write, out_path);
    }
  };
  try {
    std::vector<std::string> images;
    for (const std::string& path : inputs) {
      if (!data::is_video_path(path)) {
        images.push_back(path);
        continue;
      }
      process_images(images);
      images.clear();
      process_video(path);
    }
    process_images(images);
  } catch (...) {
    if (show_progress && tty) std::fputc('\n', stderr);
    finish_output();
    throw;
  }
  if (show_progress && tty && image_count > 1) std::fputc('\n', stderr);

  finish_output();
  const double elapsed = seconds_since(t0);
  const int64_t analysed = done - skipped;
  if (image_count == 0) return 0;  // videos only: each printed its own summary
  std::fprintf(stderr,
               "fer_predict: %lld images (%lld without a face, %lld skipped), %lld faces in %.2f s: "
               "%.1f faces/s, %.2f ms per image\n",
               static_cast<long long>(analysed), static_cast<long long>(without_face),
               static_cast<long long>(skipped), static_cast<long long>(faces_total), elapsed,
               faces_total / std::max(elapsed, 1e-9), 1000.0 * elapsed / std::max<int64_t>(analysed, 1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_main("fer_predict", run, argc, argv); }
