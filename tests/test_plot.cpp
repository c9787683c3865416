// The plot canvas (primitives, font, clipping), PNG output, and every chart: each writes a PNG whose
// signature, chunk structure (CRCs) and IHDR size are checked from the file bytes, and the heatmap
// colours its cells by the normalised value.
#include <doctest/doctest.h>

#include "tests/support/temp_dir.h"

#include "tests/support/errors.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "apps/report/charts.h"
#include "engine/error.h"
#include "engine/metrics.h"

using namespace fer;
using fer::testing::TempDir;
using fer::testing::throws_naming;
using namespace fer::plot;
namespace fs = std::filesystem;

namespace {


std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

struct PngInfo {
  bool ok = false;
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  int idat_chunks = 0;
};

// Walks the PNG: signature, IHDR first, every chunk's CRC, at least one IDAT, IEND last.
PngInfo inspect_png(const std::vector<uint8_t>& b) {
  PngInfo info;
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 + 25 || !std::equal(kSig, kSig + 8, b.begin())) return info;
  size_t at = 8;
  bool first = true, ended = false;
  while (at + 12 <= b.size()) {
    const uint32_t len = be32(b, at);
    if (at + 12 + len > b.size()) return info;
    const std::string type(b.begin() + at + 4, b.begin() + at + 8);
    if (crc32(&b[at + 4], 4 + len) != be32(b, at + 8 + len)) return info;
    if (first) {
      if (type != "IHDR" || len != 13) return info;
      info.width = be32(b, at + 8);
      info.height = be32(b, at + 12);
      info.bit_depth = b[at + 16];
      info.color_type = b[at + 17];
      first = false;
    }
    if (type == "IDAT") ++info.idat_chunks;
    at += 12 + len;
    if (type == "IEND") {
      ended = true;
      break;
    }
  }
  info.ok = ended && at == b.size() && info.idat_chunks > 0;
  return info;
}

// Checks that `path` holds a valid RGB8 PNG of the canvas's size.
void check_png_file(const std::string& path, const Canvas& expected_size) {
  INFO("file " << path);
  REQUIRE(fs::exists(path));
  const PngInfo info = inspect_png(read_bytes(path));
  CHECK(info.ok);
  CHECK(info.width == static_cast<uint32_t>(expected_size.width()));
  CHECK(info.height == static_cast<uint32_t>(expected_size.height()));
  CHECK(info.bit_depth == 8);
  CHECK(info.color_type == 2);  // truecolour RGB
}

// Number of pixels that differ from `bg`, and whether all of them lie in [x0, x1) x [y0, y1).
struct Ink {
  int count = 0;
  bool inside = true;
};
Ink ink(const Canvas& c, Color bg, int x0, int y0, int x1, int y1) {
  Ink r;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x)
      if (!(c.get(x, y) == bg)) {
        ++r.count;
        if (x < x0 || x >= x1 || y < y0 || y >= y1) r.inside = false;
      }
  return r;
}

double luminance(Color c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; }

const std::vector<std::string> kNames{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

}  // namespace

// ---- Canvas primitives -------------------------------------------------------------------------

TEST_CASE("Canvas: size, fill, set and get") {
  Canvas c(4, 3, Color{1, 2, 3});
  CHECK(c.width() == 4);
  CHECK(c.height() == 3);
  CHECK(c.pixels().size() == 4u * 3u * 3u);
  CHECK(c.get(3, 2) == Color{1, 2, 3});
  c.set(1, 2, Color{9, 8, 7});
  CHECK(c.get(1, 2) == Color{9, 8, 7});
  const size_t i = (2 * 4 + 1) * 3;  // row-major RGB
  CHECK(c.pixels()[i] == 9);
  CHECK(c.pixels()[i + 2] == 7);
  c.fill(colors::white);
  CHECK(c.get(1, 2) == colors::white);
  CHECK(throws_naming([&] { (void)c.get(4, 0); }, "(4, 0) is outside the 4x3 canvas"));
  CHECK(throws_naming([] { Canvas bad(0, 5); }, "0x5"));
  CHECK(throws_naming([] { Canvas bad(20000, 5); }, "20000x5"));
}

TEST_CASE("Canvas: a line from (0,0) to (9,9) sets exactly the diagonal") {
  Canvas c(10, 10);
  c.line(0, 0, 9, 9, colors::black);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) {
      INFO("pixel " << x << ", " << y);
      CHECK((c.get(x, y) == colors::black) == (x == y));
    }
  // Reversed end points draw the same.
  Canvas d(10, 10);
  d.line(9, 9, 0, 0, colors::black);
  CHECK(d.pixels() == c.pixels());
}

