// Face detection in arbitrary photos: a Viola-Jones / Lienhart boosted cascade of Haar-like
// features, evaluated by our own code on the trained cascades that OpenCV ships as data (Debian
// package opencv-data, /usr/share/opencv4/haarcascades/*.xml). No OpenCV library is used.
//
// The cascade file (OpenCV's "new-style" XML, <cascade type_id="opencv-cascade-classifier">):
//   <width>, <height>      the detection window (24 x 24 for the frontal-face cascades)
//   <stages>               each stage: <stageThreshold> and <weakClassifiers>; each weak classifier
//                          is a small decision tree: <internalNodes> holds 4 numbers per node
//                          (left, right, feature index, threshold) and <leafValues> the leaves.
//                          A child value > 0 is the index of the next node, <= 0 is minus the
//                          index of a leaf (a "stump" is "0 -1 f t" with two leaves).
//   <features>             each feature: 2 or 3 rectangles "x y w h weight" in window coordinates
//                          and <tilted> (1: the rectangles are rotated by 45 degrees, Lienhart).
// Anything else (old-style "opencv-haar-classifier" files, LBP or HOG cascades, malformed
// numbers, out-of-range indices or rectangles) is a fer::Error naming the file, the XML line and
// what is wrong.
//
// Evaluation of one window at (x, y) of an image, with S = sum of pixels and Q = sum of squared
// pixels over the window's inner rectangle of A = (w-2)(h-2) pixels (as OpenCV, one pixel in):
//   norm = 1 / sqrt(A*Q - S^2)  (= 1 / (A * std))
//   windows whose std is <= 10 grey levels (1/(A*norm) >= 0.1) are flat: rejected at once.
//   for each stage:  sum over its weak classifiers of the leaf reached by walking the tree with
//                    value(f) = norm * sum_r weight_r * (pixel sum of rectangle r of feature f),
//                    going left when value < node threshold;  the window is rejected as soon as
//                    a stage's sum < stageThreshold (early rejection: most windows end at stage 1).
//   a window that passes every stage is a detection.
// Rectangle sums cost 4 lookups in an integral image (IntegralImage below).
//
// Multi-scale search (an image pyramid, as OpenCV 4 does): for factor = 1, s, s^2, ... (s =
// scale_factor) while the window (w*factor x h*factor) fits the image and max_size, the image is
// shrunk by 1/factor (bilinear at pixel centres, as OpenCV's INTER_LINEAR: the shipped cascades
// give fewer false faces on such levels than on area-averaged ones) and every window position is
// tested with a step of `step` pixels of the shrunk image (default: 2 while factor <= 2, then 1);
// a window rejected by the first stage skips the next position too. Scales with a window below
// min_size are skipped. A hit at (x, y) of the shrunk image is the box (x, y, w, h) * factor.
// Scales run in parallel (OpenMP), each into its own list; the lists are joined in scale order,
// so the result does not depend on the thread count.
//
// Huge inputs: an image with a side above max_side is first shrunk to fit max_side (keeping its
// aspect ratio; area averaging, data::resize_gray), searched, and the boxes are mapped back; the
// smallest face found is then window * (side / max_side) pixels. This bounds the work at about
// that of a max_side^2 image (37 M pixels: ~0.7 s, most of it the shrinking).
//
// Grouping (group_rectangles, the method of OpenCV's groupRectangles): raw hits are partitioned
// into classes of "similar" rectangles (the transitive closure of: every edge within
// delta = eps * (min(w1, w2) + min(h1, h2)) / 2 of the other's), each class is replaced by the
// average of its rectangles, classes with <= min_neighbors members are dropped, and so is a box
// lying inside another kept box (within eps of its size) when that one has more support
// (n_other > max(3, n) or n < 3). Output: largest box first (then top-to-bottom, left-to-right).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace fer::data {

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;  // (x, y) top-left, in pixels
  bool operator==(const Rect&) const = default;
};

// Summed-area tables of an image W x H, each (W + 1) x (H + 1), row-major, with a zero first row
// and column:   sum(X, Y)   = sum of I(x, y)   over x < X, y < Y
//               sqsum(X, Y) = sum of I(x, y)^2 over x < X, y < Y
//               tilted(X, Y) = sum of I(x, y) over y < Y, |x - (X - 1)| <= Y - 1 - y (a 45-degree
//                              cone with its apex at pixel (X-1, Y-1); only when asked for)
// The tables hold their values modulo 2^32 (unsigned wrap-around): a rectangle's sum is a
// difference of four entries, and that difference is exact whenever the true rectangle sum is
// below 2^32 - always true of a detection window - however large the image.
struct IntegralImage {
  int width = 0, height = 0;  // of the image; the tables have (width + 1) * (height + 1) entries
  std::vector<uint32_t> sum, sqsum, tilted;

