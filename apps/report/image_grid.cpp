// The image grid of charts.h: grayscale faces magnified, framed and captioned in green (correct)
// or red (mistake).
#include "apps/report/charts.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "apps/report/chart_layout.h"
#include "engine/error.h"

namespace fer::plot {

namespace {

std::vector<std::string> caption_lines(const std::string& caption) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < caption.size();) {
    if (caption[i] == '\n') {
      out.push_back(cur);
      cur.clear();
      ++i;
    } else if (caption.compare(i, 3, " / ") == 0) {
      out.push_back(cur);
      cur.clear();
      i += 3;
    } else {
      cur += caption[i++];
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

Canvas render_image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                         const std::vector<std::string>& captions, const std::vector<bool>& correct, int columns,
                         int scale, const std::string& title) {
  FER_CHECK(!images.empty(), "image_grid: no images");
  FER_CHECK(img_w >= 1 && img_h >= 1, "image_grid: image size ", img_w, "x", img_h);
  FER_CHECK(columns >= 1, "image_grid: columns = ", columns, " (need >= 1)");
  FER_CHECK(scale >= 1 && scale <= 64, "image_grid: scale = ", scale, " (need 1..64)");
  FER_CHECK(captions.empty() || captions.size() == images.size(), "image_grid: ", captions.size(),
            " captions for ", images.size(), " images");
  FER_CHECK(correct.empty() || correct.size() == images.size(), "image_grid: ", correct.size(),
            " correct flags for ", images.size(), " images");
  for (size_t i = 0; i < images.size(); ++i)
    FER_CHECK(images[i].size() == static_cast<size_t>(img_w) * img_h, "image_grid: image ", i, " has ",
              images[i].size(), " bytes, expected ", img_w, "x", img_h, " = ", static_cast<size_t>(img_w) * img_h);

  const int n = static_cast<int>(images.size());
  const int cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  const int frame = 3, tile_w = img_w * scale + 2 * frame, tile_h = img_h * scale + 2 * frame;
  // Caption scale: 2 when the widest caption line is at most twice the tile's width at that size
  // (the columns are spread apart to make room), else 1; lines still too wide are shortened.
  std::vector<std::vector<std::string>> lines(n);
  size_t max_lines = 0, max_chars = 0;
  for (int i = 0; i < n; ++i) {
    if (!captions.empty()) lines[i] = caption_lines(captions[i]);
    max_lines = std::max(max_lines, lines[i].size());
    for (const std::string& l : lines[i]) max_chars = std::max(max_chars, l.size());
  }
  const std::string widest(max_chars, 'M');
  const int cs = Canvas::text_width(widest, kS) <= 2 * tile_w ? kS : 1;
  const int caption_w = std::min(Canvas::text_width(widest, cs), 2 * tile_w);
  const int gap = std::max(16, caption_w + 24 - tile_w);  // between columns: captions 24 px apart
  const int row_gap = 18;
  const int cap_h = max_lines == 0 ? 0 : 6 + static_cast<int>(max_lines) * Canvas::kLineH * cs;
  const int top = title.empty() ? 12 : top_margin(true);
  const int side = std::max(12, (caption_w - tile_w) / 2 + 10);  // captions overhang their tiles
  const int W = std::max(2 * side + cols * tile_w + (cols - 1) * gap, Canvas::text_width(title, kTitleS) + 2 * kEdge);
  const int H = top + rows * (tile_h + cap_h) + (rows - 1) * row_gap + 16;
  Canvas c(W, H);
  if (!title.empty()) draw_title(c, W / 2, kEdge, title);
  const int left = (W - (cols * tile_w + (cols - 1) * gap)) / 2;
  for (int i = 0; i < n; ++i) {
    const int x = left + (i % cols) * (tile_w + gap), y = top + (i / cols) * (tile_h + cap_h + row_gap);
    const Color status = correct.empty() ? Color{150, 150, 150} : (correct[i] ? colors::correct : colors::wrong);
    c.fill_rect(x, y, tile_w, tile_h, status);
    for (int yy = 0; yy < img_h; ++yy)
      for (int xx = 0; xx < img_w; ++xx) {
        const uint8_t g = images[i][static_cast<size_t>(yy) * img_w + xx];
        c.fill_rect(x + frame + xx * scale, y + frame + yy * scale, scale, scale, Color{g, g, g});
      }
    for (size_t l = 0; l < lines[i].size(); ++l) {
      const std::string s = fit(lines[i][l], tile_w + gap - 20, cs);
      text_centered(c, x + tile_w / 2, y + tile_h + 6 + static_cast<int>(l) * Canvas::kLineH * cs, s,
                    correct.empty() ? colors::text : status, cs);
    }
  }
  return c;
}

void image_grid(const std::vector<std::vector<uint8_t>>& images, int img_w, int img_h,
                const std::vector<std::string>& captions, const std::vector<bool>& correct, int columns, int scale,
                const std::string& path, const std::string& title) {
  check_path_chart("image_grid", path);
  save_png(render_image_grid(images, img_w, img_h, captions, correct, columns, scale, title), path);
}

}  // namespace fer::plot
