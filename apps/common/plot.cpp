// The plot canvas, its bitmap font and the report charts; see plot.h.
#include "apps/common/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/error.h"

namespace fer::plot {

namespace {

// ---- Font --------------------------------------------------------------------------------------
// A 5x9 pixel font drawn for this file: one entry per printable ASCII character 32..126, nine rows
// top to bottom, bit 4 the leftmost pixel. Rows 0..6 hold capitals and digits (row 6 is the
// baseline row), rows 2..6 the x-height of lower case, rows 7..8 the descenders of g j p q y , ; _.
constexpr uint8_t kFont[95][9] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // 32 space
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00},  // 33 !
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // 34 "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00},  // 35 #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00},  // 36 $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00},  // 37 %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00},  // 38 &
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // 39 apostrophe
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00},  // 40 (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00},  // 41 )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00},  // 42 *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00},  // 43 +
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x06, 0x02, 0x04},  // 44 ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00},  // 45 -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // 46 .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00},  // 47 /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00},  // 48 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 49 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00},  // 50 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00},  // 51 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00},  // 52 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00},  // 53 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 54 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00},  // 55 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 56 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00},  // 57 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00},  // 58 :
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x04, 0x08, 0x00},  // 59 ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00},  // 60 <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // 61 =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00},  // 62 >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00},  // 63 ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00, 0x00},  // 64 @
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00},  // 65 A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00},  // 66 B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00},  // 67 C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00},  // 68 D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00},  // 69 E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00},  // 70 F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00},  // 71 G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00},  // 72 H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 73 I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00},  // 74 J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00},  // 75 K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00},  // 76 L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00},  // 77 M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00},  // 78 N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 79 O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00},  // 80 P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00},  // 81 Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00},  // 82 R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00},  // 83 S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 84 T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 85 U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00},  // 86 V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00},  // 87 W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00},  // 88 X
    {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 89 Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00},  // 90 Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00},  // 91 [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00},  // 92 backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00},  // 93 ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // 94 ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00},  // 95 _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // 96 `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00},  // 97 a
    {0x10, 0x10, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x00, 0x00},  // 98 b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00},  // 99 c
    {0x01, 0x01, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x00, 0x00},  // 100 d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00},  // 101 e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00},  // 102 f
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 103 g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // 104 h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 105 i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},  // 106 j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00},  // 107 k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 108 l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00},  // 109 m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // 110 n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 111 o
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10},  // 112 p
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01},  // 113 q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00},  // 114 r
    {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00},  // 115 s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00},  // 116 t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00},  // 117 u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00},  // 118 v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00},  // 119 w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00},  // 120 x
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 121 y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00},  // 122 z
    {0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00, 0x00},  // 123 {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 124 |
    {0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00, 0x00},  // 125 }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00},  // 126 ~
};

const uint8_t* glyph(char ch) {
  const unsigned char u = static_cast<unsigned char>(ch);
  return kFont[(u >= 32 && u <= 126) ? u - 32 : '?' - 32];
}

}  // namespace

// ---- Colours -----------------------------------------------------------------------------------

Color palette(int i) {
  static constexpr std::array<Color, 10> kTab10{{{31, 119, 180},
                                                 {255, 127, 14},
                                                 {44, 160, 44},
                                                 {214, 39, 40},
                                                 {148, 103, 189},
                                                 {140, 86, 75},
                                                 {227, 119, 194},
                                                 {127, 127, 127},
                                                 {188, 189, 34},
                                                 {23, 190, 207}}};
  const int n = static_cast<int>(kTab10.size());
  return kTab10[((i % n) + n) % n];
}

Color blues(double t) {
  // ColorBrewer "Blues" (9 classes), as in matplotlib, interpolated linearly.
  static constexpr std::array<Color, 9> kStops{{{247, 251, 255},
                                                {222, 235, 247},
                                                {198, 219, 239},
                                                {158, 202, 225},
                                                {107, 174, 214},
                                                {66, 146, 198},
                                                {33, 113, 181},
                                                {8, 81, 156},
                                                {8, 48, 107}}};
  if (!(t > 0)) t = 0;  // NaN too
  if (t > 1) t = 1;
  const double f = t * (kStops.size() - 1);
  const size_t i = std::min(static_cast<size_t>(f), kStops.size() - 2);
  const double u = f - static_cast<double>(i);
  auto mix = [u](uint8_t a, uint8_t b) {
    return static_cast<uint8_t>(std::lround(a + (static_cast<double>(b) - a) * u));
  };
  const Color a = kStops[i], b = kStops[i + 1];
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

// ---- Canvas ------------------------------------------------------------------------------------

Canvas::Canvas(int width, int height, Color background) : width_(width), height_(height) {
  FER_CHECK(width >= 1 && height >= 1 && width <= 16384 && height <= 16384, "Canvas: size ", width,
            "x", height, " is outside 1..16384");
  pixels_.resize(static_cast<size_t>(width) * height * 3);
  fill(background);
}

Color Canvas::get(int x, int y) const {
  FER_CHECK(contains(x, y), "Canvas::get: pixel (", x, ", ", y, ") is outside the ", width_, "x",
            height_, " canvas");
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  return {pixels_[i], pixels_[i + 1], pixels_[i + 2]};
}

void Canvas::fill(Color c) {
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = c.r;
    pixels_[i + 1] = c.g;
    pixels_[i + 2] = c.b;
  }
}

void Canvas::set(int x, int y, Color c) {
  if (!contains(x, y)) return;
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  pixels_[i] = c.r;
  pixels_[i + 1] = c.g;
  pixels_[i + 2] = c.b;
}

void Canvas::blend(int x, int y, Color c, double alpha) {
  if (!contains(x, y) || !(alpha > 0)) return;
  if (alpha >= 1) return set(x, y, c);
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  auto mix = [alpha](uint8_t dst, uint8_t src) {
    return static_cast<uint8_t>(std::lround(dst + (static_cast<double>(src) - dst) * alpha));
  };
  pixels_[i] = mix(pixels_[i], c.r);
  pixels_[i + 1] = mix(pixels_[i + 1], c.g);
  pixels_[i + 2] = mix(pixels_[i + 2], c.b);
}

