// libFuzzer target: the Haar cascade reader (data/face_detect.h: its XML reader and the checks of
// windows, features, trees and stages) on arbitrary text, and whatever cascade it accepts run on
// a small image. Any input must either parse into a cascade that evaluates every window without
// reading outside its tables, or throw fer::Error. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/face_detect.h"
#include "engine/error.h"

using namespace fer::data;

namespace {
// A 40 x 40 image with edges and texture, so windows pass the flat-window test and the trees walk.
const GrayImage& test_image() {
  static const GrayImage image = [] {
    GrayImage g;
    g.width = g.height = 40;
    for (int y = 0; y < g.height; ++y)
      for (int x = 0; x < g.width; ++x)
        g.pixels.push_back(static_cast<uint8_t>((x * 37 + y * 91 + (x / 5 + y / 7) * 60) % 256));
    return g;
  }();
  return image;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  try {
    const HaarCascade cascade = HaarCascade::parse(xml, "fuzz.xml");
    if (cascade.window_width() < 3 || cascade.window_height() < 3 || cascade.num_stages() < 1 ||
        cascade.num_features() < 1)
      __builtin_trap();
    const GrayImage& image = test_image();
    if (cascade.window_width() <= image.width && cascade.window_height() <= image.height) {
      const IntegralImage ii = integral_image(image, cascade.has_tilted());
      const int last_x = image.width - cascade.window_width(), last_y = image.height - cascade.window_height();
      for (const auto& [x, y] : {std::pair{0, 0}, std::pair{last_x, last_y}, std::pair{last_x / 2, last_y / 3}}) {
        const int r = cascade.evaluate(ii, x, y);
        if (r > cascade.num_stages() || r < -cascade.num_stages() - 1) __builtin_trap();
      }
    }
    DetectOptions options;
    options.threads = 1;
    options.min_neighbors = 0;
    options.scale_factor = 1.5;
    options.max_side = 0;
    for (const Rect& r : cascade.detect_raw(image, options))
      if (r.width <= 0 || r.height <= 0) __builtin_trap();
  } catch (const fer::Error&) {
    // Rejected cascade.
  }
  return 0;
}
