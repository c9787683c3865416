// What the charts share: number formats, text placement, ticks, axes and legends; see
// chart_layout.h.
#include "apps/report/chart_layout.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/error.h"

namespace fer::plot {

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

void draw_title(Canvas& c, int cx, int y, const std::string& s) {
  const int w = Canvas::text_width(s, kTitleS);
  const int x = std::clamp(cx - w / 2, 4, std::max(4, c.width() - w - 4));
  c.text(x, y, s, colors::text, kTitleS);
}

std::string fit(const std::string& s, int max_px, int scale) {
  if (Canvas::text_width(s, scale) <= max_px) return s;
  std::string t = s;
  while (!t.empty() && Canvas::text_width(t + "..", scale) > max_px) t.pop_back();
  return t.empty() ? std::string() : t + "..";
}

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

namespace {
int max_tick_width(const Ticks& t) {
  int w = 0;
  for (double v : t.values) w = std::max(w, Canvas::text_width(fmt(v, t.decimals), kS));
  return w;
}
}  // namespace

int left_margin(const Ticks& yt, bool has_ylabel) {
  return kEdge + (has_ylabel ? Canvas::kGlyphH * kS + 14 : 0) + max_tick_width(yt) + kTickGap + kTickLen;
}
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

namespace {
constexpr Color kLegendBorder{190, 190, 190};
constexpr int kLegendPad = 10, kSwatchW = 30, kSwatchGap = 10;
int legend_row_h() { return Canvas::kGlyphH * kS + 8; }

std::pair<int, int> legend_size(const std::vector<LegendEntry>& entries) {
  int w = 0;
  for (const LegendEntry& e : entries) w = std::max(w, kSwatchW + kSwatchGap + Canvas::text_width(e.label, kS));
  return {w + 2 * kLegendPad, static_cast<int>(entries.size()) * legend_row_h() + 2 * kLegendPad - 8};
}
}  // namespace

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

}  // namespace fer::plot