void Canvas::fill_rect(int x, int y, int w, int h, Color c) {
  if (w <= 0 || h <= 0) return;
  const int64_t x0 = std::max<int64_t>(x, 0), y0 = std::max<int64_t>(y, 0);
  const int64_t x1 = std::min<int64_t>(int64_t{x} + w, width_), y1 = std::min<int64_t>(int64_t{y} + h, height_);
  for (int64_t yy = y0; yy < y1; ++yy)
    for (int64_t xx = x0; xx < x1; ++xx) set(static_cast<int>(xx), static_cast<int>(yy), c);
}

void Canvas::rect(int x, int y, int w, int h, Color c, int thickness) {
  if (w <= 0 || h <= 0 || thickness <= 0) return;
  const int t = std::min({thickness, (w + 1) / 2, (h + 1) / 2});
  fill_rect(x, y, w, t, c);
  fill_rect(x, static_cast<int>(std::clamp<int64_t>(int64_t{y} + h - t, INT32_MIN, INT32_MAX)), w, t, c);
  fill_rect(x, y, t, h, c);
  fill_rect(static_cast<int>(std::clamp<int64_t>(int64_t{x} + w - t, INT32_MIN, INT32_MAX)), y, t, h, c);
}

void Canvas::line(int x0, int y0, int x1, int y1, Color c, int thickness) {
  if (thickness <= 0) return;
  int64_t ax = x0, ay = y0, bx = x1, by = y1;
  const int64_t margin = thickness + 1;
  // Entirely outside on one side: nothing to draw.
  if ((ax < -margin && bx < -margin) || (ay < -margin && by < -margin) ||
      (ax >= width_ + margin && bx >= width_ + margin) || (ay >= height_ + margin && by >= height_ + margin))
    return;
  // Very long lines (far-away end points) are clipped first (Liang-Barsky) so the walk stays short;
  // lines of sane length are walked exactly as given.
  if (std::max(std::llabs(bx - ax), std::llabs(by - ay)) > 4 * (int64_t{width_} + height_) + 64) {
    double t0 = 0, t1 = 1;
    const double dx = static_cast<double>(bx - ax), dy = static_cast<double>(by - ay);
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {static_cast<double>(ax + margin), static_cast<double>(width_ - 1 + margin - ax),
                         static_cast<double>(ay + margin), static_cast<double>(height_ - 1 + margin - ay)};
    for (int k = 0; k < 4; ++k) {
      if (p[k] == 0) {
        if (q[k] < 0) return;
      } else {
        const double r = q[k] / p[k];
        if (p[k] < 0) t0 = std::max(t0, r); else t1 = std::min(t1, r);
      }
    }
    if (t0 > t1) return;
    const double sx = static_cast<double>(ax), sy = static_cast<double>(ay);
    ax = std::llround(sx + t0 * dx);
    ay = std::llround(sy + t0 * dy);
    bx = std::llround(sx + t1 * dx);
    by = std::llround(sy + t1 * dy);
  }
  const int64_t dx = std::llabs(bx - ax), dy = -std::llabs(by - ay);
  const int64_t sx = ax < bx ? 1 : -1, sy = ay < by ? 1 : -1;
  int64_t err = dx + dy;
  const int lo = -(thickness - 1) / 2;
  for (;;) {
    if (thickness == 1) {
      set(static_cast<int>(ax), static_cast<int>(ay), c);
    } else {
      fill_rect(static_cast<int>(ax + lo), static_cast<int>(ay + lo), thickness, thickness, c);
    }
    if (ax == bx && ay == by) break;
    const int64_t e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      ax += sx;
    }
    if (e2 <= dx) {
      err += dx;
      ay += sy;
    }
  }
}

void Canvas::polyline_aa(const std::vector<std::pair<double, double>>& points, Color c, double width) {
  if (points.empty() || !(width > 0) || !std::isfinite(width)) return;
  const double r = width / 2;
  const double reach = r + 1;
  // Coverage of the whole polyline, combined with max so that joints are not blended twice.
  double bx0 = std::numeric_limits<double>::infinity(), by0 = bx0, bx1 = -bx0, by1 = -bx0;
  for (const auto& [x, y] : points)
    if (std::isfinite(x) && std::isfinite(y)) {
      bx0 = std::min(bx0, x);
      by0 = std::min(by0, y);
      bx1 = std::max(bx1, x);
      by1 = std::max(by1, y);
    }
  if (!(bx0 <= bx1)) return;
  auto clip_lo = [](double v, int hi) { return static_cast<int>(std::clamp(std::floor(v), 0.0, static_cast<double>(hi))); };
  auto clip_hi = [](double v, int hi) { return static_cast<int>(std::clamp(std::ceil(v), -1.0, static_cast<double>(hi - 1))); };
  const int X0 = clip_lo(bx0 - reach, width_), Y0 = clip_lo(by0 - reach, height_);
  const int X1 = clip_hi(bx1 + reach, width_), Y1 = clip_hi(by1 + reach, height_);
  if (X0 > X1 || Y0 > Y1) return;
  const int bw = X1 - X0 + 1, bh = Y1 - Y0 + 1;
  std::vector<float> cov(static_cast<size_t>(bw) * bh, 0.0f);

  auto stamp = [&](double ax, double ay, double bx, double by) {
    const int sx0 = clip_lo(std::min(ax, bx) - reach, width_), sy0 = clip_lo(std::min(ay, by) - reach, height_);
    const int sx1 = clip_hi(std::max(ax, bx) + reach, width_), sy1 = clip_hi(std::max(ay, by) + reach, height_);
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = sy0; y <= sy1; ++y)
      for (int x = sx0; x <= sx1; ++x) {
        double t = len2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / len2 : 0;
        t = std::clamp(t, 0.0, 1.0);
        const double ex = x - (ax + t * dx), ey = y - (ay + t * dy);
        const double v = std::clamp(r + 0.5 - std::sqrt(ex * ex + ey * ey), 0.0, 1.0);
        float& slot = cov[static_cast<size_t>(y - Y0) * bw + (x - X0)];
        slot = std::max(slot, static_cast<float>(v));
      }
  };
  auto finite = [](const std::pair<double, double>& p) { return std::isfinite(p.first) && std::isfinite(p.second); };
  for (size_t i = 0; i < points.size(); ++i) {
    if (!finite(points[i])) continue;
    const bool has_prev = i > 0 && finite(points[i - 1]);
    const bool has_next = i + 1 < points.size() && finite(points[i + 1]);
    if (has_next) stamp(points[i].first, points[i].second, points[i + 1].first, points[i + 1].second);
    else if (!has_prev) stamp(points[i].first, points[i].second, points[i].first, points[i].second);
  }
  for (int y = Y0; y <= Y1; ++y)
    for (int x = X0; x <= X1; ++x) {
      const float v = cov[static_cast<size_t>(y - Y0) * bw + (x - X0)];
      if (v > 0) blend(x, y, c, v);
    }
}

