// PNG files of a canvas, through stb_image_write (its implementation is compiled once, in
// data/image.cpp, which is why this library links fer_data).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/report/canvas.h"

namespace fer::plot {

// The PNG bytes of the canvas (RGB, 8 bits per channel); throws fer::Error if encoding fails.
std::vector<uint8_t> encode_png(const Canvas& canvas);
// Writes the canvas to a temporary file beside `path` and renames it over `path`, creating missing
// parent directories; throws fer::Error naming the path on any failure.
void save_png(const Canvas& canvas, const std::string& path);

}  // namespace fer::plot
