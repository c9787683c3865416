// The confusion-matrix heatmap of charts.h: counts and percentages in blue-shaded cells, class
// names on both axes, a colour bar on the right.
#include "apps/report/charts.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "apps/report/chart_layout.h"
#include "engine/error.h"

namespace fer::plot {

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

}  // namespace fer::plot
