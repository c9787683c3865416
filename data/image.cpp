// Image decoding (stb_image, bounded) and resampling. The single translation unit that compiles
// the stb_image and stb_image_write implementations, both Debian's packaged headers from
// /usr/include/stb (libstb-dev; stb_image 2.27). That stb_image has known bugs on malformed input,
// so decode_image runs every input through our own validator first (data/image_guard.h).
#include "data/image.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/image_guard.h"
#include "engine/error.h"

// Only the formats a face image plausibly comes in, and the ones image_guard.cpp validates; fewer
// decoders, less attack surface.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO        // all input goes through decode_image's bounded memory path
#define STBI_NO_LINEAR       // no float loaders (stbi_loadf); only 8-bit output is used
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image.h>  // /usr/include/stb (on fer_data's include path)
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fer::data {

namespace {

std::string display_name(const std::string& name) { return name.empty() ? "<memory>" : name; }

// One output sample along an axis: a weighted sum of a run of source samples.
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

// Weights that resample `in` samples to `out` samples along one axis.
std::vector<Taps> axis_taps(int in, int out) {
  std::vector<Taps> taps(out);
  const double scale = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    Taps& t = taps[o];
    if (scale > 1.0) {
      // Shrinking: average over the source interval [o*scale, (o+1)*scale), partial pixels
      // weighted by their covered fraction.
      const double lo = o * scale, hi = (o + 1) * scale;
      t.first = static_cast<int>(std::floor(lo));
      const int last = std::min(in - 1, static_cast<int>(std::ceil(hi)) - 1);
      for (int i = t.first; i <= last; ++i) {
        const double cover = std::min<double>(hi, i + 1) - std::max<double>(lo, i);
        t.weights.push_back(static_cast<float>(cover / scale));
      }
    } else {
      // Growing (or equal): bilinear between the two nearest source centres.
      double x = (o + 0.5) * scale - 0.5;
      x = std::clamp(x, 0.0, static_cast<double>(in - 1));
      const int x0 = std::min(static_cast<int>(std::floor(x)), in - 1);
      const double f = x - x0;
      t.first = x0;
      if (x0 + 1 < in && f > 0) {
        t.weights = {static_cast<float>(1 - f), static_cast<float>(f)};
      } else {
        t.weights = {1.0f};
      }
    }
  }
  return taps;
}

}  // namespace

namespace {

// The bounded decode shared by decode_image (channels = 1) and decode_image_rgb (channels = 3).
std::vector<uint8_t> decode_pixels(const uint8_t* bytes, size_t size, const std::string& name,
                                   const ImageLimits& limits, int channels, int& width, int& height) {
  const std::string who = display_name(name);
  if (size == 0) fail("image '", who, "': empty file");
  if (size > limits.max_bytes)
    fail("image '", who, "': ", size, " bytes exceeds the limit of ", limits.max_bytes, " bytes");
  // stb_image takes an int length.
  if (size > static_cast<size_t>(INT32_MAX)) fail("image '", who, "': too large");

  // Our structural checks first: even stbi_info_from_memory parses the JPEG tables (DHT) that
  // stb_image 2.27 mishandles. Throws naming the file, the offset and the reason.
  guard_image(bytes, size, who, limits);

  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &comp))
    fail("image '", who, "': not a decodable JPEG/PNG image (", stbi_failure_reason(), ")");
  if (w <= 0 || h <= 0) fail("image '", who, "': invalid dimensions ", w, "x", h);
  if (w > limits.max_side || h > limits.max_side ||
      static_cast<int64_t>(w) * h > limits.max_pixels)
    fail("image '", who, "': declared dimensions ", w, "x", h, " exceed the limits (side <= ",
         limits.max_side, ", pixels <= ", limits.max_pixels, ")");

  int dw = 0, dh = 0, dc = 0;
  stbi_uc* px = stbi_load_from_memory(bytes, static_cast<int>(size), &dw, &dh, &dc, channels);
  if (!px) fail("image '", who, "': corrupt or truncated (", stbi_failure_reason(), ")");
  if (dw != w || dh != h) {
    stbi_image_free(px);
    fail("image '", who, "': header says ", w, "x", h, " but decoded ", dw, "x", dh);
  }
  std::vector<uint8_t> pixels(px, px + static_cast<size_t>(dw) * dh * channels);
  stbi_image_free(px);
  width = dw;
  height = dh;
  return pixels;
}

}  // namespace

GrayImage decode_image(const uint8_t* bytes, size_t size, const std::string& name,
                       const ImageLimits& limits) {
  GrayImage out;
  out.pixels = decode_pixels(bytes, size, name, limits, 1, out.width, out.height);
  return out;
}