void Canvas::line_aa(double x0, double y0, double x1, double y1, Color c, double width) {
  polyline_aa({{x0, y0}, {x1, y1}}, c, width);
}

void Canvas::dashed_line(double x0, double y0, double x1, double y1, Color c, double width,
                         double dash, double gap) {
  const double len = std::hypot(x1 - x0, y1 - y0);
  if (!std::isfinite(len) || !(dash > 0) || gap < 0) return;
  if (len > 4.0 * (width_ + height_) * 4) return line_aa(x0, y0, x1, y1, c, width);  // absurd: solid
  const double ux = len > 0 ? (x1 - x0) / len : 0, uy = len > 0 ? (y1 - y0) / len : 0;
  for (double s = 0; s < len; s += dash + gap) {
    const double e = std::min(len, s + dash);
    line_aa(x0 + ux * s, y0 + uy * s, x0 + ux * e, y0 + uy * e, c, width);
  }
}

void Canvas::fill_circle(double cx, double cy, double radius, Color c) {
  if (!(radius > 0) || !std::isfinite(cx) || !std::isfinite(cy) || !std::isfinite(radius)) return;
  const int x0 = static_cast<int>(std::clamp(std::floor(cx - radius - 1), 0.0, static_cast<double>(width_)));
  const int x1 = static_cast<int>(std::clamp(std::ceil(cx + radius + 1), -1.0, static_cast<double>(width_ - 1)));
  const int y0 = static_cast<int>(std::clamp(std::floor(cy - radius - 1), 0.0, static_cast<double>(height_)));
  const int y1 = static_cast<int>(std::clamp(std::ceil(cy + radius + 1), -1.0, static_cast<double>(height_ - 1)));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) blend(x, y, c, std::clamp(radius + 0.5 - std::hypot(x - cx, y - cy), 0.0, 1.0));
}

void Canvas::text(int x, int y, std::string_view s, Color c, int scale) {
  if (scale < 1) return;
  int64_t pen_x = x, pen_y = y;
  for (char ch : s) {
    if (ch == '\n') {
      pen_x = x;
      pen_y += int64_t{kLineH} * scale;
      continue;
    }
    if (pen_x < width_ && pen_y < height_ && pen_x + kGlyphW * scale > 0 && pen_y + kGlyphH * scale > 0) {
      const uint8_t* g = glyph(ch);
      for (int row = 0; row < kGlyphH; ++row)
        for (int col = 0; col < kGlyphW; ++col)
          if (g[row] & (0x10 >> col))
            fill_rect(static_cast<int>(pen_x + col * scale), static_cast<int>(pen_y + row * scale), scale, scale, c);
    }
    pen_x += int64_t{kAdvance} * scale;
  }
}

void Canvas::text_vertical(int x, int y, std::string_view s, Color c, int scale) {
  if (scale < 1) return;
  // Unrotated layout (ux to the right, uy down) in a box W wide; rotating counter-clockwise maps
  // (ux, uy) to (x + uy, y + W - 1 - ux).
  const int64_t W = text_width(s, scale);
  int64_t ux = 0, uy = 0;
  for (char ch : s) {
    if (ch == '\n') {
      ux = 0;
      uy += int64_t{kLineH} * scale;
      continue;
    }
    const uint8_t* g = glyph(ch);
    for (int row = 0; row < kGlyphH; ++row)
      for (int col = 0; col < kGlyphW; ++col)
        if (g[row] & (0x10 >> col)) {
          const int64_t bx = ux + col * scale, by = uy + row * scale;  // block [bx, bx+scale) x [by, by+scale)
          fill_rect(static_cast<int>(x + by), static_cast<int>(y + W - bx - scale), scale, scale, c);
        }
    ux += int64_t{kAdvance} * scale;
  }
}

int Canvas::text_width(std::string_view s, int scale) {
  size_t widest = 0, cur = 0;
  for (char ch : s) {
    if (ch == '\n') {
      widest = std::max(widest, cur);
      cur = 0;
    } else {
      ++cur;
    }
  }
  widest = std::max(widest, cur);
  return widest == 0 ? 0 : static_cast<int>(widest * kAdvance - (kAdvance - kGlyphW)) * scale;
}

int Canvas::text_height(std::string_view s, int scale) {
  const int lines = 1 + static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  return ((lines - 1) * kLineH + kGlyphH) * scale;
}

// ---- Chart helpers -----------------------------------------------------------------------------

