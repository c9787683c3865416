// libFuzzer target: fer_serve's request handling on arbitrary bytes as one HTTP request, without
// sockets. httplib's parser (Debian's libcpp-httplib, the same code fer_serve runs) reads the
// request line, query string, headers and body (multipart forms into parts) from memory; then
// fer_serve's own code (apps/serve/requests.h) does what it does in the server: the pre-routing
// checks, and on the two upload routes the ?detect=, ?session= and ?smooth= parameters and the
// choice of the upload among the body and the form's fields. Anything must give an answer -
// never a crash, an exception out of a handler, or an upload that points outside the request -
// and every refusal must be a 4xx with a JSON {"error"} body. The model is not run: the routes stop where the image or
// video would be decoded (tests/fuzz/fuzz_image.cpp fuzzes the image decoder).
// Built and run by scripts/fuzz.sh (only fer_serve's code is instrumented; httplib is Debian's
// shared library, so its own parsing is exercised but not checked by the sanitizers).
#include <httplib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/serve/requests.h"

namespace {

using fer::serve::UploadLimits;

// Small limits, so that the fuzzer reaches the refusals of oversized bodies.
constexpr UploadLimits kLimits{2048, 8192};

// One request's bytes as a connection that then closes; what the server writes back is dropped.
class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, size_ - at_);
    std::memcpy(ptr, data_ + at_, n);
    at_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char*, size_t size) override { return static_cast<ssize_t>(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 40000; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 8080; }
  socket_t socket() const override { return INVALID_SOCKET; }

 private:
  const uint8_t* data_;
  size_t size_, at_ = 0;
};

// A refusal is a 4xx whose body is JSON {"error": "..."}.
void check_refusal(const httplib::Response& res) {
  if (res.status < 400 || res.status > 499) __builtin_trap();
  const nlohmann::json j = nlohmann::json::parse(res.body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_string()) __builtin_trap();
}

// The upload must be the raw body or one of the form's parts, non-empty.
void check_upload(const httplib::Request& req, const fer::serve::Upload& upload) {
  if (!upload.bytes || upload.bytes->empty()) __builtin_trap();
  bool inside = upload.bytes == &req.body;
  for (const auto& [name, part] : req.files) inside = inside || upload.bytes == &part.content;
  if (!inside) __builtin_trap();
}

class FuzzServer : public httplib::Server {
 public:
  FuzzServer() {
    set_payload_max_length(kLimits.max_video_bytes + (64u << 10));  // as fer_serve
    set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      const HandlerResponse r = fer::serve::check_request_head(kLimits, req, res);
      if (r == HandlerResponse::Handled) check_refusal(res);
      return r;
    });
    Post("/api/predict", [](const httplib::Request& req, httplib::Response& res) {
      bool detect = true;
      fer::serve::LiveParams live;
      fer::serve::Upload upload;
      if (!fer::serve::detect_param(req, res, detect) || !fer::serve::live_params(req, res, live) ||
          !fer::serve::image_upload(req, res, upload))
        return check_refusal(res);
      check_upload(req, upload);
      // What live_params lets through is what the session store accepts (live_tracks.h).
      if (live.session.size() > 64 || !(live.smoothing >= 0 && live.smoothing < 1) ||
          (live.session.empty() && live.smoothing != 0))
        __builtin_trap();
      res.set_content(detect ? "detect" : "whole", "text/plain");
    });
    Post("/api/video", [](const httplib::Request& req, httplib::Response& res) {
      fer::serve::Upload upload;
      if (!fer::serve::video_upload(req, kLimits, res, upload)) return check_refusal(res);
      check_upload(req, upload);
      if (upload.bytes->size() > kLimits.max_video_bytes) __builtin_trap();
    });
    // An exception escaping fer_serve's code would be a 500 in the server: a finding here.
    set_exception_handler([](const httplib::Request&, httplib::Response&, std::exception_ptr) {
      __builtin_trap();
    });
  }
  void serve(const uint8_t* data, size_t size) {
    MemoryStream stream(data, size);
    bool closed = false;
    process_request(stream, /*close_connection=*/true, closed, nullptr);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzServer server;
  server.serve(data, size);
  // The media type of arbitrary header text, as the routes compute it.
  const std::string type = fer::serve::media_type(std::string(reinterpret_cast<const char*>(data), size));
  if (type.find(';') != std::string::npos) __builtin_trap();
  return 0;
}