TEST_CASE("Canvas: horizontal, vertical and steep lines") {
  Canvas c(10, 10);
  c.line(2, 4, 7, 4, colors::black);
  CHECK(ink(c, colors::white, 2, 4, 8, 5).count == 6);
  CHECK(ink(c, colors::white, 2, 4, 8, 5).inside);
  c.fill(colors::white);
  c.line(3, 1, 3, 8, colors::black);
  CHECK(ink(c, colors::white, 3, 1, 4, 9).count == 8);
  c.fill(colors::white);
  c.line(0, 0, 2, 9, colors::black);  // steep: one pixel per row
  for (int y = 0; y < 10; ++y) {
    int n = 0;
    for (int x = 0; x < 10; ++x) n += c.get(x, y) == colors::black;
    CHECK(n == 1);
  }
  c.fill(colors::white);
  c.line(1, 5, 8, 5, colors::black, 3);  // thickness 3: rows 4..6
  const Ink t = ink(c, colors::white, 0, 4, 10, 7);
  CHECK(t.inside);
  CHECK(t.count == 30);  // a 3x3 brush at x = 1..8 covers columns 0..9, rows 4..6
}

TEST_CASE("Canvas: filled and outlined rectangles") {
  Canvas c(12, 10);
  c.fill_rect(2, 3, 4, 5, colors::black);
  const Ink f = ink(c, colors::white, 2, 3, 6, 8);
  CHECK(f.count == 20);
  CHECK(f.inside);
  c.fill(colors::white);
  c.rect(1, 1, 6, 5, colors::black);  // outline of [1,7) x [1,6): 2*6 + 2*3 pixels
  const Ink o = ink(c, colors::white, 1, 1, 7, 6);
  CHECK(o.count == 18);
  CHECK(o.inside);
  CHECK(c.get(3, 3) == colors::white);  // hollow
  CHECK(c.get(1, 1) == colors::black);
  CHECK(c.get(6, 5) == colors::black);
}

TEST_CASE("Canvas: drawing outside is clipped, never a crash") {
  Canvas c(10, 10);
  c.set(-1, 0, colors::black);
  c.set(0, 10, colors::black);
  c.set(INT_MAX, INT_MIN, colors::black);
  c.blend(-5, 3, colors::black, 0.5);
  CHECK(ink(c, colors::white, 0, 0, 0, 0).count == 0);

  c.line(-10, 5, 20, 5, colors::black);  // crosses: row 5 fully set, nothing else
  Ink r = ink(c, colors::white, 0, 5, 10, 6);
  CHECK(r.count == 10);
  CHECK(r.inside);

  c.fill(colors::white);
  c.line(-100, -100, -50, -20, colors::black);  // wholly outside
  c.line(INT_MIN / 2, 0, INT_MAX / 2, 9, colors::black, 3);  // absurdly long, clipped first
  c.fill_rect(-5, -5, 8, 8, colors::black);      // top-left 3x3 inside
  c.fill_rect(INT_MAX - 1, INT_MAX - 1, INT_MAX, INT_MAX, colors::black);
  c.rect(-3, -3, 100, 100, colors::black, 2);
  c.text(-7, -4, "Hello", colors::black, 2);
  c.text(INT_MAX - 3, 2, "x", colors::black, 3);
  c.text_vertical(8, -20, "clipped", colors::black, 2);
  c.line_aa(-50.5, 3.2, 60.7, 4.9, colors::black, 2.0);
  c.line_aa(1e300, -1e300, NAN, 3, colors::black, 2.0);
  c.polyline_aa({{-1e9, 5}, {5, 5}, {1e9, 6}}, colors::black, 1.5);
  c.dashed_line(-20, -20, 30, 30, colors::black);
  c.fill_circle(-3, 12, 5, colors::black);
  CHECK(c.get(2, 2) == colors::black);
  CHECK(ink(c, colors::white, 0, 0, 10, 10).inside);  // trivially: nothing was written outside
}

