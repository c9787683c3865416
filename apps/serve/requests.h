// fer_serve's handling of the untrusted parts of a request, apart from the work of its routes:
// the checks on the request line and headers made before any body is read, the media type of a
// Content-Type, which part of a body (raw, or a multipart form's field) is the upload, and the
// ?detect=, ?session= and ?smooth= parameters.
//
// They read httplib's parsed Request (its query parameters, headers and multipart parts come from
// httplib's own parsers) and either accept it or write the JSON error answer {"error": "..."}
// with its 4xx status into the Response. No sockets, no model: tests/fuzz/fuzz_serve.cpp runs
// them, behind httplib's request parser, on arbitrary bytes.
#pragma once
#include <httplib.h>

#include <cstddef>
#include <string>

namespace fer::serve {

// The largest bodies accepted, in bytes: an image (--max-upload-mb) and a video (--max-video-mb).
struct UploadLimits {
  size_t max_image_bytes = 10u << 20;
  size_t max_video_bytes = 50u << 20;
};

// Writes {"error": message} with `status`. Messages may quote what the client sent (a file name,
// a path): bytes that are not UTF-8 are replaced rather than making the JSON writer throw.
void send_error(httplib::Response& res, int status, const std::string& message);

// "Image/JPEG; charset=x" -> "image/jpeg": the media type without parameters, trimmed, lower case.
std::string media_type(const std::string& content_type);

// The pre-routing checks, on the request line and headers only, before httplib reads a body:
// what would make it read a body it should not (a chunked or compressed body, whose size the
// Content-Length does not bound; a Content-Length over the route's limit), or answer late what
// it can answer at once (a wrong method or no Content-Type on an upload route). Returns Handled
// after writing the error answer, Unhandled to let the request through. A body refused unread
// also closes the connection after the answer (GuardedServer::close_after_response).
httplib::Server::HandlerResponse check_request_head(const UploadLimits& limits,
                                                    const httplib::Request& req,
                                                    httplib::Response& res);

// The uploaded bytes of a request: the raw body or a multipart form's field, and a name for
// them in messages (the part's file name, else the field's, else "request body").
struct Upload {
  const std::string* bytes = nullptr;  // points into the request
  std::string name;
};

// POST /api/predict: the raw body (Content-Type image/jpeg, image/png or
// application/octet-stream) or the multipart field "file" (or "image"). False after writing the
// error answer (empty upload, no such field, another content type).
bool image_upload(const httplib::Request& req, httplib::Response& res, Upload& upload);

// POST /api/video: the raw body (video/* or application/octet-stream) or the multipart field
// "file", at most limits.max_video_bytes. False after writing the error answer.
bool video_upload(const httplib::Request& req, const UploadLimits& limits, httplib::Response& res,
                  Upload& upload);

// ?detect=1|true (find the faces, the default) or 0|false (the whole image is one face). False
// after writing the error answer for any other value.
bool detect_param(const httplib::Request& req, httplib::Response& res, bool& detect);

// ?session=ID: the frame belongs to a live stream whose faces keep track ids from one request to
// the next (apps/inference/live_tracks.h); ID is 1 to 64 characters of A-Z a-z 0-9 _ -.
// ?smooth=S, only with a session: each track's probabilities smoothed over its frames,
// p = S p_before + (1 - S) p_now, S in [0, 1) (0, the default: off).
struct LiveParams {
  std::string session;  // empty: no session
  float smoothing = 0;
};
// False after writing the error answer for a malformed id, a smoothing out of range or not a
// number, or smooth without session.
bool live_params(const httplib::Request& req, httplib::Response& res, LiveParams& live);

}  // namespace fer::serve
