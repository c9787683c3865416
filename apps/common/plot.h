// A tiny raster canvas (RGB8) with a built-in bitmap font, and the charts of the evaluation and
// training reports: confusion-matrix heatmap, ROC curves, line charts (training curves), image
// grids of faces with captions, and probability bars. No external plotting library: the canvas is
// drawn pixel by pixel and written as PNG with stb_image_write.
//
// Coordinates are pixels, x to the right and y down, (0, 0) the top-left pixel. Every drawing call
// clips to the canvas: drawing partly or wholly outside it is safe and draws only what is inside.
//
// Text uses a 5x9 pixel font (cap height 7, two rows of descenders) on a 6 x 10 cell, covering
// printable ASCII 32..126 (anything else is drawn as '?'), magnified by an integer scale.
//
// Each chart comes as render_*(...) -> Canvas (for tests and compositing) and as a function that
// renders and saves to a PNG path; every failure is a fer::Error naming the chart or the path.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/metrics.h"

namespace fer::plot {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Color&) const = default;
};

namespace colors {
inline constexpr Color white{255, 255, 255};
inline constexpr Color black{0, 0, 0};
inline constexpr Color text{30, 30, 30};
inline constexpr Color axis{60, 60, 60};
inline constexpr Color grid{225, 225, 225};
inline constexpr Color correct{0, 140, 40};  // green captions (correct predictions)
inline constexpr Color wrong{205, 20, 20};   // red captions (mistakes)
}  // namespace colors

// The i-th colour of a 10-colour categorical palette (matplotlib's tab10), cycling.
Color palette(int i);
// A white -> dark blue ramp (like matplotlib's "Blues"), t in [0, 1] (clamped): lightness falls
// monotonically with t, so the darkest cell is the largest value.
Color blues(double t);

class Canvas {
 public:
  Canvas(int width, int height, Color background = colors::white);  // throws if not 1..16384

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& pixels() const { return pixels_; }  // RGB, row-major, no padding

  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width_ && y < height_; }
  Color get(int x, int y) const;  // throws fer::Error outside the canvas

  void fill(Color c);
  void set(int x, int y, Color c);                    // clipped: outside is ignored
  void blend(int x, int y, Color c, double alpha);    // alpha in [0, 1], clipped

  // Bresenham line including both end points; thickness > 1 stamps a square brush.
  void line(int x0, int y0, int x1, int y1, Color c, int thickness = 1);
  // Anti-aliased line of the given width with round caps (sub-pixel end points; a pixel's centre
  // is its integer coordinate).
  void line_aa(double x0, double y0, double x1, double y1, Color c, double width = 1.5);
  // Anti-aliased connected line through points {x, y}; coverage is combined per pixel (joints are
  // not drawn twice). A non-finite point breaks the line.
  void polyline_aa(const std::vector<std::pair<double, double>>& points, Color c, double width = 1.5);
  // Dashed version of line_aa: `dash` pixels drawn, `gap` pixels skipped.
  void dashed_line(double x0, double y0, double x1, double y1, Color c, double width = 1.0,
                   double dash = 6, double gap = 4);
  void fill_rect(int x, int y, int w, int h, Color c);
  void rect(int x, int y, int w, int h, Color c, int thickness = 1);  // outline, inside the box
  void fill_circle(double cx, double cy, double radius, Color c);     // anti-aliased disc

  // Text with its top-left corner at (x, y); '\n' starts a new line. The box it may touch is
  // text_width(s, scale) x text_height(s, scale) from (x, y).
  void text(int x, int y, std::string_view s, Color c, int scale = 1);
  // Text rotated 90 degrees counter-clockwise (reads bottom to top), for vertical axis labels;
  // (x, y) is the top-left of its box, which is text_height(s) wide and text_width(s) tall.
  void text_vertical(int x, int y, std::string_view s, Color c, int scale = 1);

  static int text_width(std::string_view s, int scale = 1);   // widest line, in pixels
  static int text_height(std::string_view s, int scale = 1);  // all lines, descenders included
  static constexpr int kGlyphW = 5, kGlyphH = 9, kCapH = 7, kAdvance = 6, kLineH = 11;

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// PNG encoding (stb_image_write, in png_writer.cpp). save_png writes to a temporary file beside
// `path` and renames it over `path`, creating missing parent directories; throws fer::Error
// naming the path on any failure.
std::vector<uint8_t> encode_png(const Canvas& canvas);
void save_png(const Canvas& canvas, const std::string& path);

// ---- Charts ------------------------------------------------------------------------------------

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
