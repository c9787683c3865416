// fer_serve: the emotions of the faces in a photo, over HTTP, with a web page to try it on photos
// and on the webcam.
//
//   fer_serve [--host 127.0.0.1] [--port 8080] [--threads 8] [--checkpoint FILE]
//             [--max-upload-mb 10] [--max-side 4096] [--device cpu] [--ort-dir DIR] [--quiet]
//             [--max-live-sessions 64]
//
// Routes:
//   GET  /                 the page (apps/web/, embedded into the binary at build time)
//   GET  /app.js, ...      its other files
//   GET  /healthz          {"status": "ok", "model", "checkpoint", "tta", "classes", "uptime_s", ...}
//   POST /api/predict      the image as the raw body (Content-Type image/jpeg or image/png) or as
//                          multipart/form-data with a "file" field; ?detect=0 takes the whole
//                          image as one face crop (FER2013 style). Answer:
//                          {"faces": [{"box": [x, y, w, h], "emotion", "confidence", "emotions"}],
//                           "width", "height", "elapsed_ms"}
//                          ?session=ID (the live webcam mode) makes the image a frame of a stream:
//                          each face gets a "track" id kept across the session's frames, and
//                          &smooth=0.5 smooths each track's probabilities (apps/inference/live_tracks.h:
//                          at most --max-live-sessions sessions, each dropped after 60 s unseen)
//   GET  /api/model.json, /api/model.onnx, /ort/<file>
//                          the page's option to run the model in the browser (onnxruntime-web):
//                          apps/serve/browser_model.h
//
//   curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg http://127.0.0.1:8080/api/predict
//   curl -F file=@photo.jpg 'http://127.0.0.1:8080/api/predict?detect=0'
//
// Bad input is answered, never crashed on: every error is JSON {"error": "..."} with a 4xx status
// (400 undecodable, truncated or oversized-dimension image, empty body, bad parameter; 404 unknown
// route; 413 body over --max-upload-mb; 415 other content types). Dimensions are checked against
// --max-side from the image header before any pixel is decoded (data/image.h), and the body size
// by httplib before it is read. Uploads live in memory only; nothing is written to disk.
//
// Concurrency: httplib serves each connection on a pool of --threads workers; decoding and face
// detection run in parallel, the model's forward pass is serialised inside FaceAnalyzer. The
// kernels' own threads are set by FER_THREADS (or --cpu-threads). --port 0 picks a free port; the
// chosen address is printed as "fer_serve: listening on http://HOST:PORT" (tests read it).
// SIGINT / SIGTERM stop the server cleanly (exit 0).
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "apps/cli/args.h"
#include "apps/cli/shared_flags.h"
#include "apps/inference/face_analyzer.h"
#include "apps/inference/face_tracker.h"
#include "apps/inference/live_tracks.h"
#include "apps/serve/browser_model.h"
#include "apps/serve/guarded_server.h"
#include "apps/serve/requests.h"
#include "data/image.h"
#include "data/video.h"
#include "engine/backend.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "fer_web_assets.h"

using namespace fer;
using serve::send_error;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct ServerConfig {
  std::string checkpoint;  // the file loaded
  std::string model_name;  // the checkpoint's "model" metadata (its architecture)
  std::string tta;         // test-time augmentation (--tta)
  data::ImageLimits limits;
  serve::UploadLimits uploads;     // --max-upload-mb, --max-video-mb: request bodies
  double max_video_seconds = 120;  // --max-video-seconds
  double video_fps = 5;            // --video-fps: frames analysed per second of video
  bool quiet = false;
};

// What /api/predict needs: the two analyzers (photo with detection; whole image as one face),
// the live sessions' face tracks and the limits. All three are thread-safe.
struct Service {
  ServerConfig config;
  std::unique_ptr<FaceAnalyzer> detecting;
  std::unique_ptr<FaceAnalyzer> whole_image;
  std::unique_ptr<LiveTracks> live;
  Clock::time_point started = Clock::now();
  std::atomic<uint64_t> requests{0}, predictions{0}, errors{0};
};

