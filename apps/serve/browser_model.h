// What fer_serve's page needs to run the model in the browser (onnxruntime-web) instead of on
// the server:
//
//   GET /api/model.json   how to feed the model: {"available", "reason" (when not), "model",
//                         "classes", "temperature", "face_side", "crop", "input_side",
//                         "equalize", "standardize", "mean", "std", "margin", "tta", "onnx",
//                         "onnx_bytes", "ort"}. The page crops, resizes and equalises each face
//                         itself from these, exactly as FaceAnalyzer does (face_analyzer.h).
//   GET /api/model.onnx   the served checkpoint exported to ONNX in memory (models/export/), on
//                         the first request, then kept: input [N, 1, input_side, input_side],
//                         outputs "logits" and "probabilities" = softmax(logits / temperature),
//                         the checkpoint's calibration, so the page shows what the server shows.
//   GET /ort/<file>       onnxruntime-web's JavaScript and WebAssembly, read from --ort-dir
//                         (its npm package's dist/ folder, apps/web/ort/node_modules/...), never
//                         from a CDN. Only the file names of kOrtFiles are served: any other name
//                         (a path, "..", a file the page does not use) is a 404.
//
// Not available (model.json says {"available": false, "reason"}): with an ensemble of several
// checkpoints (model.onnx answers 501: the page would have to average several models; serve one
// checkpoint for this option), or without onnxruntime-web's files (/ort/ answers 404; install
// them with `npm ci --prefix apps/web/ort`, which scripts/setup.sh runs). The ONNX graph holds the model alone: with --tta flip|tencrop the server's
// answers average augmented views and the browser's do not (model.json's "tta" tells the page).
#pragma once
#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

namespace fer::serve {

// The files of onnxruntime-web the page loads: the WebAssembly-only ES module build, its
// Emscripten glue and the SIMD WebAssembly binary (the threaded build also runs on one thread).
struct OrtFile {
  const char* name;
  const char* content_type;
};
inline constexpr OrtFile kOrtFiles[] = {
    {"ort.wasm.min.mjs", "text/javascript; charset=utf-8"},
    {"ort-wasm-simd-threaded.mjs", "text/javascript; charset=utf-8"},
    {"ort-wasm-simd-threaded.wasm", "application/wasm"},
};

// Where onnxruntime-web's dist/ folder is when --ort-dir is not given: the npm install of
// apps/web/ort, under the working directory, $FER_SOURCE_DIR, or the executable's parent and own
// directories (as checkpoints are found). Empty when none has all of kOrtFiles.
std::string find_ort_dir();

struct BrowserModelOptions {
  std::string checkpoints;  // the files FaceAnalyzer loaded, comma-separated
  std::string ort_dir;      // onnxruntime-web's dist/ folder; empty: the option is unavailable
  float margin = 0.1f;      // FaceAnalyzer's crop margin
  std::string tta = "none";
};

class BrowserModel {
 public:
  explicit BrowserModel(BrowserModelOptions options);
  ~BrowserModel();

  // Registers GET /api/model.json, /api/model.onnx and /ort/<file>. This object must outlive
  // the server.
  void add_routes(httplib::Server& server);

  // Why the option is unavailable; empty when it is available.
  const std::string& unavailable_reason() const;

  // The ONNX bytes, exported on the first call (thread-safe; later calls return the same bytes).
  // Throws a fer::Error naming the checkpoint when the export fails or the option is unavailable.
  const std::string& onnx_bytes();
  // The body of GET /api/model.json (exports the model first when it is available).
  std::string info_json();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fer::serve
