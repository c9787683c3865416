// PNG output for the report canvas, through stb_image_write. Its implementation is compiled once,
// in data/image.cpp (fer_data, which fer_report links); this file only uses its API.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "apps/report/png.h"
#include "engine/error.h"

#include <stb_image_write.h>

namespace fer::plot {

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

}  // namespace

std::vector<uint8_t> encode_png(const Canvas& canvas) {
  std::vector<uint8_t> out;
  const int ok = stbi_write_png_to_func(append_bytes, &out, canvas.width(), canvas.height(), 3,
                                        canvas.pixels().data(), canvas.width() * 3);
  FER_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed to encode a ",
            canvas.width(), "x", canvas.height(), " image");
  return out;
}

void save_png(const Canvas& canvas, const std::string& path) {
  namespace fs = std::filesystem;
  FER_CHECK(!path.empty(), "save_png: empty path");
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_png(canvas);
  } catch (const Error& e) {
    fail("save_png: ", path, ": ", e.what());
  }
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path() && !fs::exists(target.parent_path(), ec)) {
    fs::create_directories(target.parent_path(), ec);
    FER_CHECK(!ec, "save_png: cannot create the directory ", target.parent_path().string(),
              " for ", path, ": ", ec.message());
  }
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    FER_CHECK(f.good(), "save_png: cannot open ", tmp, " to write ", path, ": ",
              std::strerror(errno));
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      fs::remove(tmp, ec);
      fail("save_png: writing ", bytes.size(), " bytes to ", path, " failed");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("save_png: cannot rename the temporary file onto ", path, ": ", ec.message());
  }
}

}  // namespace fer::plot