// POST /api/video: a video upload (raw body video/* or application/octet-stream, or the multipart
// "file" field), read from memory (never written to disk), its duration checked before any frame
// is decoded, --video-fps frames per second analysed with face tracks and smoothing. The answer:
//   {"video": {width, height, fps, duration, container, codec}, "frames": [{"frame", "time",
//    "faces": [... with "track"]}], "tracks": [per-track summaries], "elapsed_ms"}
void handle_video(Service& service, const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  res.set_header("Cache-Control", "no-store");
  const ServerConfig& config = service.config;
  serve::Upload upload;
  if (!serve::video_upload(req, config.uploads, res, upload)) return;
  const std::string* bytes = upload.bytes;
  const std::string& name = upload.name;
  const std::vector<std::string>& names = service.detecting->class_names();
  nlohmann::json frames = nlohmann::json::array();
  std::vector<TrackSummary> tracks;
  data::VideoInfo info;
  try {
    data::VideoReader reader(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), name,
                             {1, config.video_fps}, config.limits.max_side);
    info = reader.info();
    if (info.duration_s > config.max_video_seconds) {
      char message[160];
      std::snprintf(message, sizeof message, "video of %.1f s is longer than the limit of %.0f s (--max-video-seconds)",
                    info.duration_s, config.max_video_seconds);
      send_error(res, 413, message);
      return;
    }
    TrackerOptions tracking;
    tracking.smoothing = 0.5f;
    FaceTracker tracker(names, tracking);
    const int64_t most = static_cast<int64_t>(config.max_video_seconds * config.video_fps) + 1;
    data::VideoFrame f;
    for (int64_t n = 0; n < most && reader.next(f); ++n) {
      std::vector<FacePrediction> faces = service.detecting->analyze(f.image);
      const std::vector<int> ids = tracker.update(f.time_s, faces);
      frames.push_back({{"frame", f.index}, {"time", std::round(f.time_s * 1000) / 1000},
                        {"faces", nlohmann::json::parse(faces_to_json(faces, names, ids))}});
    }
    tracks = tracker.summaries();
  } catch (const Error& e) {
    send_error(res, 400, e.what());
    return;
  }
  service.predictions.fetch_add(1);
  nlohmann::json answer{{"video", {{"width", info.width}, {"height", info.height}, {"fps", info.fps},
                                   {"duration", info.duration_s}, {"container", info.container},
                                   {"codec", info.codec}}},
                        {"frames", frames},
                        {"tracks", nlohmann::json::parse(tracks_to_json(tracks, names))},
                        {"elapsed_ms", ms_since(t0)}};
  res.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void handle_predict(Service& service, const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  res.set_header("Cache-Control", "no-store");
  bool detect = true;
  serve::LiveParams live;
  if (!serve::detect_param(req, res, detect) || !serve::live_params(req, res, live)) return;
  serve::Upload upload;
  if (!serve::image_upload(req, res, upload)) return;
  const std::string* bytes = upload.bytes;
  const std::string& name = upload.name;
  if (bytes->size() > service.config.limits.max_bytes) {
    send_error(res, 413, "image '" + name + "': " + std::to_string(bytes->size()) +
                             " bytes exceeds the limit of " +
                             std::to_string(service.config.limits.max_bytes) + " bytes");
    return;
  }
  data::GrayImage image;
  try {  // the decoder bounds size and dimensions before touching pixels
    image = data::decode_image(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(),
                               name, service.config.limits);
  } catch (const Error& e) {
    send_error(res, 400, e.what());
    return;
  }
  const FaceAnalyzer& analyzer = detect ? *service.detecting : *service.whole_image;
  std::vector<FacePrediction> faces = analyzer.analyze(image);  // failures here are 500s
  std::vector<int> tracks;  // a live session's frame: its faces' track ids
  if (!live.session.empty()) {
    const double now_s = std::chrono::duration<double>(Clock::now() - service.started).count();
    tracks = service.live->update(live.session, now_s, live.smoothing, faces);
  }
  service.predictions.fetch_add(1);
  char tail[96];
  std::snprintf(tail, sizeof tail, ",\"width\":%d,\"height\":%d,\"elapsed_ms\":%.3f}", image.width,
                image.height, ms_since(t0));
  res.set_content("{\"faces\":" + faces_to_json(faces, analyzer.class_names(), tracks) + tail,
                  "application/json");
}

