// Image decoding for the data pipeline: JPEG / PNG bytes -> 8-bit grayscale, resized
// to the 48x48 face size of FER2013.
//
// Decoding uses stb_image (desired_channels = 1, so colour images become luma). Because stb_image
// has a history of fuzzer-found bugs, every input is bounded *before* it reaches the decoder:
// the byte size (ImageLimits::max_bytes, 20 MB by default) and the dimensions declared in the
// header, read with stbi_info_from_memory (width and height in 1..8192, width*height <= 40M).
// Every failure is a fer::Error whose message names the file (or the in-memory name given) and
// why it was rejected. Only the JPEG and PNG decoders of Debian's stb_image 2.27
// (/usr/include/stb) are compiled in, and every input first passes our own structural validator
// (data/image_guard.h), which rejects the inputs that trigger that version's known bugs
// (found by tests/fuzz/fuzz_image.cpp). Decoding is thread-safe (the loaders decode on several
// threads).
//
// Pixel layout everywhere in data/: row-major uint8, row 0 at the top, 0 = black, 255 = white.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fer::data {

constexpr int kFaceSize = 48;                           // FER2013 images are 48 x 48
constexpr int kFacePixels = kFaceSize * kFaceSize;     // 2304

struct ImageLimits {
  size_t max_bytes = 20u << 20;              // encoded file size
  int max_side = 8192;                       // width and height, each
  int64_t max_pixels = 40'000'000;           // width * height
};

struct GrayImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height, row-major
};

// Decode encoded bytes. `name` is used only in error messages ("<memory>" if empty).
GrayImage decode_image(const uint8_t* bytes, size_t size, const std::string& name,
                       const ImageLimits& limits = {});
// Read and decode a file (the size bound is checked before the file is read).
GrayImage read_image(const std::string& path, const ImageLimits& limits = {});

// Colour, for pictures drawn over the photo (fer_predict --annotate): the same checks and
// decoder, 3 bytes per pixel (R, G, B; a grayscale file gives R = G = B).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3, row-major
};
// The gray image as RGB (each pixel's value in all three channels).
RgbImage gray_to_rgb(const GrayImage& gray);
// Pixels already decoded (an array from another library) as gray: `channels` 1, 3 (R, G, B) or 4
// (R, G, B, A; alpha ignored) per pixel, row-major; with `bgr` the colour order is OpenCV's (B, G,
// R). Luma as stb_image computes it when decoding a colour PNG to gray, (77 R + 150 G + 29 B) >> 8,
// so the array of a PNG file and the file itself give the same gray image.
GrayImage gray_from_pixels(const uint8_t* pixels, int width, int height, int channels, bool bgr);
RgbImage decode_image_rgb(const uint8_t* bytes, size_t size, const std::string& name,
                          const ImageLimits& limits = {});

// Resample to out_w x out_h: area averaging along an axis that shrinks (as OpenCV INTER_AREA),
// bilinear with pixel-centre alignment along an axis that grows; identity when sizes match.
GrayImage resize_gray(const GrayImage& image, int out_w, int out_h);

// The usual path for a face: decode, then resize to 48x48 if needed. Returns 2304 pixels.
std::vector<uint8_t> decode_face(const uint8_t* bytes, size_t size, const std::string& name,
                                 const ImageLimits& limits = {});
std::vector<uint8_t> read_face(const std::string& path, const ImageLimits& limits = {});

// Writers (stb_image_write), for tests, tools and exports. Throw fer::Error naming the path.
void write_png(const std::string& path, const GrayImage& image);
void write_jpg(const std::string& path, const GrayImage& image, int quality = 95);

// Whole-file read with a size bound (used by the readers). Throws naming the path.
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes);

}  // namespace fer::data
