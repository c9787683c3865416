// The charts of the evaluation and training reports: confusion-matrix heatmap, ROC curves, line
// charts (training curves), image grids of faces with captions, and probability bars, drawn on
// the canvas of canvas.h (each in its own file: confusion_matrix.cpp, roc_curves.cpp, ...; the
// axes, ticks and legends they share are in chart_layout.h).
//
// Each chart comes as render_*(...) -> Canvas (for tests and compositing) and as a function that
// renders and saves to a PNG path; every failure is a fer::Error naming the chart or the path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/report/canvas.h"
#include "apps/report/png.h"
#include "engine/metrics.h"

namespace fer::plot {

// Where the heatmap's cells are: cell (t, p) spans [x0 + p*cell, x0 + (p+1)*cell) horizontally and
// [y0 + t*cell, y0 + (t+1)*cell) vertically; its centre pixel is always the cell's colour.
struct HeatmapLayout {
  int x0 = 0, y0 = 0, cell = 0;
};

// Rows = true class, columns = predicted class. With normalise_rows each cell is coloured by
// count / row total and annotated "count" over "row %"; otherwise by count / largest count and
// annotated "count" over "% of all samples". A colour bar sits on the right.
Canvas render_confusion_matrix_heatmap(const std::vector<std::vector<int64_t>>& cm,
                                       const std::vector<std::string>& names,
                                       const std::string& title, bool normalise_rows = true,
                                       HeatmapLayout* layout = nullptr);
void confusion_matrix_heatmap(const std::vector<std::vector<int64_t>>& cm,
                              const std::vector<std::string>& names, const std::string& title,
                              const std::string& path, bool normalise_rows = true);

// One coloured curve per class (legend "name  AUC 0.912"; undefined curves are listed as "n/a"
// and not drawn), the chance diagonal dashed, and the macro AUC in the legend.
Canvas render_roc_curves(const std::vector<metrics::RocCurve>& curves,
                         const std::vector<std::string>& names,
                         const std::string& title = "ROC curves (one vs rest)");
void roc_curves(const std::vector<metrics::RocCurve>& curves, const std::vector<std::string>& names,
                const std::string& path, const std::string& title = "ROC curves (one vs rest)");

struct Series {
  std::string name;
  std::vector<double> x, y;  // equal lengths; non-finite points break the line
};

// Axis ranges cover all finite points, with "nice" ticks (1, 2, 5 x 10^k); the legend goes in the
// corner of the plot that the data crosses least. Points get markers when a series has <= 40.
Canvas render_line_chart(const std::vector<Series>& series, const std::string& title,
                         const std::string& x_label, const std::string& y_label,
                         int width = 900, int height = 600);
void line_chart(const std::vector<Series>& series, const std::string& title,
                const std::string& x_label, const std::string& y_label, const std::string& path,
                int width = 900, int height = 600);

// A grid of grayscale images (each img_w * img_h bytes, row-major), magnified `scale` times
// (nearest neighbour), `columns` per row, each framed and captioned underneath in green when
// correct[i] and red otherwise. " / " or '\n' in a caption starts a new caption line; captions
// too wide for the tile are shortened with "..". captions and correct may be empty (no captions,
// neutral frames); otherwise they have one entry per image.
Canvas render_image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                         const std::vector<std::string>& captions, const std::vector<bool>& correct,
                         int columns, int scale, const std::string& title = "");
void image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                const std::vector<std::string>& captions, const std::vector<bool>& correct,
                int columns, int scale, const std::string& path, const std::string& title = "");

// Horizontal bars, one per class, with the probability printed at the bar's end; `highlight`
// (e.g. the predicted class, -1 for none) is drawn in a stronger colour, `true_class` (-1 for
// none) is marked "(true)".
Canvas render_probability_bars(const std::vector<double>& probs, const std::vector<std::string>& names,
                               const std::string& title, int highlight = -1, int true_class = -1);
void probability_bars(const std::vector<double>& probs, const std::vector<std::string>& names,
                      const std::string& title, const std::string& path, int highlight = -1,
                      int true_class = -1);

}  // namespace fer::plot