std::string healthz(const Service& service) {
  const double uptime = std::chrono::duration<double>(Clock::now() - service.started).count();
  nlohmann::json j{{"status", "ok"},
                   {"model", service.config.model_name},
                   {"checkpoint", service.config.checkpoint},
                   {"tta", service.config.tta},
                   {"classes", service.detecting->class_names()},
                   {"uptime_s", uptime},
                   {"requests", service.requests.load()},
                   {"predictions", service.predictions.load()},
                   {"errors", service.errors.load()},
                   {"live_sessions", service.live->sessions()},
                   {"max_upload_bytes", service.config.limits.max_bytes},
                   {"max_side", service.config.limits.max_side}};
  return j.dump();
}

// Fills the body of an error httplib raised itself (unknown route, body over the limit, ...).
httplib::Server::HandlerResponse fill_error(const Service& service, const httplib::Request& req,
                                            httplib::Response& res) {
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
  std::string message;
  switch (res.status) {
    case 404: message = "no such route: " + req.method + " " + req.path; break;
    case 413:
      // httplib caps form-urlencoded bodies at 8 KiB itself: what `curl --data-binary` sends.
      if (serve::media_type(req.get_header_value("Content-Type")) == "application/x-www-form-urlencoded")
        message = "form-urlencoded bodies are not accepted: send the image with Content-Type "
                  "image/jpeg or image/png (curl -H 'Content-Type: image/jpeg' --data-binary "
                  "@photo.jpg), or as multipart/form-data (curl -F file=@photo.jpg)";
      else
        message = "request body larger than the limit of " +
                  std::to_string(service.config.limits.max_bytes >> 20) + " MiB (--max-upload-mb)";
      break;
    default: message = "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path;
  }
  send_error(res, res.status, message);
  return httplib::Server::HandlerResponse::Handled;
}

// Bytes of a request's body as httplib delivered it: the raw body, or a multipart form's parts.
size_t body_bytes(const httplib::Request& req) {
  size_t n = req.body.size();
  for (const auto& [name, file] : req.files) n += file.content.size();
  return n;
}

void add_routes(httplib::Server& server, Service& service) {
  server.set_pre_routing_handler([&service](const httplib::Request& req, httplib::Response& res) {
    return serve::check_request_head(service.config.uploads, req, res);
  });
  for (const web::Asset& asset : web::kAssets) {
    auto serve_asset = [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
      res.set_header("Cache-Control", "no-cache");
    };
    std::string pattern = "/";
    for (const char* c = asset.path; *c; ++c) pattern += (*c == '.' ? std::string("\\.") : std::string(1, *c));
    server.Get(pattern, serve_asset);
    if (std::string(asset.path) == "index.html") server.Get("/", serve_asset);
  }
  server.Get("/healthz", [&service](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(healthz(service), "application/json");
  });
  server.Post("/api/predict", [&service](const httplib::Request& req, httplib::Response& res) {
    handle_predict(service, req, res);
  });
  server.Post("/api/video", [&service](const httplib::Request& req, httplib::Response& res) {
    handle_video(service, req, res);
  });
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [&service](const httplib::Request& req, httplib::Response& res) {
        return fill_error(service, req, res);
      }));
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                  std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    std::fprintf(stderr, "fer_serve: %s %s failed: %s\n", req.method.c_str(), req.path.c_str(),
                 what.c_str());
    send_error(res, 500, "internal error: " + what);
  });
  server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    // 'wasm-unsafe-eval': onnxruntime-web compiles its WebAssembly (the in-browser option).
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                   "img-src 'self' blob: data:; media-src 'self' blob:");
  });
  server.set_logger([&service](const httplib::Request& req, const httplib::Response& res) {
    service.requests.fetch_add(1);
    if (res.status >= 400) service.errors.fetch_add(1);
    if (!service.config.quiet)
      std::fprintf(stderr, "fer_serve: %s %s %d (%zu bytes in, %zu out)\n", req.method.c_str(),
                   req.path.c_str(), res.status, body_bytes(req), res.body.size());
  });
}