TEST_CASE("Canvas: anti-aliased lines and discs cover their centre line") {
  Canvas c(20, 20);
  // Width 2: pixels on the line are fully covered, the next row (distance 1 = the half width) half.
  c.line_aa(2, 10, 17, 10, colors::black, 2.0);
  for (int x = 2; x <= 17; ++x) CHECK(c.get(x, 10) == colors::black);
  CHECK(c.get(10, 3) == colors::white);  // far away untouched
  const Color edge = c.get(10, 11);
  CHECK(edge.r > 100);
  CHECK(edge.r < 160);

  c.fill(colors::white);
  c.fill_circle(10, 10, 4, colors::black);
  CHECK(c.get(10, 10) == colors::black);
  CHECK(c.get(10, 7) == colors::black);
  CHECK(c.get(10, 6).r > 0);  // the rim, half covered
  CHECK(c.get(10, 6).r < 255);
  CHECK(c.get(10, 2) == colors::white);

  // A polyline through a joint draws the joint once (no darker double blend than a single line).
  Canvas p(20, 20), q(20, 20);
  p.polyline_aa({{2, 2}, {10, 10}, {18, 2}}, Color{0, 0, 200}, 2.0);
  q.line_aa(2, 2, 10, 10, Color{0, 0, 200}, 2.0);
  q.line_aa(10, 10, 18, 2, Color{0, 0, 200}, 2.0);
  CHECK(p.get(10, 10) == Color{0, 0, 200});
  CHECK(p.get(10, 9).r >= q.get(10, 9).r);
}

// ---- Text --------------------------------------------------------------------------------------

TEST_CASE("Canvas: text draws within its box") {
  for (int scale : {1, 2, 3}) {
    INFO("scale " << scale);
    Canvas c(120, 70);
    const std::string s = "Hgy_|{}";
    c.text(5, 7, s, colors::black, scale);
    const int w = Canvas::text_width(s, scale), h = Canvas::text_height(s, scale);
    CHECK(w == (7 * Canvas::kAdvance - 1) * scale);
    CHECK(h == Canvas::kGlyphH * scale);
    const Ink r = ink(c, colors::white, 5, 7, 5 + w, 7 + h);
    CHECK(r.count > 0);
    CHECK(r.inside);
    // Descenders reach the bottom row of the box, the 'H' reaches its top and left.
    bool top = false, bottom = false, left = false;
    for (int x = 5; x < 5 + w; ++x) {
      top = top || c.get(x, 7) == colors::black;
      bottom = bottom || c.get(x, 7 + h - 1) == colors::black;
    }
    for (int y = 7; y < 7 + h; ++y) left = left || c.get(5, y) == colors::black;
    CHECK(top);
    CHECK(bottom);
    CHECK(left);
  }
  // Several lines.
  Canvas m(80, 60);
  m.text(1, 1, "ab\ncdef", colors::black, 2);
  CHECK(Canvas::text_width("ab\ncdef", 2) == (4 * 6 - 1) * 2);
  CHECK(Canvas::text_height("ab\ncdef", 2) == (Canvas::kLineH + Canvas::kGlyphH) * 2);
  const Ink r = ink(m, colors::white, 1, 1, 1 + Canvas::text_width("ab\ncdef", 2),
                    1 + Canvas::text_height("ab\ncdef", 2));
  CHECK(r.inside);
  CHECK(Canvas::text_width("", 2) == 0);
}

TEST_CASE("Canvas: every printable character has its own non-empty glyph; space is blank") {
  std::set<std::string> seen;  // the rendered pixels of each glyph
  for (int ch = 32; ch <= 126; ++ch) {
    INFO("character " << ch);
    Canvas c(8, 12);
    c.text(1, 1, std::string(1, static_cast<char>(ch)), colors::black);
    const Ink r = ink(c, colors::white, 1, 1, 1 + Canvas::kGlyphW, 1 + Canvas::kGlyphH);
    CHECK(r.inside);
    CHECK((r.count == 0) == (ch == ' '));
    CHECK(seen.insert(std::string(c.pixels().begin(), c.pixels().end())).second);
  }
  // Outside ASCII: drawn as '?'.
  Canvas q(8, 12), u(8, 12);
  q.text(1, 1, "?", colors::black);
  u.text(1, 1, "\x01", colors::black);
  CHECK(q.pixels() == u.pixels());
}

TEST_CASE("Canvas: vertical text occupies the rotated box") {
  Canvas c(40, 80);
  const std::string s = "true";
  c.text_vertical(6, 4, s, colors::black, 2);
  const int w = Canvas::text_height(s, 2), h = Canvas::text_width(s, 2);
  const Ink r = ink(c, colors::white, 6, 4, 6 + w, 4 + h);
  CHECK(r.count > 0);
  CHECK(r.inside);
  // Rotating the horizontal rendering counter-clockwise gives the vertical one.
  Canvas horiz(h, w);
  horiz.text(0, 0, s, colors::black, 2);
  for (int y = 0; y < w; ++y)
    for (int x = 0; x < h; ++x) CHECK(horiz.get(x, y) == c.get(6 + y, 4 + h - 1 - x));
}

