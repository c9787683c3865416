// ROC curves of charts.h: one curve per class, the chance diagonal, AUCs in the legend.
#include "apps/report/charts.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "apps/report/chart_layout.h"
#include "engine/error.h"

namespace fer::plot {

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

}  // namespace fer::plot