namespace {

constexpr int kS = 2;            // text scale of labels, ticks and legends
constexpr int kTitleS = 3;       // text scale of titles
constexpr Color kLegendBorder{190, 190, 190};

std::string fmt(double v, int decimals) {
  char buf[64];
  if (std::fabs(v) < 0.5 * std::pow(10.0, -decimals)) v = 0;  // no "-0.0"
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void text_centered(Canvas& c, int cx, int y, const std::string& s, Color col, int scale) {
  c.text(cx - Canvas::text_width(s, scale) / 2, y, s, col, scale);
}
void text_right(Canvas& c, int right, int y, const std::string& s, Color col, int scale) {
  c.text(right - Canvas::text_width(s, scale), y, s, col, scale);
}

// Title centred on cx but kept inside the canvas.
void draw_title(Canvas& c, int cx, int y, const std::string& s) {
  const int w = Canvas::text_width(s, kTitleS);
  const int x = std::clamp(cx - w / 2, 4, std::max(4, c.width() - w - 4));
  c.text(x, y, s, colors::text, kTitleS);
}

// Shortens s with ".." so that it is at most max_px wide.
std::string fit(const std::string& s, int max_px, int scale) {
  if (Canvas::text_width(s, scale) <= max_px) return s;
  std::string t = s;
  while (!t.empty() && Canvas::text_width(t + "..", scale) > max_px) t.pop_back();
  return t.empty() ? std::string() : t + "..";
}

struct Ticks {
  double lo = 0, hi = 1, step = 0.2;
  int decimals = 1;
  std::vector<double> values;
};

// Ticks at multiples of a "nice" step (1, 2 or 5 times a power of ten) covering [lo, hi], about
// `target` of them; the range is widened to whole steps. integer: steps of at least 1.
Ticks nice_ticks(double lo, double hi, int target, bool integer) {
  Ticks t;
  if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(hi - lo)) {
    lo = 0;
    hi = 1;
  }
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(lo))) {
    const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 0.5;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  if (integer) step = std::max(step, 1.0);
  t.step = step;
  t.lo = std::floor(lo / step + 1e-9) * step;
  t.hi = std::ceil(hi / step - 1e-9) * step;
  t.decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  const int n = static_cast<int>(std::llround((t.hi - t.lo) / step));
  for (int i = 0; i <= n; ++i) t.values.push_back(t.lo + i * step);
  return t;
}

// Ticks at fixed values (for [0, 1] axes).
Ticks fixed_ticks(double lo, double hi, double step, int decimals) {
  Ticks t;
  t.lo = lo;
  t.hi = hi;
  t.step = step;
  t.decimals = decimals;
  const int n = static_cast<int>(std::llround((hi - lo) / step));
  for (int i = 0; i <= n; ++i) t.values.push_back(lo + i * step);
  return t;
}

// The plotting area in pixels and the data range it shows.
struct Frame {
  int left = 0, top = 0, w = 1, h = 1;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - 1); }
  double py(double y) const { return top + (h - 1) - (y - y0) / (y1 - y0) * (h - 1); }
};

int max_tick_width(const Ticks& t) {
  int w = 0;
  for (double v : t.values) w = std::max(w, Canvas::text_width(fmt(v, t.decimals), kS));
  return w;
}

// Left margin: y label (vertical) + gap + tick labels + tick marks.
constexpr int kEdge = 14, kTickLen = 6, kTickGap = 6;
int left_margin(const Ticks& yt, bool has_ylabel) {
  return kEdge + (has_ylabel ? Canvas::kGlyphH * kS + 14 : 0) + max_tick_width(yt) + kTickGap + kTickLen;
}
// Below the plot: tick marks, tick labels, gap, x label, edge.
int bottom_margin(bool has_xlabel) {
  return kTickLen + kTickGap + Canvas::kCapH * kS + (has_xlabel ? 16 + Canvas::kGlyphH * kS : 0) + kEdge;
}
int top_margin(bool has_title) { return has_title ? kEdge + Canvas::kGlyphH * kTitleS + 16 : kEdge + 8; }

void draw_axes(Canvas& c, const Frame& f, const Ticks& xt, const Ticks& yt, const std::string& x_label,
               const std::string& y_label) {
  // Grid.
  for (double v : xt.values) {
    const int x = static_cast<int>(std::lround(f.px(v)));
    c.line(x, f.top, x, f.top + f.h - 1, colors::grid);
  }
  for (double v : yt.values) {
    const int y = static_cast<int>(std::lround(f.py(v)));
    c.line(f.left, y, f.left + f.w - 1, y, colors::grid);
  }
  // Frame, ticks and tick labels.
  c.rect(f.left - 1, f.top - 1, f.w + 2, f.h + 2, colors::axis);
  const int label_y = f.top + f.h + kTickLen + kTickGap;
  int last_right = std::numeric_limits<int>::min();
  for (double v : xt.values) {
    const int x = static_cast<int>(std::lround(f.px(v)));
    c.line(x, f.top + f.h, x, f.top + f.h + kTickLen - 1, colors::axis);
    const std::string s = fmt(v, xt.decimals);
    const int w = Canvas::text_width(s, kS);
    const int lx = std::clamp(x - w / 2, 0, std::max(0, c.width() - w));
    if (lx > last_right + 8) {  // skip a label that would touch the previous one
      c.text(lx, label_y, s, colors::text, kS);
      last_right = lx + w;
    }
  }
  for (double v : yt.values) {
    const int y = static_cast<int>(std::lround(f.py(v)));
    c.line(f.left - kTickLen, y, f.left - 2, y, colors::axis);
    text_right(c, f.left - kTickLen - kTickGap, y - Canvas::kCapH * kS / 2, fmt(v, yt.decimals), colors::text, kS);
  }
  // Axis labels.
  if (!x_label.empty())
    text_centered(c, f.left + f.w / 2, label_y + Canvas::kCapH * kS + 16, x_label, colors::text, kS);
  if (!y_label.empty()) {
    const int h = Canvas::text_width(y_label, kS);
    c.text_vertical(kEdge, std::max(0, f.top + f.h / 2 - h / 2), y_label, colors::text, kS);
  }
}

// ---- Legend ------------------------------------------------------------------------------------

struct LegendEntry {
  std::string label;
  Color color;
  bool swatch = true;  // false: a text-only row
  bool marker = false;
};

constexpr int kLegendPad = 10, kSwatchW = 30, kSwatchGap = 10;
int legend_row_h() { return Canvas::kGlyphH * kS + 8; }

std::pair<int, int> legend_size(const std::vector<LegendEntry>& entries) {
  int w = 0;
  for (const LegendEntry& e : entries) w = std::max(w, kSwatchW + kSwatchGap + Canvas::text_width(e.label, kS));
  return {w + 2 * kLegendPad, static_cast<int>(entries.size()) * legend_row_h() + 2 * kLegendPad - 8};
}