// ---- PNG ---------------------------------------------------------------------------------------

TEST_CASE("save_png: a valid PNG of the canvas's size, written atomically") {
  TempDir dir;
  Canvas c(37, 21, Color{10, 200, 30});
  c.line(0, 0, 36, 20, colors::black);
  const std::vector<uint8_t> bytes = encode_png(c);
  const PngInfo info = inspect_png(bytes);
  CHECK(info.ok);
  CHECK(info.width == 37);
  CHECK(info.height == 21);

  const std::string path = dir.file("sub/dir/canvas.png");  // missing directories are created
  save_png(c, path);
  check_png_file(path, c);
  CHECK(read_bytes(path) == bytes);
  // Overwrites, and leaves no temporary file behind.
  save_png(Canvas(5, 6), path);
  check_png_file(path, Canvas(5, 6));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path / "sub" / "dir")) files += e.is_regular_file();
  CHECK(files == 1);

  // A path whose parent is a regular file cannot be written: the error names the path.
  const std::string blocker = dir.file("not_a_dir");
  std::ofstream(blocker) << "x";
  const std::string bad = blocker + "/chart.png";
  CHECK(throws_naming([&] { save_png(c, bad); }, bad));
  CHECK(throws_naming([&] { save_png(c, ""); }, "empty path"));
}

// ---- Charts ------------------------------------------------------------------------------------

TEST_CASE("confusion_matrix_heatmap: the darkest cell is the largest normalised value") {
  // Row-normalised, the largest value is row 1 column 2 (7/10 = 0.7) although the largest count
  // is row 0 column 0 (50, only 0.5 of its row).
  const std::vector<std::vector<int64_t>> cm{{50, 30, 20}, {1, 2, 7}, {10, 10, 10}};
  const std::vector<std::string> names{"alpha", "beta", "gamma"};
  auto darkest = [&](bool normalise, const Canvas& c, const HeatmapLayout& l) {
    std::pair<int, int> best{-1, -1};
    double best_lum = 1e9;
    for (int t = 0; t < 3; ++t)
      for (int p = 0; p < 3; ++p) {
        const Color col = c.get(l.x0 + p * l.cell + l.cell / 2, l.y0 + t * l.cell + l.cell / 2);
        const double v = normalise ? static_cast<double>(cm[t][p]) / (cm[t][0] + cm[t][1] + cm[t][2])
                                   : static_cast<double>(cm[t][p]) / 50.0;
        INFO("cell " << t << ", " << p);
        CHECK(col == blues(v));  // the centre pixel is the cell colour, untouched by the text
        if (luminance(col) < best_lum) {
          best_lum = luminance(col);
          best = {t, p};
        }
      }
    return best;
  };
  HeatmapLayout l;
  const Canvas norm = render_confusion_matrix_heatmap(cm, names, "Confusion", true, &l);
  CHECK(l.cell > 0);
  CHECK(darkest(true, norm, l) == std::pair<int, int>{1, 2});
  const Canvas counts = render_confusion_matrix_heatmap(cm, names, "Confusion", false, &l);
  CHECK(darkest(false, counts, l) == std::pair<int, int>{0, 0});

  // The ramp is monotonic: larger values are darker.
  for (int k = 1; k <= 20; ++k) CHECK(luminance(blues(k / 20.0)) < luminance(blues((k - 1) / 20.0)));

  TempDir dir;
  const std::string path = dir.file("cm.png");
  confusion_matrix_heatmap(cm, names, "Confusion", path);
  check_png_file(path, norm);

  CHECK(throws_naming([&] { render_confusion_matrix_heatmap(cm, {"a", "b"}, "t"); }, "2 class names"));
  CHECK(throws_naming([&] { render_confusion_matrix_heatmap({{1, 2}, {3}}, {"a", "b"}, "t"); }, "row 1"));
  CHECK(throws_naming([&] { render_confusion_matrix_heatmap({}, {}, "t"); }, "empty"));
}

TEST_CASE("confusion_matrix_heatmap: many classes, long names, empty rows") {
  TempDir dir;
  std::vector<std::vector<int64_t>> cm(25, std::vector<int64_t>(25, 3));
  std::vector<std::string> names;
  for (int i = 0; i < 25; ++i) names.push_back("class number " + std::to_string(i));
  cm[4].assign(25, 0);  // a class with no samples: "-" instead of a percentage
  const std::string path = dir.file("big.png");
  confusion_matrix_heatmap(cm, names, "25 classes", path);
  check_png_file(path, render_confusion_matrix_heatmap(cm, names, "25 classes"));
}

