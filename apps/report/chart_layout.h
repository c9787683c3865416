// What the charts of charts.h share, and nothing else uses: the text sizes, number formats and
// text placement, "nice" axis ticks, the plotting frame with its axes, and legends placed where
// the data leaves room. Sizes are pixels of the canvas (canvas.h).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "apps/report/canvas.h"

namespace fer::plot {

inline constexpr int kS = 2;       // text scale of labels, ticks and legends
inline constexpr int kTitleS = 3;  // text scale of titles
inline constexpr int kEdge = 14, kTickLen = 6, kTickGap = 6;  // margin, tick mark, tick-to-label

// v with `decimals` decimals ("-0.0" printed as "0.0").
std::string fmt(double v, int decimals);

void text_centered(Canvas& c, int cx, int y, const std::string& s, Color col, int scale);
void text_right(Canvas& c, int right, int y, const std::string& s, Color col, int scale);
// Title centred on cx but kept inside the canvas.
void draw_title(Canvas& c, int cx, int y, const std::string& s);
// Shortens s with ".." so that it is at most max_px wide.
std::string fit(const std::string& s, int max_px, int scale);

struct Ticks {
  double lo = 0, hi = 1, step = 0.2;
  int decimals = 1;
  std::vector<double> values;
};

// Ticks at multiples of a "nice" step (1, 2 or 5 times a power of ten) covering [lo, hi], about
// `target` of them; the range is widened to whole steps. integer: steps of at least 1.
Ticks nice_ticks(double lo, double hi, int target, bool integer);
// Ticks at fixed values (for [0, 1] axes).
Ticks fixed_ticks(double lo, double hi, double step, int decimals);

// The plotting area in pixels and the data range it shows.
struct Frame {
  int left = 0, top = 0, w = 1, h = 1;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - 1); }
  double py(double y) const { return top + (h - 1) - (y - y0) / (y1 - y0) * (h - 1); }
};

// Left margin: y label (vertical) + gap + tick labels + tick marks.
int left_margin(const Ticks& yt, bool has_ylabel);
// Below the plot: tick marks, tick labels, gap, x label, edge.
int bottom_margin(bool has_xlabel);
int top_margin(bool has_title);

// Grid lines, the frame, ticks with their labels, and the axis labels of frame f.
void draw_axes(Canvas& c, const Frame& f, const Ticks& xt, const Ticks& yt, const std::string& x_label,
               const std::string& y_label);

struct LegendEntry {
  std::string label;
  Color color;
  bool swatch = true;  // false: a text-only row
  bool marker = false;
};

void draw_legend(Canvas& c, int x, int y, const std::vector<LegendEntry>& entries);
// Places the legend in the corner of the frame that the given pixel points cross least
// (preference order on ties: `preferred` first, then top-right, bottom-right, top-left,
// bottom-left); returns its top-left.
std::pair<int, int> place_legend(const Frame& f, const std::vector<LegendEntry>& entries,
                                 const std::vector<std::vector<std::pair<double, double>>>& lines,
                                 int preferred);

// The check every chart's save function makes before drawing: a non-empty path.
void check_path_chart(const char* who, const std::string& path);

}  // namespace fer::plot
