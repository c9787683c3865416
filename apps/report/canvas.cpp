// The report canvas: colours, pixels, lines, discs and text; see canvas.h.
#include "apps/report/canvas.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "apps/report/font.h"
#include "engine/error.h"

namespace fer::plot {

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

}  // namespace fer::plot
