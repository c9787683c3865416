// The model exported for the page's in-browser option, and onnxruntime-web's files; see
// browser_model.h.
#include "apps/serve/browser_model.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/serve/requests.h"
#include "apps/training/checkpoint.h"
#include "engine/error.h"
#include "models/export/onnx_export.h"

namespace fer::serve {

namespace fs = std::filesystem;

namespace {

// The npm install of apps/web/ort (package.json pins the version).
constexpr const char* kOrtDistPath = "apps/web/ort/node_modules/onnxruntime-web/dist";

bool has_ort_files(const fs::path& dir) {
  std::error_code ec;
  for (const OrtFile& f : kOrtFiles)
    if (!fs::is_regular_file(dir / f.name, ec)) return false;
  return true;
}

const OrtFile* ort_file(const std::string& name) {
  for (const OrtFile& f : kOrtFiles)
    if (name == f.name) return &f;
  return nullptr;
}

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  FER_CHECK(in, "onnxruntime-web: cannot open '", path.string(), "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  FER_CHECK(in.good() || in.eof(), "onnxruntime-web: read error in '", path.string(), "'");
  return bytes.str();
}

}  // namespace

std::string find_ort_dir() {
  std::vector<fs::path> roots{fs::current_path()};
  if (const char* src = std::getenv("FER_SOURCE_DIR"); src && *src) roots.emplace_back(src);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    roots.push_back(exe.parent_path().parent_path());  // build/fer_serve -> the repository
    roots.push_back(exe.parent_path());
  }
  for (const fs::path& root : roots)
    if (has_ort_files(root / kOrtDistPath)) return (root / kOrtDistPath).string();
  return "";
}

struct BrowserModel::Impl {
  BrowserModelOptions options;
  std::string no_model;  // why no model is exported (an ensemble); empty when one is
  std::string no_ort;    // why onnxruntime-web's files are not served; empty when they are

  std::mutex mutex;  // guards everything below, filled on first use
  bool exported = false;
  std::string onnx;
  nlohmann::ordered_json info;
  std::map<std::string, std::string> ort_cache;  // file name -> bytes, read once

  // Loads the checkpoint and exports it; the caller holds `mutex`.
  void export_once() {
    if (exported) return;
    FER_CHECK(no_model.empty(), "no model for the browser: ", no_model);
    const std::string& path = options.checkpoints;
    LoadedCheckpoint ck = load_checkpoint(path);
    const ModelSpec& spec = ck.spec;
    const double temperature = calibration_temperature(ck.file.metadata, path);
    // As FaceAnalyzer feeds the model: faces resized to face_side, then the centre crop x crop
    // when the checkpoint reads crops (predict_batch), else the whole face.
    const int64_t crop = spec.preprocess.crop;
    const int64_t face_side = crop > 0 ? 48 : spec.config.input_size;
    const int64_t input_side = crop > 0 ? crop : face_side;

    OnnxExportOptions export_options;
    export_options.input_shape = {1, spec.config.in_channels, input_side, input_side};
    export_options.temperature = static_cast<float>(temperature);
    export_options.graph_name = spec.name;
    export_options.doc_string = "fer_serve's model for its page's in-browser option (" +
                                fs::path(path).filename().string() + ")";
    export_options.metadata = {{"model", spec.name}, {"source", fs::path(path).filename().string()}};
    onnx = export_onnx(*ck.model, export_options).bytes;

    const data::PreprocessOptions& pre = spec.preprocess;
    info = {{"available", true},
            {"model", spec.name},
            {"checkpoint", fs::path(path).filename().string()},
            {"classes", spec.class_names},
            {"temperature", temperature},
            {"face_side", face_side},
            {"crop", crop},
            {"input_side", input_side},
            {"equalize", pre.equalize},
            {"standardize", pre.standardize},
            {"mean", pre.mean},
            {"std", pre.std},
            {"margin", options.margin},
            {"tta", options.tta},
            {"onnx", "/api/model.onnx"},
            {"onnx_bytes", onnx.size()},
            {"output", "probabilities"},
            {"ort", "/ort/ort.wasm.min.mjs"}};
    exported = true;
  }
};

BrowserModel::BrowserModel(BrowserModelOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  if (m.options.checkpoints.find(',') != std::string::npos)
    m.no_model = "the server runs an ensemble of several checkpoints; the in-browser option "
                 "runs one model (start fer_serve with a single --checkpoint for it)";
  if (m.options.ort_dir.empty()) {
    m.no_ort = "onnxruntime-web is not installed on the server (npm ci --prefix apps/web/ort, "
                    "which scripts/setup.sh runs, or fer_serve --ort-dir DIR)";
  } else if (!has_ort_files(m.options.ort_dir)) {
    m.no_ort = "--ort-dir '" + m.options.ort_dir + "' lacks onnxruntime-web's files (" +
                    kOrtFiles[0].name + ", ...)";
  }
}

BrowserModel::~BrowserModel() = default;

const std::string& BrowserModel::unavailable_reason() const {
  return impl_->no_model.empty() ? impl_->no_ort : impl_->no_model;
}

const std::string& BrowserModel::onnx_bytes() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->export_once();
  return impl_->onnx;
}

std::string BrowserModel::info_json() {
  Impl& m = *impl_;
  if (!unavailable_reason().empty())
    return nlohmann::json{{"available", false}, {"reason", unavailable_reason()}}.dump();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.export_once();
  return m.info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void BrowserModel::add_routes(httplib::Server& server) {
  server.Get("/api/model.json", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(info_json(), "application/json");
  });
  server.Get("/api/model.onnx", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    if (!impl_->no_model.empty()) {
      send_error(res, 501, "no model for the browser: " + impl_->no_model);
      return;
    }
    const std::string& bytes = onnx_bytes();  // exported once, kept for the server's lifetime
    res.set_content(bytes.data(), bytes.size(), "application/octet-stream");
    res.set_header("Content-Disposition", "attachment; filename=\"model.onnx\"");
  });
  // One path segment; anything not on the allow-list is a 404, whatever it names.
  server.Get(R"(/ort/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    Impl& m = *impl_;
    const std::string name = req.matches[1];
    const OrtFile* file = ort_file(name);
    if (!file) {
      send_error(res, 404, "no such onnxruntime-web file: '" + name + "'");
      return;
    }
    if (!m.no_ort.empty()) {
      send_error(res, 404, "onnxruntime-web is unavailable: " + m.no_ort);
      return;
    }
    std::lock_guard<std::mutex> lock(m.mutex);
    auto it = m.ort_cache.find(name);
    if (it == m.ort_cache.end())
      it = m.ort_cache.emplace(name, read_whole_file(fs::path(m.options.ort_dir) / name)).first;
    const std::string& bytes = it->second;  // never erased: stays valid after the lock
    res.set_content(bytes.data(), bytes.size(), file->content_type);
    res.set_header("Cache-Control", "max-age=3600");
  });
}

}  // namespace fer::serve