RgbImage decode_image_rgb(const uint8_t* bytes, size_t size, const std::string& name,
                          const ImageLimits& limits) {
  RgbImage out;
  out.pixels = decode_pixels(bytes, size, name, limits, 3, out.width, out.height);
  return out;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) fail("file '", path, "': does not exist");
  if (!std::filesystem::is_regular_file(status)) fail("file '", path, "': not a regular file");
  const auto fsize = std::filesystem::file_size(path, ec);
  if (ec) fail("file '", path, "': cannot read its size (", ec.message(), ")");
  if (fsize > max_bytes)
    fail("file '", path, "': ", fsize, " bytes exceeds the limit of ", max_bytes, " bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("file '", path, "': cannot open");
  std::vector<uint8_t> bytes(fsize);
  if (fsize > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(fsize)))
    fail("file '", path, "': read error");
  return bytes;
}

GrayImage read_image(const std::string& path, const ImageLimits& limits) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, limits.max_bytes);
  return decode_image(bytes.data(), bytes.size(), path, limits);
}

GrayImage resize_gray(const GrayImage& image, int out_w, int out_h) {
  FER_CHECK(out_w > 0 && out_h > 0, "resize_gray: bad output size ", out_w, "x", out_h);
  FER_CHECK(image.width > 0 && image.height > 0 &&
                image.pixels.size() == static_cast<size_t>(image.width) * image.height,
            "resize_gray: malformed input image ", image.width, "x", image.height);
  if (image.width == out_w && image.height == out_h) return image;

  // Separable: rows first (to out_w), then columns (to out_h), in float.
  const std::vector<Taps> tx = axis_taps(image.width, out_w);
  const std::vector<Taps> ty = axis_taps(image.height, out_h);
  std::vector<float> rows(static_cast<size_t>(image.height) * out_w);
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* src = image.pixels.data() + static_cast<size_t>(y) * image.width;
    float* dst = rows.data() + static_cast<size_t>(y) * out_w;
    for (int x = 0; x < out_w; ++x) {
      float acc = 0;
      for (size_t k = 0; k < tx[x].weights.size(); ++k) acc += tx[x].weights[k] * src[tx[x].first + k];
      dst[x] = acc;
    }
  }
  GrayImage out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(static_cast<size_t>(out_w) * out_h);
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w; ++x) {
      float acc = 0;
      for (size_t k = 0; k < ty[y].weights.size(); ++k)
        acc += ty[y].weights[k] * rows[static_cast<size_t>(ty[y].first + k) * out_w + x];
      out.pixels[static_cast<size_t>(y) * out_w + x] =
          static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
    }
  }
  return out;
}

std::vector<uint8_t> decode_face(const uint8_t* bytes, size_t size, const std::string& name,
                                 const ImageLimits& limits) {
  GrayImage img = decode_image(bytes, size, name, limits);
  if (img.width != kFaceSize || img.height != kFaceSize) img = resize_gray(img, kFaceSize, kFaceSize);
  return std::move(img.pixels);
}

std::vector<uint8_t> read_face(const std::string& path, const ImageLimits& limits) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, limits.max_bytes);
  return decode_face(bytes.data(), bytes.size(), path, limits);
}

namespace {
void check_writable(const std::string& path, const GrayImage& image) {
  FER_CHECK(image.width > 0 && image.height > 0 &&
                image.pixels.size() == static_cast<size_t>(image.width) * image.height,
            "write '", path, "': malformed image ", image.width, "x", image.height);
}
}  // namespace

void write_png(const std::string& path, const GrayImage& image) {
  check_writable(path, image);
  if (!stbi_write_png(path.c_str(), image.width, image.height, 1, image.pixels.data(), image.width))
    fail("write '", path, "': stbi_write_png failed");
}

void write_jpg(const std::string& path, const GrayImage& image, int quality) {
  check_writable(path, image);
  if (!stbi_write_jpg(path.c_str(), image.width, image.height, 1, image.pixels.data(), quality))
    fail("write '", path, "': stbi_write_jpg failed");
}

RgbImage gray_to_rgb(const GrayImage& gray) {
  RgbImage rgb{gray.width, gray.height, std::vector<uint8_t>(gray.pixels.size() * 3)};
  for (size_t i = 0; i < gray.pixels.size(); ++i)
    rgb.pixels[3 * i] = rgb.pixels[3 * i + 1] = rgb.pixels[3 * i + 2] = gray.pixels[i];
  return rgb;
}

GrayImage gray_from_pixels(const uint8_t* pixels, int width, int height, int channels, bool bgr) {
  FER_CHECK(width > 0 && height > 0, "gray_from_pixels: bad size ", width, "x", height);
  FER_CHECK(channels == 1 || channels == 3 || channels == 4, "gray_from_pixels: ", channels,
            " channels (expected 1, 3 or 4)");
  GrayImage gray{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height)};
  if (channels == 1) {
    std::copy_n(pixels, gray.pixels.size(), gray.pixels.data());
    return gray;
  }
  const int r = bgr ? 2 : 0, b = bgr ? 0 : 2;
  for (size_t i = 0; i < gray.pixels.size(); ++i) {
    const uint8_t* p = pixels + i * channels;
    gray.pixels[i] = static_cast<uint8_t>((p[r] * 77 + p[1] * 150 + p[b] * 29) >> 8);
  }
  return gray;
}

}  // namespace fer::data
