// A tiny raster canvas (RGB8) for the report pictures: pixels, lines (plain and anti-aliased),
// rectangles, discs and text in the bitmap font of font.h. No external drawing library: every
// pixel is set here, and png.h writes the result.
//
// Coordinates are pixels, x to the right and y down, (0, 0) the top-left pixel. Every drawing call
// clips to the canvas: drawing partly or wholly outside it is safe and draws only what is inside.
//
// Text uses a 5x9 pixel font (cap height 7, two rows of descenders) on a 6 x 10 cell, covering
// printable ASCII 32..126 (anything else is drawn as '?'), magnified by an integer scale.
#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

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

}  // namespace fer::plot
