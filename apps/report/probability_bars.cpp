// The probability bars of charts.h: one horizontal bar per class, the predicted one highlighted.
#include "apps/report/charts.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "apps/report/chart_layout.h"
#include "engine/error.h"

namespace fer::plot {

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