void draw_legend(Canvas& c, int x, int y, const std::vector<LegendEntry>& entries) {
  const auto [w, h] = legend_size(entries);
  c.fill_rect(x, y, w, h, colors::white);
  c.rect(x, y, w, h, kLegendBorder);
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const int ry = y + kLegendPad + static_cast<int>(i) * legend_row_h();
    const int mid = ry + Canvas::kCapH * kS / 2;
    if (e.swatch) {
      c.line_aa(x + kLegendPad, mid, x + kLegendPad + kSwatchW, mid, e.color, 3.0);
      if (e.marker) c.fill_circle(x + kLegendPad + kSwatchW / 2.0, mid, 4.0, e.color);
    }
    c.text(x + kLegendPad + kSwatchW + kSwatchGap, ry, e.label, colors::text, kS);  // aligned rows
  }
}

// Places the legend in the corner of the frame that the given pixel points cross least
// (preference order on ties: `preferred` first, then top-right, bottom-right, top-left,
// bottom-left); returns its top-left.
std::pair<int, int> place_legend(const Frame& f, const std::vector<LegendEntry>& entries,
                                 const std::vector<std::vector<std::pair<double, double>>>& lines,
                                 int preferred) {
  const auto [w, h] = legend_size(entries);
  const int m = 10;
  const std::array<std::pair<int, int>, 4> corners{{{f.left + f.w - w - m, f.top + m},
                                                    {f.left + f.w - w - m, f.top + f.h - h - m},
                                                    {f.left + m, f.top + m},
                                                    {f.left + m, f.top + f.h - h - m}}};
  std::array<int64_t, 4> hits{};
  for (const auto& pts : lines)
    for (size_t i = 0; i + 1 < pts.size(); ++i) {
      const auto [ax, ay] = pts[i];
      const auto [bx, by] = pts[i + 1];
      if (!std::isfinite(ax) || !std::isfinite(ay) || !std::isfinite(bx) || !std::isfinite(by)) continue;
      const int n = std::clamp(static_cast<int>(std::hypot(bx - ax, by - ay) / 2) + 1, 1, 4000);
      for (int k = 0; k <= n; ++k) {
        const double x = ax + (bx - ax) * k / n, y = ay + (by - ay) * k / n;
        for (int q = 0; q < 4; ++q)
          if (x >= corners[q].first - 4 && x <= corners[q].first + w + 4 && y >= corners[q].second - 4 &&
              y <= corners[q].second + h + 4)
            ++hits[q];
      }
    }
  int best = std::clamp(preferred, 0, 3);
  for (int q = 0; q < 4; ++q)
    if (hits[q] < hits[best]) best = q;
  return corners[best];
}

void check_path_chart(const char* who, const std::string& path) {
  FER_CHECK(!path.empty(), who, ": empty output path");
}

}  // namespace

// ---- Confusion-matrix heatmap ------------------------------------------------------------------

