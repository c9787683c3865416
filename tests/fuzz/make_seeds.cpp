// Writes a small seed corpus for the fuzz targets (scripts/fuzz.sh):
//   <dir>/image/: PNGs and JPEGs (48x48, 20x30, 100x60)
//   <dir>/csv/:   a small valid FER2013 CSV (three usages) and one with a bad row
// Usage: make_seeds <dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/fer2013.h"
#include "data/image.h"
#include "data/dataset.h"

using namespace fer::data;

namespace {
GrayImage pattern(int w, int h, int seed) {
  GrayImage g;
  g.width = w;
  g.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels.push_back(static_cast<uint8_t>((x * 5 + y * 3 + seed * 40) % 256));
  return g;
}
Dataset faces(int n) {
  Dataset d;
  d.class_names = fer_class_names();
  for (int i = 0; i < n; ++i) d.add(pattern(48, 48, i).pixels.data(), i % kFerClasses);
  return d;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "image");
  std::filesystem::create_directories(dir / "csv");
  write_png((dir / "image" / "seed_48.png").string(), pattern(48, 48, 1));
  write_jpg((dir / "image" / "seed_48.jpg").string(), pattern(48, 48, 2), 90);
  write_png((dir / "image" / "seed_20x30.png").string(), pattern(20, 30, 3));
  write_jpg((dir / "image" / "seed_100x60.jpg").string(), pattern(100, 60, 4), 75);

  const Dataset d = faces(2);
  std::ofstream((dir / "csv" / "seed_ok.csv").string(), std::ios::binary)
      << format_fer_csv(d, Split::Train) << format_fer_csv(faces(1), Split::Val, false)
      << format_fer_csv(faces(1), Split::Test, false);
  std::string bad = format_fer_csv(faces(1), Split::Train);
  bad += "9,1 2 3,PublicTest\n,,\n";
  std::ofstream((dir / "csv" / "seed_bad.csv").string(), std::ios::binary) << bad;
  std::ofstream((dir / "csv" / "seed_header.csv").string(), std::ios::binary)
      << "Usage,pixels,emotion\r\nTraining,\"0 1 2\",3\r\n";
  return 0;
}