TEST_CASE("roc_curves: writes a PNG; undefined curves are listed, not drawn") {
  const auto curves = metrics::roc_one_vs_rest(
      {{0.7f, 0.2f, 0.1f}, {0.6f, 0.3f, 0.1f}, {0.2f, 0.7f, 0.1f}, {0.4f, 0.5f, 0.1f}}, {0, 1, 1, 0}, 3);
  TempDir dir;
  const std::string path = dir.file("roc.png");
  roc_curves(curves, {"a", "b", "never present"}, path);
  check_png_file(path, render_roc_curves(curves, {"a", "b", "never present"}));
  CHECK(throws_naming([&] { render_roc_curves(curves, {"a"}); }, "3 curves but 1 names"));
  CHECK(throws_naming([&] { render_roc_curves({}, {}); }, "no curves"));
}

TEST_CASE("line_chart: writes a PNG of the requested size; tolerates gaps and flat series") {
  std::vector<Series> s(3);
  s[0].name = "train loss";
  s[1].name = "val loss";
  s[2].name = "flat";
  for (int e = 1; e <= 12; ++e) {
    s[0].x.push_back(e);
    s[0].y.push_back(2.0 / e);
    s[1].x.push_back(e);
    s[1].y.push_back(e == 5 ? NAN : 2.2 / e + 0.1);
    s[2].x.push_back(e);
    s[2].y.push_back(0.7);
  }
  TempDir dir;
  const std::string path = dir.file("loss.png");
  line_chart(s, "Loss", "epoch", "loss", path, 640, 400);
  check_png_file(path, Canvas(640, 400));
  // A single flat point, and no series at all, still give a chart.
  const Canvas one = render_line_chart({{"one", {3}, {0.5}}}, "t", "x", "y");
  CHECK(one.width() == 900);
  CHECK(render_line_chart({}, "", "", "").height() == 600);
  CHECK(throws_naming([] { render_line_chart({{"bad", {1, 2}, {1}}}, "t", "x", "y"); }, "\"bad\""));
  CHECK(throws_naming([] { render_line_chart({}, "t", "x", "y", 10, 10); }, "too small"));
}

TEST_CASE("image_grid: scaled tiles with green and red captions") {
  const int w = 6, h = 4;
  std::vector<std::vector<uint8_t>> imgs;
  for (int i = 0; i < 5; ++i) imgs.emplace_back(w * h, static_cast<uint8_t>(40 * i));
  const std::vector<std::string> caps{"true: happy / pred: happy", "true: sad / pred: fear", "a", "b", "c"};
  const std::vector<bool> ok{true, false, true, false, true};
  const Canvas c = render_image_grid(imgs, w, h, caps, ok, 3, 10, "Samples");
  // Some caption pixels are exactly the correct / wrong colours.
  bool green = false, red = false;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) {
      green = green || c.get(x, y) == colors::correct;
      red = red || c.get(x, y) == colors::wrong;
    }
  CHECK(green);
  CHECK(red);
  TempDir dir;
  const std::string path = dir.file("grid.png");
  image_grid(imgs, w, h, caps, ok, 3, 10, path, "Samples");
  check_png_file(path, c);
  // No captions at all is fine too.
  CHECK(render_image_grid(imgs, w, h, {}, {}, 10, 2).width() > 0);
  CHECK(throws_naming([&] { render_image_grid({std::vector<uint8_t>(5)}, w, h, {}, {}, 1, 1); }, "image 0 has 5 bytes"));
  CHECK(throws_naming([&] { render_image_grid(imgs, w, h, {"x"}, {}, 1, 1); }, "1 captions for 5 images"));
  CHECK(throws_naming([&] { render_image_grid(imgs, w, h, {}, {}, 0, 1); }, "columns = 0"));
}

TEST_CASE("probability_bars: writes a PNG") {
  TempDir dir;
  const std::vector<double> p{0.05, 0.01, 0.08, 0.62, 0.1, 0.04, 0.1};
  const std::string path = dir.file("bars.png");
  probability_bars(p, kNames, "Prediction: happy", path, 3, 3);
  check_png_file(path, render_probability_bars(p, kNames, "Prediction: happy", 3, 3));
  CHECK(throws_naming([&] { render_probability_bars({0.5, NAN}, {"a", "b"}, "t"); }, "probs[1]"));
}