Canvas render_confusion_matrix_heatmap(const std::vector<std::vector<int64_t>>& cm,
                                       const std::vector<std::string>& names, const std::string& title,
                                       bool normalise_rows, HeatmapLayout* layout) {
  const int C = static_cast<int>(cm.size());
  FER_CHECK(C >= 1, "confusion_matrix_heatmap: empty confusion matrix");
  FER_CHECK(names.size() == cm.size(), "confusion_matrix_heatmap: ", names.size(), " class names for a ", C,
            "x", C, " matrix");
  int64_t max_count = 0, total = 0;
  std::vector<int64_t> row_total(C, 0);
  for (int t = 0; t < C; ++t) {
    FER_CHECK(cm[t].size() == cm.size(), "confusion_matrix_heatmap: row ", t, " has ", cm[t].size(),
              " columns, expected ", C);
    for (int p = 0; p < C; ++p) {
      FER_CHECK(cm[t][p] >= 0, "confusion_matrix_heatmap: entry [", t, "][", p, "] = ", cm[t][p], " is negative");
      max_count = std::max(max_count, cm[t][p]);
      row_total[t] += cm[t][p];
      total += cm[t][p];
    }
  }
  auto value = [&](int t, int p) -> double {
    if (normalise_rows) return row_total[t] > 0 ? static_cast<double>(cm[t][p]) / row_total[t] : 0.0;
    return max_count > 0 ? static_cast<double>(cm[t][p]) / max_count : 0.0;
  };
  auto percent = [&](int t, int p) -> std::string {
    const int64_t den = normalise_rows ? row_total[t] : total;
    if (den == 0) return "-";
    return fmt(100.0 * static_cast<double>(cm[t][p]) / den, 1) + "%";
  };

  const int s = C > 20 ? 1 : kS;  // annotation and class-name scale
  int annot_w = Canvas::text_width("100.0%", s);
  for (int t = 0; t < C; ++t)
    for (int p = 0; p < C; ++p) annot_w = std::max(annot_w, Canvas::text_width(std::to_string(cm[t][p]), s));
  int name_w = 0;
  for (const std::string& n : names) name_w = std::max(name_w, Canvas::text_width(n, s));
  int cell = std::max({s == 1 ? 44 : 84, annot_w + 14, 2 * Canvas::kCapH * s + 5 + 16});
  // Column names sit horizontally under their cells when widening the cells a little allows it,
  // and are turned vertical otherwise.
  const int max_cell = s == 1 ? 64 : 130;
  if (name_w + 12 > cell && name_w + 12 <= max_cell) cell = name_w + 12;
  const bool vertical_cols = name_w + 12 > cell;

  const int ylabel_w = Canvas::kGlyphH * kS;
  const int x0 = kEdge + ylabel_w + 16 + name_w + 12;
  const int y0 = top_margin(!title.empty());
  const int grid = cell * C;
  const int col_label_h = vertical_cols ? name_w : Canvas::kGlyphH * s;
  const int bar_x = x0 + grid + 30, bar_w = 22;
  // Colour-bar ticks.
  // Colour-bar ticks: 0..100% of the row, or counts 0..largest count (ticks beyond it dropped).
  const double bar_max = normalise_rows ? 1.0 : static_cast<double>(std::max<int64_t>(max_count, 1));
  Ticks bar_ticks = normalise_rows ? fixed_ticks(0, 1, 0.25, 2) : nice_ticks(0, bar_max, 4, true);
  std::erase_if(bar_ticks.values, [&](double v) { return v > bar_max * (1 + 1e-9); });
  auto bar_label = [&](double v) {
    return normalise_rows ? fmt(100 * v, 0) + "%" : fmt(v, 0);
  };
  int bar_label_w = 0;
  for (double v : bar_ticks.values) bar_label_w = std::max(bar_label_w, Canvas::text_width(bar_label(v), kS));
  const int W = std::max(bar_x + bar_w + kTickLen + kTickGap + bar_label_w + kEdge + 6,
                         Canvas::text_width(title, kTitleS) + 2 * kEdge);
  const int H = y0 + grid + 10 + col_label_h + 16 + Canvas::kGlyphH * kS + kEdge + 4;
  Canvas c(W, H);
  if (layout) *layout = {x0, y0, cell};

  if (!title.empty()) draw_title(c, x0 + grid / 2, kEdge, title);

  for (int t = 0; t < C; ++t)
    for (int p = 0; p < C; ++p) {
      const double v = value(t, p);
      const Color bg = blues(v);
      const int cx0 = x0 + p * cell, cy0 = y0 + t * cell;
      c.fill_rect(cx0, cy0, cell, cell, bg);
      const double lum = 0.299 * bg.r + 0.587 * bg.g + 0.114 * bg.b;
      const Color fg = lum < 140 ? colors::white : colors::text;
      const int cx = cx0 + cell / 2, cy = cy0 + cell / 2;
      // Count above the centre row, percentage below it: the centre pixel stays the cell colour.
      text_centered(c, cx, cy - 3 - Canvas::kCapH * s, std::to_string(cm[t][p]), fg, s);
      text_centered(c, cx, cy + 4, percent(t, p), fg, s);
    }
  // Thin separators and a frame.
  for (int k = 1; k < C; ++k) {
    c.line(x0 + k * cell, y0, x0 + k * cell, y0 + grid - 1, colors::white);
    c.line(x0, y0 + k * cell, x0 + grid - 1, y0 + k * cell, colors::white);
  }
  c.rect(x0 - 1, y0 - 1, grid + 2, grid + 2, colors::axis);

  // Class names: rows on the left (right-aligned), columns underneath.
  for (int t = 0; t < C; ++t)
    text_right(c, x0 - 10, y0 + t * cell + cell / 2 - Canvas::kCapH * s / 2, names[t], colors::text, s);
  for (int p = 0; p < C; ++p) {
    const int cx = x0 + p * cell + cell / 2;
    if (vertical_cols) {
      // Reads bottom to top, its end against the grid.
      c.text_vertical(cx - Canvas::kCapH * s / 2, y0 + grid + 10, names[p], colors::text, s);
    } else {
      text_centered(c, cx, y0 + grid + 10, names[p], colors::text, s);
    }
  }
  // Axis titles.
  text_centered(c, x0 + grid / 2, y0 + grid + 10 + col_label_h + 16, "predicted", colors::text, kS);
  const int tw = Canvas::text_width("true", kS);
  c.text_vertical(kEdge, y0 + grid / 2 - tw / 2, "true", colors::text, kS);

  // Colour bar.
  for (int y = 0; y < grid; ++y) {
    const double v = 1.0 - static_cast<double>(y) / std::max(1, grid - 1);
    c.fill_rect(bar_x, y0 + y, bar_w, 1, blues(v));
  }
  c.rect(bar_x - 1, y0 - 1, bar_w + 2, grid + 2, colors::axis);
  for (double v : bar_ticks.values) {
    const double frac = v / bar_max;
    const int y = y0 + static_cast<int>(std::lround((1.0 - frac) * (grid - 1)));
    c.line(bar_x + bar_w + 1, y, bar_x + bar_w + kTickLen, y, colors::axis);
    c.text(bar_x + bar_w + kTickLen + kTickGap, y - Canvas::kCapH * kS / 2, bar_label(v), colors::text, kS);
  }
  return c;
}

void confusion_matrix_heatmap(const std::vector<std::vector<int64_t>>& cm, const std::vector<std::string>& names,
                              const std::string& title, const std::string& path, bool normalise_rows) {
  check_path_chart("confusion_matrix_heatmap", path);
  save_png(render_confusion_matrix_heatmap(cm, names, title, normalise_rows), path);
}

// ---- ROC curves --------------------------------------------------------------------------------

Canvas render_roc_curves(const std::vector<metrics::RocCurve>& curves, const std::vector<std::string>& names,
                         const std::string& title) {
  FER_CHECK(!curves.empty(), "roc_curves: no curves");
  FER_CHECK(curves.size() == names.size(), "roc_curves: ", curves.size(), " curves but ", names.size(), " names");
  for (size_t k = 0; k < curves.size(); ++k)
    FER_CHECK(curves[k].fpr.size() == curves[k].tpr.size(), "roc_curves: curve ", k, " (", names[k], ") has ",
              curves[k].fpr.size(), " fpr but ", curves[k].tpr.size(), " tpr values");

  const Ticks t = fixed_ticks(0, 1, 0.2, 1);
  const std::string xl = "false positive rate", yl = "true positive rate";
  const int side = 560;
  Frame f;
  f.left = left_margin(t, true);
  f.top = top_margin(!title.empty());
  f.w = f.h = side;
  const int W = std::max(f.left + side + 36, Canvas::text_width(title, kTitleS) + 2 * kEdge);
  const int H = f.top + side + bottom_margin(true);
  Canvas c(W, H);
  if (!title.empty()) draw_title(c, f.left + side / 2, kEdge, title);
  draw_axes(c, f, t, t, xl, yl);
  c.dashed_line(f.px(0), f.py(0), f.px(1), f.py(1), Color{150, 150, 150}, 1.5, 8, 6);

  const std::string macro_name = "macro average";
  size_t name_len = macro_name.size();
  for (const std::string& n : names) name_len = std::max(name_len, n.size());
  auto legend_label = [&](const std::string& n, double auc) {
    return n + std::string(name_len - n.size(), ' ') + "  AUC " + (std::isfinite(auc) ? fmt(auc, 3) : std::string("n/a"));
  };
  std::vector<LegendEntry> entries;
  std::vector<std::vector<std::pair<double, double>>> lines;
  for (size_t k = 0; k < curves.size(); ++k) {
    const metrics::RocCurve& r = curves[k];
    const Color col = palette(static_cast<int>(k));
    entries.push_back({legend_label(names[k], r.defined ? r.auc : NAN), col});
    if (!r.defined) {  // listed, not drawn
      entries.back().color = Color{200, 200, 200};
      continue;
    }
    std::vector<std::pair<double, double>> pts;
    pts.reserve(r.fpr.size());
    for (size_t i = 0; i < r.fpr.size(); ++i)
      pts.emplace_back(f.px(std::clamp(r.fpr[i], 0.0, 1.0)), f.py(std::clamp(r.tpr[i], 0.0, 1.0)));
    lines.push_back(std::move(pts));
  }
  size_t li = 0;
  for (size_t k = 0; k < curves.size(); ++k)
    if (curves[k].defined) c.polyline_aa(lines[li++], palette(static_cast<int>(k)), 2.5);
  entries.push_back({legend_label(macro_name, metrics::macro_auc(curves)), colors::text, false});
  const auto [lx, ly] = place_legend(f, entries, lines, 1);
  draw_legend(c, lx, ly, entries);
  return c;
}