  int stride() const { return width + 1; }
  // Sums over the upright rectangle [x, x + w) x [y, y + h) (must lie inside the image).
  uint32_t rect_sum(int x, int y, int w, int h) const;
  uint32_t rect_sqsum(int x, int y, int w, int h) const;
  // Sum over the 45-degree rectangle of Lienhart's tilted features: its top corner at (x, y), one
  // side going w pixels down-right, the other h pixels down-left (it covers 2*w*h pixels).
  // Needs the tilted table; the rectangle must lie inside the image (x - h >= 0, x + w <= width,
  // y + w + h <= height).
  uint32_t tilted_sum(int x, int y, int w, int h) const;
};

IntegralImage integral_image(const GrayImage& image, bool with_tilted = false);

struct DetectOptions {
  double scale_factor = 1.1;  // pyramid step, > 1
  int min_neighbors = 3;      // raw hits needed (strictly more than this) to keep a grouped box;
                              // 0 = no grouping, every raw hit is returned
  int min_size = 0;           // smallest box side searched, pixels (0: the cascade's window)
  int max_size = 0;           // largest box side searched (0: no limit)
  int step = 0;               // window step in the shrunk image (0: 2 while factor <= 2, else 1)
  int max_side = 1024;        // larger images are shrunk to this side first (0: never)
  double group_eps = 0.2;     // similarity of rectangles in grouping
  int threads = 0;            // OpenMP threads over scales (0: the OpenMP default)
};

// OpenCV-style grouping of raw detections (see above). If `support` is given it receives, for
// each returned box, the number of raw rectangles it averages.
std::vector<Rect> group_rectangles(const std::vector<Rect>& rects, int min_neighbors,
                                   double eps = 0.2, std::vector<int>* support = nullptr);

class HaarCascade {
 public:
  // Reads and validates a cascade XML file (at most 64 MB). Errors name the file.
  static HaarCascade load(const std::string& path);
  // The same from XML text; `name` is used in error messages.
  static HaarCascade parse(const std::string& xml, const std::string& name);

  int window_width() const { return window_w_; }
  int window_height() const { return window_h_; }
  int num_stages() const { return static_cast<int>(stages_.size()); }
  int num_features() const { return static_cast<int>(features_.size()); }
  bool has_tilted() const { return has_tilted_; }
  const std::string& name() const { return name_; }

  // Runs the cascade on the window whose top-left corner is (x, y) of the image behind `ii`
  // (ii must have the tilted table if has_tilted()). Returns num_stages() for a detection,
  // otherwise minus the index of the rejecting stage (0 for the first stage) or -num_stages()-1
  // for a flat window (std <= 10). The window must lie inside the image.
  int evaluate(const IntegralImage& ii, int x, int y) const;

  // Every raw hit over all scales (before grouping), in scale order then row-major.
  std::vector<Rect> detect_raw(const GrayImage& image, const DetectOptions& options = {}) const;
  // Grouped detections, largest first. An image smaller than the window gives an empty list.
  std::vector<Rect> detect(const GrayImage& image, const DetectOptions& options = {}) const;

  // Internal representation (public so the evaluator in face_detect.cpp can use plain structs).
  struct WeightedRect {
    int x = 0, y = 0, w = 0, h = 0;
    float weight = 0;
  };
  struct Feature {
    bool tilted = false;
    int count = 0;  // 2 or 3 rectangles used
    WeightedRect rects[3];
  };
  struct Node {
    int left = 0, right = 0;  // > 0: next node index (within the tree); <= 0: -leaf index
    int feature = 0;
    float threshold = 0;
  };
  struct Tree {
    int first_node = 0, first_leaf = 0;  // into nodes_ / leaves_
  };
  struct Stage {
    int first_tree = 0, num_trees = 0;
    float threshold = 0;  // stageThreshold - 1e-5 (OpenCV's guard against rounding)
  };

 private:
  int window_w_ = 0, window_h_ = 0;
  bool has_tilted_ = false;
  std::string name_;
  std::vector<Stage> stages_;
  std::vector<Tree> trees_;
  std::vector<Node> nodes_;
  std::vector<float> leaves_;
  std::vector<Feature> features_;

  friend class CascadeBuilder;
  friend struct ScaledCascade;
};

// Where the frontal-face cascade is: $FER_CASCADE if set, else the first existing of
// /usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml and the other usual
// install places. Throws a fer::Error telling the user to install Debian's opencv-data
// (scripts/setup.sh does) or to pass a cascade file, listing where it looked.
std::string default_cascade_path();

}  // namespace fer::data
