// The line chart of charts.h (training curves): nice ticks over all finite points, markers on
// short series, the legend in the emptiest corner.
#include "apps/report/charts.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "apps/report/chart_layout.h"
#include "engine/error.h"

namespace fer::plot {

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

}  // namespace fer::plot