void roc_curves(const std::vector<metrics::RocCurve>& curves, const std::vector<std::string>& names,
                const std::string& path, const std::string& title) {
  check_path_chart("roc_curves", path);
  save_png(render_roc_curves(curves, names, title), path);
}

// ---- Line chart --------------------------------------------------------------------------------

Canvas render_line_chart(const std::vector<Series>& series, const std::string& title, const std::string& x_label,
                         const std::string& y_label, int width, int height) {
  FER_CHECK(width >= 200 && height >= 150, "line_chart: size ", width, "x", height, " is too small (min 200x150)");
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  bool all_int_x = true;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    FER_CHECK(s.x.size() == s.y.size(), "line_chart: series ", k, " (\"", s.name, "\") has ", s.x.size(),
              " x values but ", s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
      all_int_x = all_int_x && s.x[i] == std::round(s.x[i]);
    }
  }
  if (!(xmin <= xmax)) {
    xmin = 0;
    xmax = 1;
    ymin = 0;
    ymax = 1;
    all_int_x = false;
  }
  const Ticks xt = nice_ticks(xmin, xmax, std::max(3, width / 110), all_int_x);
  const Ticks yt = nice_ticks(ymin, ymax, std::max(3, height / 90), false);
  Frame f;
  f.left = left_margin(yt, !y_label.empty());
  f.top = top_margin(!title.empty());
  f.w = width - f.left - 36;
  f.h = height - f.top - bottom_margin(!x_label.empty());
  FER_CHECK(f.w >= 50 && f.h >= 50, "line_chart: ", width, "x", height, " leaves no room to plot");
  f.x0 = xt.lo;
  f.x1 = xt.hi;
  f.y0 = yt.lo;
  f.y1 = yt.hi;

  Canvas c(width, height);
  if (!title.empty()) draw_title(c, f.left + f.w / 2, kEdge, title);
  draw_axes(c, f, xt, yt, x_label, y_label);

  std::vector<LegendEntry> entries;
  std::vector<std::vector<std::pair<double, double>>> lines;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < s.x.size(); ++i) {
      const bool ok = std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
      pts.emplace_back(ok ? f.px(s.x[i]) : NAN, ok ? f.py(s.y[i]) : NAN);
    }
    const bool markers = s.x.size() <= 40;
    const Color col = palette(static_cast<int>(k));
    c.polyline_aa(pts, col, 2.5);
    if (markers)
      for (const auto& [x, y] : pts) c.fill_circle(x, y, 3.5, col);
    lines.push_back(std::move(pts));
    if (!s.name.empty()) entries.push_back({s.name, col, true, markers});  // unnamed: no legend row
  }
  if (!entries.empty()) {
    const auto [lx, ly] = place_legend(f, entries, lines, 0);
    draw_legend(c, lx, ly, entries);
  }
  return c;
}

void line_chart(const std::vector<Series>& series, const std::string& title, const std::string& x_label,
                const std::string& y_label, const std::string& path, int width, int height) {
  check_path_chart("line_chart", path);
  save_png(render_line_chart(series, title, x_label, y_label, width, height), path);
}

// ---- Image grid --------------------------------------------------------------------------------