// Where fer_serve's flags go.
struct ServeFlags {
  AnalyzerOptions analyzer;  // the default checkpoint is found from any working directory
  std::string host, tta, device;
  int64_t port = 8080, threads = 64, max_upload_mb = 10, max_side = 4096, cpu_threads = 0;
  double request_timeout = 10;
  int64_t max_video_mb = 50;
  double max_video_seconds = 120, video_fps = 5;
  int64_t max_connections = 256, max_per_client = 32;
  int64_t max_live_sessions = 64;
  std::string precision;
  std::string ort_dir;
  bool quiet = false;
};

int run(int argc, char** argv) {
  ServeFlags flags;
  AnalyzerOptions& options = flags.analyzer;
  cli::Args args("fer_serve", "Serve facial-expression recognition over HTTP, with a web page "
                              "(photo upload and live webcam).");
  args.bind({
      {"host", "127.0.0.1", "address to bind (0.0.0.0 to serve other machines)", &flags.host},
      {"port", "8080", "TCP port (0 = any free port, printed at start)", &flags.port},
      {"threads", "64", "HTTP worker threads (one connection each; inference itself runs one model call at a time)",
       &flags.threads},
      {"request-timeout", "10", "seconds to read a whole request (headers and body); slower clients are dropped",
       &flags.request_timeout},
      {"max-connections", "256", "open connections at most; more are answered 503", &flags.max_connections},
      {"max-video-mb", "50", "largest video upload accepted (POST /api/video), MiB", &flags.max_video_mb},
      {"max-video-seconds", "120", "longest video accepted, seconds (checked before decoding)", &flags.max_video_seconds},
      {"video-fps", "5", "frames analysed per second of an uploaded video", &flags.video_fps},
      {"max-live-sessions", "64", "live webcam streams whose face tracks are kept (?session=ID); a new one "
                                  "evicts the least recently used", &flags.max_live_sessions},
      {"max-per-client", "32", "open connections from one address at most; more are answered 503",
       &flags.max_per_client},
      {"checkpoint", kDefaultCheckpoint, "model checkpoint; several, comma-separated, or an ensemble manifest (NAME.json, or the name of one in models/pretrained) are an ensemble (mean probabilities)",
       &options.checkpoint},
      {"tta", "none", "test-time augmentation: none | flip | tencrop", &flags.tta},
      {"max-upload-mb", "10", "largest request body accepted, MiB", &flags.max_upload_mb},
      {"max-side", "4096", "largest image width or height accepted, pixels", &flags.max_side},
      {"device", "cpu", "cpu | cuda", &flags.device},
      {"cpu-threads", "0", "CPU kernel threads (0 = FER_THREADS or all cores)", &flags.cpu_threads},
      cli::precision_flag(flags.precision),
      {"ort-dir", "", "onnxruntime-web's dist/ folder for the page's in-browser option (default: "
                      "apps/web/ort/node_modules/onnxruntime-web/dist, found as checkpoints are)",
       &flags.ort_dir},
      {"quiet", "false", "do not log each request to stderr", &flags.quiet},
  });
  args.parse(argc, argv);

  const int64_t port = flags.port, threads = flags.threads;
  const int64_t max_upload_mb = flags.max_upload_mb, max_side = flags.max_side;
  FER_CHECK(port >= 0 && port <= 65535, "--port ", port, ": expected 0..65535");
  FER_CHECK(threads >= 1 && threads <= 1024, "--threads ", threads, ": expected 1..1024");
  FER_CHECK(max_upload_mb >= 1 && max_upload_mb <= 1024, "--max-upload-mb ", max_upload_mb,
            ": expected 1..1024");
  FER_CHECK(max_side >= 16 && max_side <= 16384, "--max-side ", max_side, ": expected 16..16384");
  if (flags.cpu_threads > 0) set_cpu_threads(static_cast<int>(flags.cpu_threads));
  cli::apply_cpu_kernels("fer_serve", flags.precision);

  Service service;
  ServerConfig& config = service.config;
  config.quiet = flags.quiet;
  config.limits.max_bytes = static_cast<size_t>(max_upload_mb) << 20;
  config.limits.max_side = static_cast<int>(max_side);
  config.limits.max_pixels = std::min<int64_t>(config.limits.max_pixels, max_side * max_side);
  FER_CHECK(flags.max_video_mb >= 1 && flags.max_video_mb <= 4096, "--max-video-mb ", flags.max_video_mb, ": expected 1..4096");
  FER_CHECK(flags.max_video_seconds > 0 && flags.video_fps > 0 && flags.video_fps <= 60,
            "--max-video-seconds must be positive and --video-fps in (0, 60]");
  config.uploads.max_image_bytes = config.limits.max_bytes;
  config.uploads.max_video_bytes = static_cast<size_t>(flags.max_video_mb) << 20;
  config.max_video_seconds = flags.max_video_seconds;
  config.video_fps = flags.video_fps;
  FER_CHECK(flags.max_live_sessions >= 1 && flags.max_live_sessions <= 100000, "--max-live-sessions ",
            flags.max_live_sessions, ": expected 1..100000");

  options.tta = parse_tta(flags.tta);
  options.device = cli::device_or_cpu("fer_serve", flags.device);
  service.detecting = std::make_unique<FaceAnalyzer>(options);
  options.detect = false;
  service.whole_image = std::make_unique<FaceAnalyzer>(options);
  LiveTrackOptions live_options;
  live_options.max_sessions = static_cast<size_t>(flags.max_live_sessions);
  service.live = std::make_unique<LiveTracks>(service.detecting->class_names(), live_options);
  config.checkpoint = service.detecting->checkpoint_path();
  config.model_name = service.detecting->model_name();
  config.tta = flags.tta;
  serve::BrowserModel browser_model({config.checkpoint,
                                     flags.ort_dir.empty() ? serve::find_ort_dir() : flags.ort_dir,
                                     options.margin, flags.tta});
  if (!browser_model.unavailable_reason().empty() && !flags.quiet)
    std::fprintf(stderr, "fer_serve: note: no in-browser option on the page: %s\n",
                 browser_model.unavailable_reason().c_str());

  // SIGINT / SIGTERM are taken by a waiting thread (blocked everywhere else: the pool threads
  // inherit the mask), which stops the server; no work happens inside a signal handler.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  FER_CHECK(flags.request_timeout > 0 && flags.request_timeout <= 3600, "--request-timeout ",
            flags.request_timeout, ": expected seconds in (0, 3600]");
  FER_CHECK(flags.max_connections >= 1 && flags.max_per_client >= 1 && flags.max_per_client <= flags.max_connections,
            "--max-connections ", flags.max_connections, " / --max-per-client ", flags.max_per_client,
            ": expected 1 <= per client <= total");
  ServerGuards guards;
  guards.request_deadline = std::chrono::milliseconds(static_cast<int64_t>(flags.request_timeout * 1000));
  guards.max_connections = static_cast<int>(flags.max_connections);
  guards.max_per_client = static_cast<int>(flags.max_per_client);
  GuardedServer server(guards);
  server.new_task_queue = [n = static_cast<size_t>(threads)] { return new httplib::ThreadPool(n); };
  // Multipart framing is allowed on top of the image's own limit (checked again per image).
  // (each route's own limit is checked from the Content-Length before the body is read)
  server.set_payload_max_length(std::max(config.limits.max_bytes + (64u << 10), config.uploads.max_video_bytes + (64u << 10)));
  server.set_tcp_nodelay(true);  // else Nagle + delayed ACKs add ~40 ms per small answer
  add_routes(server, service);
  browser_model.add_routes(server);

  const std::string& host = flags.host;
  FER_CHECK(server.bind(host, static_cast<int>(port)), "cannot bind ", host, ":", port,
            " (address in use, or not an address of this machine?)");
  const int bound_port = server.bound_port();

  std::atomic<bool> finished{false};
  std::thread stopper([&] {
    const timespec tick{0, 100'000'000};
    while (!finished) {
      if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
        while (!finished) {  // repeat: a stop() before listening has begun would be lost
          server.stop();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    }
  });
  std::printf("fer_serve: listening on http://%s:%d (model %s, %d classes, %lld threads)\n",
              host.c_str(), bound_port, config.model_name.c_str(),
              static_cast<int>(service.detecting->class_names().size()),
              static_cast<long long>(threads));
  std::fflush(stdout);
  const bool ok = server.listen_after_bind();
  finished = true;
  stopper.join();
  std::printf("fer_serve: stopped after %llu requests\n",
              static_cast<unsigned long long>(service.requests.load()));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_main("fer_serve", run, argc, argv); }
