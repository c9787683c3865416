// fer_serve's checks of the untrusted parts of a request; see requests.h.
#include "apps/serve/requests.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "apps/serve/guarded_server.h"

namespace fer::serve {

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                         nlohmann::json::error_handler_t::replace),
                  "application/json");
}

std::string media_type(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && std::isspace(static_cast<unsigned char>(type.back()))) type.pop_back();
  size_t start = 0;
  while (start < type.size() && std::isspace(static_cast<unsigned char>(type[start]))) ++start;
  type = type.substr(start);
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

httplib::Server::HandlerResponse check_request_head(const UploadLimits& limits,
                                                    const httplib::Request& req,
                                                    httplib::Response& res) {
  using R = httplib::Server::HandlerResponse;
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && encoding != "identity") {
    send_error(res, 415, "Content-Encoding " + encoding + " is not accepted: send the image bytes as they are");
    return R::Handled;
  }
  if (req.has_header("Transfer-Encoding")) {
    send_error(res, 411, "Transfer-Encoding " + req.get_header_value("Transfer-Encoding") +
                             " is not accepted: send the upload with a Content-Length");
    return R::Handled;
  }
  if (req.has_header("Content-Length")) {
    const std::string length = req.get_header_value("Content-Length");
    // At most 18 digits: below 10^18, so stoull cannot overflow.
    const bool digits = !length.empty() && length.size() <= 18 &&
                        std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
      send_error(res, 400, "Content-Length '" + length + "' is not a byte count");
      return R::Handled;
    }
    // Bodies over their route's limit are refused before they are read. An image may come with
    // up to 64 KiB of multipart framing around it.
    const bool video = req.path == "/api/video";
    const size_t limit = video ? limits.max_video_bytes : limits.max_image_bytes + (64u << 10);
    if (std::stoull(length) > limit) {
      res.set_header("Connection", "close");  // the body is not read: this connection is done
      GuardedServer::close_after_response();
      send_error(res, 413, "request body of " + length + " bytes is larger than the limit of " +
                               std::to_string(limit >> 20) + " MiB for " + req.path +
                               (video ? " (--max-video-mb)" : " (--max-upload-mb)"));
      return R::Handled;
    }
  }
  if (req.path == "/api/predict" || req.path == "/api/video") {
    if (req.method != "POST") {
      res.set_header("Allow", "POST");
      send_error(res, 405, req.method + " " + req.path + ": only POST is allowed (an upload)");
      return R::Handled;
    }
    if (!req.has_header("Content-Type")) {
      send_error(res, 415, "POST " + req.path + " without a Content-Type: send the file's type (image/jpeg, "
                           "video/mp4, ...) or multipart/form-data with a file field");
      return R::Handled;
    }
  }
  return R::Unhandled;
}

bool image_upload(const httplib::Request& req, httplib::Response& res, Upload& upload) {
  const std::string type = media_type(req.get_header_value("Content-Type"));
  if (type == "multipart/form-data") {
    for (const char* field : {"file", "image"}) {
      auto it = req.files.find(field);
      if (it == req.files.end()) continue;
      upload.bytes = &it->second.content;
      upload.name = it->second.filename.empty() ? std::string(field) : it->second.filename;
      if (upload.bytes->empty()) {
        send_error(res, 400, "the multipart field '" + std::string(field) + "' is empty");
        return false;
      }
      return true;
    }
    std::string fields;
    for (const auto& [key, part] : req.files) fields += (fields.empty() ? "" : ", ") + key;
    send_error(res, 400, "multipart/form-data body has no 'file' field (fields sent: " +
                             (fields.empty() ? std::string("none") : fields) + ")");
    return false;
  }
  if (req.body.empty()) {
    send_error(res, 400, "empty request body: send the image bytes (Content-Type image/jpeg or "
                         "image/png) or multipart/form-data with a 'file' field");
    return false;
  }
  if (type != "image/jpeg" && type != "image/jpg" && type != "image/png" &&
      type != "application/octet-stream") {
    send_error(res, 415, "unsupported Content-Type '" + (type.empty() ? std::string("(none)") : type) +
                             "': send image/jpeg or image/png bytes, or multipart/form-data with "
                             "a 'file' field");
    return false;
  }
  upload.bytes = &req.body;
  upload.name = "request body";
  return true;
}

bool video_upload(const httplib::Request& req, const UploadLimits& limits, httplib::Response& res,
                  Upload& upload) {
  const std::string type = media_type(req.get_header_value("Content-Type"));
  upload.bytes = &req.body;
  upload.name = "request body";
  if (type == "multipart/form-data") {
    auto it = req.files.find("file");
    if (it == req.files.end() || it->second.content.empty()) {
      send_error(res, 400, "multipart/form-data body has no non-empty 'file' field with the video");
      return false;
    }
    upload.bytes = &it->second.content;
    if (!it->second.filename.empty()) upload.name = it->second.filename;
  } else if (type.rfind("video/", 0) != 0 && type != "application/octet-stream") {
    send_error(res, 415, "unsupported Content-Type '" + type + "': send the video's bytes (video/mp4, "
                         "video/webm, ...) or multipart/form-data with a 'file' field");
    return false;
  }
  if (upload.bytes->empty()) {
    send_error(res, 400, "empty request body: send the video's bytes");
    return false;
  }
  if (upload.bytes->size() > limits.max_video_bytes) {
    send_error(res, 413, "video of " + std::to_string(upload.bytes->size()) + " bytes exceeds the limit of " +
                             std::to_string(limits.max_video_bytes >> 20) + " MiB (--max-video-mb)");
    return false;
  }
  return true;
}

bool detect_param(const httplib::Request& req, httplib::Response& res, bool& detect) {
  detect = true;
  if (!req.has_param("detect")) return true;
  const std::string v = req.get_param_value("detect");
  if (v == "0" || v == "false") {
    detect = false;
    return true;
  }
  if (v == "1" || v == "true") return true;
  send_error(res, 400, "parameter detect='" + v + "': expected 1 (find faces) or 0 (the whole "
                       "image is one face)");
  return false;
}

bool live_params(const httplib::Request& req, httplib::Response& res, LiveParams& live) {
  live = {};
  if (req.has_param("session")) {
    const std::string id = req.get_param_value("session");
    // 64: live_tracks.h's kMaxSessionIdLength (this file stays free of the model's libraries).
    const bool well_formed = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!well_formed) {
      // Quote at most the start of what was sent: the id may be long, or not text.
      send_error(res, 400, "parameter session='" + id.substr(0, 80) + (id.size() > 80 ? "...'" : "'") +
                               ": expected 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'");
      return false;
    }
    live.session = id;
  }
  if (!req.has_param("smooth")) return true;
  const std::string v = req.get_param_value("smooth");
  char* end = nullptr;
  const double s = v.empty() ? -1 : std::strtod(v.c_str(), &end);
  const float smoothing = static_cast<float>(s);  // 0.99999999 is 1 as a float: checked as one
  if (v.empty() || end != v.c_str() + v.size() || !(s >= 0 && smoothing < 1)) {  // !(...) refuses nan
    send_error(res, 400, "parameter smooth='" + v.substr(0, 80) + "': expected a number in [0, 1) (0: off)");
    return false;
  }
  if (live.session.empty()) {
    send_error(res, 400, "parameter smooth needs session=ID: a face is smoothed over the frames of one session");
    return false;
  }
  live.smoothing = smoothing;
  return true;
}

}  // namespace fer::serve