namespace {

std::vector<std::string> caption_lines(const std::string& caption) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < caption.size();) {
    if (caption[i] == '\n') {
      out.push_back(cur);
      cur.clear();
      ++i;
    } else if (caption.compare(i, 3, " / ") == 0) {
      out.push_back(cur);
      cur.clear();
      i += 3;
    } else {
      cur += caption[i++];
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

Canvas render_image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                         const std::vector<std::string>& captions, const std::vector<bool>& correct, int columns,
                         int scale, const std::string& title) {
  FER_CHECK(!images.empty(), "image_grid: no images");
  FER_CHECK(img_w >= 1 && img_h >= 1, "image_grid: image size ", img_w, "x", img_h);
  FER_CHECK(columns >= 1, "image_grid: columns = ", columns, " (need >= 1)");
  FER_CHECK(scale >= 1 && scale <= 64, "image_grid: scale = ", scale, " (need 1..64)");
  FER_CHECK(captions.empty() || captions.size() == images.size(), "image_grid: ", captions.size(),
            " captions for ", images.size(), " images");
  FER_CHECK(correct.empty() || correct.size() == images.size(), "image_grid: ", correct.size(),
            " correct flags for ", images.size(), " images");
  for (size_t i = 0; i < images.size(); ++i)
    FER_CHECK(images[i].size() == static_cast<size_t>(img_w) * img_h, "image_grid: image ", i, " has ",
              images[i].size(), " bytes, expected ", img_w, "x", img_h, " = ", static_cast<size_t>(img_w) * img_h);

  const int n = static_cast<int>(images.size());
  const int cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  const int frame = 3, tile_w = img_w * scale + 2 * frame, tile_h = img_h * scale + 2 * frame;
  // Caption scale: 2 when the widest caption line is at most twice the tile's width at that size
  // (the columns are spread apart to make room), else 1; lines still too wide are shortened.
  std::vector<std::vector<std::string>> lines(n);
  size_t max_lines = 0, max_chars = 0;
  for (int i = 0; i < n; ++i) {
    if (!captions.empty()) lines[i] = caption_lines(captions[i]);
    max_lines = std::max(max_lines, lines[i].size());
    for (const std::string& l : lines[i]) max_chars = std::max(max_chars, l.size());
  }
  const std::string widest(max_chars, 'M');
  const int cs = Canvas::text_width(widest, kS) <= 2 * tile_w ? kS : 1;
  const int caption_w = std::min(Canvas::text_width(widest, cs), 2 * tile_w);
  const int gap = std::max(16, caption_w + 24 - tile_w);  // between columns: captions 24 px apart
  const int row_gap = 18;
  const int cap_h = max_lines == 0 ? 0 : 6 + static_cast<int>(max_lines) * Canvas::kLineH * cs;
  const int top = title.empty() ? 12 : top_margin(true);
  const int side = std::max(12, (caption_w - tile_w) / 2 + 10);  // captions overhang their tiles
  const int W = std::max(2 * side + cols * tile_w + (cols - 1) * gap, Canvas::text_width(title, kTitleS) + 2 * kEdge);
  const int H = top + rows * (tile_h + cap_h) + (rows - 1) * row_gap + 16;
  Canvas c(W, H);
  if (!title.empty()) draw_title(c, W / 2, kEdge, title);
  const int left = (W - (cols * tile_w + (cols - 1) * gap)) / 2;
  for (int i = 0; i < n; ++i) {
    const int x = left + (i % cols) * (tile_w + gap), y = top + (i / cols) * (tile_h + cap_h + row_gap);
    const Color status = correct.empty() ? Color{150, 150, 150} : (correct[i] ? colors::correct : colors::wrong);
    c.fill_rect(x, y, tile_w, tile_h, status);
    for (int yy = 0; yy < img_h; ++yy)
      for (int xx = 0; xx < img_w; ++xx) {
        const uint8_t g = images[i][static_cast<size_t>(yy) * img_w + xx];
        c.fill_rect(x + frame + xx * scale, y + frame + yy * scale, scale, scale, Color{g, g, g});
      }
    for (size_t l = 0; l < lines[i].size(); ++l) {
      const std::string s = fit(lines[i][l], tile_w + gap - 20, cs);
      text_centered(c, x + tile_w / 2, y + tile_h + 6 + static_cast<int>(l) * Canvas::kLineH * cs, s,
                    correct.empty() ? colors::text : status, cs);
    }
  }
  return c;
}

void image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                const std::vector<std::string>& captions, const std::vector<bool>& correct, int columns, int scale,
                const std::string& path, const std::string& title) {
  check_path_chart("image_grid", path);
  save_png(render_image_grid(images, img_w, img_h, captions, correct, columns, scale, title), path);
}

// ---- Probability bars --------------------------------------------------------------------------

Canvas render_probability_bars(const std::vector<double>& probs, const std::vector<std::string>& names,
                               const std::string& title, int highlight, int true_class) {
  FER_CHECK(!probs.empty(), "probability_bars: no probabilities");
  FER_CHECK(probs.size() == names.size(), "probability_bars: ", probs.size(), " probabilities but ", names.size(),
            " names");
  for (size_t i = 0; i < probs.size(); ++i)
    FER_CHECK(std::isfinite(probs[i]), "probability_bars: probs[", i, "] = ", probs[i], " is not finite");
  const int C = static_cast<int>(probs.size());
  std::vector<std::string> labels(names);
  if (true_class >= 0 && true_class < C) labels[true_class] += " (true)";
  int name_w = 0;
  for (const std::string& l : labels) name_w = std::max(name_w, Canvas::text_width(l, kS));
  const int bar_h = 26, row_h = 38, bar_len = 420;
  const int x0 = kEdge + name_w + 14;
  const int y0 = top_margin(!title.empty());
  const int value_w = Canvas::text_width("0.000", kS);
  const int W = std::max(x0 + bar_len + 10 + value_w + kEdge + 10, Canvas::text_width(title, kTitleS) + 2 * kEdge);
  const int H = y0 + C * row_h + kTickLen + kTickGap + Canvas::kCapH * kS + kEdge + 6;
  Canvas c(W, H);
  if (!title.empty()) draw_title(c, W / 2, kEdge, title);
  // Grid at 0, 0.25, ..., 1.
  const Ticks t = fixed_ticks(0, 1, 0.25, 2);
  const int axis_y = y0 + C * row_h;
  for (double v : t.values) {
    const int x = x0 + static_cast<int>(std::lround(v * bar_len));
    c.line(x, y0 - 4, x, axis_y, colors::grid);
    c.line(x, axis_y, x, axis_y + kTickLen - 1, colors::axis);
    text_centered(c, x, axis_y + kTickLen + kTickGap, fmt(v, 2), colors::text, kS);
  }
  c.line(x0, y0 - 4, x0, axis_y, colors::axis);
  c.line(x0, axis_y, x0 + bar_len, axis_y, colors::axis);
  for (int k = 0; k < C; ++k) {
    const int y = y0 + k * row_h + (row_h - bar_h) / 2;
    const double p = std::clamp(probs[k], 0.0, 1.0);
    const Color col = k == highlight ? palette(0) : Color{170, 190, 210};
    c.fill_rect(x0 + 1, y, static_cast<int>(std::lround(p * bar_len)), bar_h, col);
    const int ty = y + bar_h / 2 - Canvas::kCapH * kS / 2;
    text_right(c, x0 - 10, ty, labels[k], k == true_class ? colors::black : colors::text, kS);
    c.text(x0 + static_cast<int>(std::lround(p * bar_len)) + 8, ty, fmt(probs[k], 3), colors::text, kS);
  }
  return c;
}

void probability_bars(const std::vector<double>& probs, const std::vector<std::string>& names,
                      const std::string& title, const std::string& path, int highlight, int true_class) {
  check_path_chart("probability_bars", path);
  save_png(render_probability_bars(probs, names, title, highlight, true_class), path);
}

}  // namespace fer::plot
