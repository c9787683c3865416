// Tests of the Haar-cascade face detector (data/face_detect.h): integral images against brute
// force, OpenCV-style grouping on hand-computed cases, the cascade reader's errors, window
// evaluation on tiny hand-made cascades, and detection on real photos from Debian's opencv-doc
// package with OpenCV's trained cascades from opencv-data (skipped, visibly, when absent).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "data/face_detect.h"
#include "data/face_finder.h"
#include "data/face_scenes.h"
#include "data/image.h"
#include "engine/error.h"
#include "engine/random.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace fer::data;
using fer::testing::throws_naming;

namespace {

const std::string kCascades = "/usr/share/opencv4/haarcascades/";
const std::string kFrontal = kCascades + "haarcascade_frontalface_default.xml";
const std::string kDoc = "/usr/share/doc/opencv-doc/";

// True (and a visible SKIPPED line) when a file the test needs is not installed.
bool missing(const std::string& path, const char* package) {
  if (fs::exists(path)) return false;
  MESSAGE("SKIPPED: " << path << " is absent (Debian package " << package
                      << "; scripts/setup.sh installs it)");
  return true;
}

const HaarCascade& frontal() {
  static const HaarCascade c = HaarCascade::load(kFrontal);
  return c;
}

GrayImage random_image(int w, int h, uint64_t seed) {
  fer::Generator gen(seed);
  GrayImage img{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h)};
  for (uint8_t& p : img.pixels) p = static_cast<uint8_t>(gen.below(256));
  return img;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    static std::atomic<int> counter{0};
    path = (fs::temp_directory_path() /
            ("fer_test_cascade_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".xml"))
               .string();
    std::ofstream(path) << text;
  }
  ~TempFile() { fs::remove(path); }
};

// A cascade with a 6x6 window, built from the given <stages> and <features> bodies.
std::string cascade_xml(const std::string& stages, const std::string& features, int stage_num = 1) {
  return "<?xml version=\"1.0\"?>\n<!-- a test cascade -->\n<opencv_storage>\n"
         "<cascade type_id=\"opencv-cascade-classifier\"><stageType>BOOST</stageType>\n"
         "  <featureType>HAAR</featureType>\n  <height>6</height>\n  <width>6</width>\n"
         "  <featureParams><maxCatCount>0</maxCatCount></featureParams>\n"
         "  <stageNum>" + std::to_string(stage_num) + "</stageNum>\n"
         "  <stages>" + stages + "</stages>\n"
         "  <features>" + features + "</features></cascade>\n</opencv_storage>\n";
}

// f0: upper half minus lower half (2 * upper - whole); f1: left half minus right half.
const std::string kTwoFeatures =
    "<_><rects><_>0 0 6 6 -1.</_><_>0 0 6 3 2.</_></rects></_>\n"
    "<_><rects><_>0 0 6 6 -1.</_><_>0 0 3 6 2.</_></rects><tilted>0</tilted></_>\n";

// One stump on f0: passes when upper >= lower (value >= threshold 0 -> right leaf +1).
const std::string kStumpStage =
    "<_><maxWeakCount>1</maxWeakCount><stageThreshold>0.</stageThreshold><weakClassifiers>"
    "<_><internalNodes>0 -1 0 0.</internalNodes><leafValues>-1. 1.</leafValues></_>"
    "</weakClassifiers></_>";

// A 2-node tree: node 0 on f0 goes right to leaf 0 (+1) when upper >= lower, else to node 1 on
// f1, whose right (left >= right) is leaf 2 (+1) and left is leaf 1 (-1).
const std::string kTreeStage =
    "<_><stageThreshold>0.</stageThreshold><weakClassifiers>"
    "<_><internalNodes>1 0 0 0. -1 -2 1 0.</internalNodes><leafValues>1. -1. 1.</leafValues></_>"
    "</weakClassifiers></_>";

// A 6x6 image whose top/bottom or left/right halves have the given levels.
GrayImage halves(bool vertical_split, uint8_t first, uint8_t second) {
  GrayImage img{6, 6, std::vector<uint8_t>(36)};
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) img.pixels[y * 6 + x] = (vertical_split ? x : y) < 3 ? first : second;
  return img;
}

double centre_distance(const Rect& r, double cx, double cy) {
  return std::hypot(r.x + r.width / 2.0 - cx, r.y + r.height / 2.0 - cy);
}

}  // namespace

// ---- Integral images ---------------------------------------------------------------------------

TEST_CASE("integral image: hand-computed 3x3 sums and squared sums") {
  const GrayImage img{3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  const IntegralImage ii = integral_image(img);
  REQUIRE(ii.sum.size() == 16);
  // Row Y of the table = sums over the first Y rows; the first row and column are zero.
  const std::vector<uint32_t> expected{0, 0, 0, 0, 0, 1, 3, 6, 0, 5, 12, 21, 0, 12, 27, 45};
  CHECK(ii.sum == expected);
  CHECK(ii.rect_sum(1, 1, 2, 2) == 5 + 6 + 8 + 9);
  CHECK(ii.rect_sum(0, 2, 3, 1) == 7 + 8 + 9);
  CHECK(ii.rect_sqsum(0, 0, 3, 3) == 285);
  CHECK(ii.rect_sqsum(2, 0, 1, 2) == 9 + 36);
  CHECK(ii.rect_sum(1, 1, 0, 2) == 0);
  CHECK(throws_naming([&] { ii.rect_sum(2, 2, 2, 1); }, "outside the 3x3 image"));
  CHECK(throws_naming([&] { ii.tilted_sum(1, 0, 1, 1); }, "without its tilted table"));
}

TEST_CASE("integral image: every rectangle of a random image matches brute force") {
  const GrayImage img = random_image(9, 7, 3);
  const IntegralImage ii = integral_image(img);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 9; ++x)
      for (int h = 0; y + h <= 7; ++h)
        for (int w = 0; x + w <= 9; ++w) {
          uint32_t s = 0, q = 0;
          for (int yy = y; yy < y + h; ++yy)
            for (int xx = x; xx < x + w; ++xx) {
              const uint32_t v = img.pixels[yy * 9 + xx];
              s += v;
              q += v * v;
            }
          REQUIRE(ii.rect_sum(x, y, w, h) == s);
          REQUIRE(ii.rect_sqsum(x, y, w, h) == q);
        }
}

TEST_CASE("integral image: a window's sum is exact even when the table wraps around 2^32") {
  // 4500 x 4500 white pixels: the squared-sum table passes 2^32 (255^2 * 20.25M = 1.3e12), yet a
  // 24x24 window's squared sum is a difference of wrapped entries and still exact.
  const GrayImage img{4500, 4500, std::vector<uint8_t>(4500u * 4500u, 255)};
  const IntegralImage ii = integral_image(img);
  CHECK(ii.rect_sqsum(4400, 4400, 24, 24) == 24u * 24u * 255u * 255u);
  CHECK(ii.rect_sum(4470, 4470, 30, 30) == 900u * 255u);
}

TEST_CASE("integral image: the tilted table matches its definition, tilted rectangles cover 2wh pixels") {
  const int W = 11, H = 9;
  const GrayImage img = random_image(W, H, 5);
  const IntegralImage ii = integral_image(img, true);
  REQUIRE(ii.tilted.size() == static_cast<size_t>((W + 1) * (H + 1)));
  // tilted(X, Y) = sum over y < Y, |x - (X - 1)| <= Y - 1 - y.
  for (int Y = 0; Y <= H; ++Y)
    for (int X = 0; X <= W; ++X) {
      uint32_t s = 0;
      for (int y = 0; y < Y; ++y)
        for (int x = 0; x < W; ++x)
          if (std::abs(x - (X - 1)) <= Y - 1 - y) s += img.pixels[y * W + x];
      REQUIRE(ii.tilted[Y * (W + 1) + X] == s);
    }
  // A tilted rectangle is a true region: probing it one pixel at a time, every pixel counts 0 or
  // 1 times and 2*w*h pixels count - the area of a w x h rectangle turned by 45 degrees.
  struct R { int x, y, w, h; };
  for (const R r : {R{3, 0, 2, 3}, R{5, 1, 4, 4}, R{1, 2, 3, 1}, R{4, 3, 1, 1}}) {
    int covered = 0;
    for (int p = 0; p < W * H; ++p) {
      GrayImage probe{W, H, std::vector<uint8_t>(W * H, 0)};
      probe.pixels[p] = 1;
      const uint32_t s = integral_image(probe, true).tilted_sum(r.x, r.y, r.w, r.h);
      REQUIRE(s <= 1);
      covered += static_cast<int>(s);
    }
    CHECK(covered == 2 * r.w * r.h);
  }
  CHECK(throws_naming([&] { ii.tilted_sum(1, 0, 3, 2); }, "outside"));
}

// ---- Grouping ----------------------------------------------------------------------------------

TEST_CASE("group_rectangles: similar boxes are averaged, weak groups dropped, largest first") {
  const std::vector<Rect> raw{{10, 10, 20, 20}, {11, 10, 20, 20}, {10, 12, 20, 21},  // one face
                              {100, 100, 20, 20},                                     // alone
                              {200, 50, 40, 40}, {202, 51, 40, 40}, {201, 49, 41, 41},
                              {199, 50, 40, 40}};
  std::vector<int> support;
  const std::vector<Rect> g = group_rectangles(raw, 2, 0.2, &support);
  REQUIRE(g.size() == 2);
  // (200+202+201+199)/4 = 200.5 -> 201 (rounded half away from zero), (50+51+49+50)/4 = 50, ...
  CHECK(g[0] == Rect{201, 50, 40, 40});
  // (10+11+10)/3 = 10.33 -> 10, (10+10+12)/3 = 10.67 -> 11, 20, (20+20+21)/3 = 20.33 -> 20
  CHECK(g[1] == Rect{10, 11, 20, 20});
  CHECK(support == std::vector<int>{4, 3});
  // min_neighbors 3 keeps only the group of 4; 0 keeps every group, singletons too.
  CHECK(group_rectangles(raw, 3) == std::vector<Rect>{{201, 50, 40, 40}});
  CHECK(group_rectangles(raw, 0).size() == 3);
  CHECK(group_rectangles({}, 2).empty());
}

TEST_CASE("group_rectangles: similarity is transitive and bounded by eps") {
  // delta = 0.2 * (20 + 20) / 2 = 4: A~B (3 apart), B~C (3 apart), A and C 6 apart: one group.
  const std::vector<Rect> chain{{0, 0, 20, 20}, {3, 0, 20, 20}, {6, 0, 20, 20}};
  std::vector<int> support;
  CHECK(group_rectangles(chain, 0, 0.2, &support) == std::vector<Rect>{{3, 0, 20, 20}});
  CHECK(support == std::vector<int>{3});
  // 5 apart is beyond delta 4: two groups.
  CHECK(group_rectangles({{0, 0, 20, 20}, {5, 0, 20, 20}}, 0).size() == 2);
  // With eps 0 only identical boxes group.
  CHECK(group_rectangles({{0, 0, 20, 20}, {1, 0, 20, 20}, {0, 0, 20, 20}}, 0, 0.0).size() == 2);
}

TEST_CASE("group_rectangles: a box inside a better-supported box is dropped") {
  auto copies = [](Rect r, int n) { return std::vector<Rect>(n, r); };
  auto join = [](std::vector<Rect> a, const std::vector<Rect>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const Rect big{0, 0, 100, 100}, small{30, 30, 20, 20};
  // small (4) inside big (5): 5 > max(3, 4) -> dropped.
  CHECK(group_rectangles(join(copies(big, 5), copies(small, 4)), 1) == std::vector<Rect>{big});
  // small (6) is better supported than big (5): both kept, largest first.
  CHECK(group_rectangles(join(copies(big, 5), copies(small, 6)), 1) == std::vector<Rect>{big, small});
  // small with fewer than 3 is dropped inside any kept box.
  CHECK(group_rectangles(join(copies(big, 2), copies(small, 2)), 1) == std::vector<Rect>{big});
  CHECK(throws_naming([] { group_rectangles({}, -1); }, "min_neighbors"));
}

// ---- The cascade reader ------------------------------------------------------------------------

TEST_CASE("cascade: a hand-made stump cascade evaluates as computed by hand") {
  const HaarCascade c = HaarCascade::parse(cascade_xml(kStumpStage, kTwoFeatures), "stump.xml");
  CHECK(c.window_width() == 6);
  CHECK(c.num_stages() == 1);
  CHECK(c.num_features() == 2);
  CHECK_FALSE(c.has_tilted());
  // Upper half brighter: f0 = upper - lower > 0 -> right leaf +1 >= stage threshold: detected.
  CHECK(c.evaluate(integral_image(halves(false, 200, 50)), 0, 0) == 1);
  // Lower half brighter: left leaf -1 < 0: rejected by stage 0.
  CHECK(c.evaluate(integral_image(halves(false, 50, 200)), 0, 0) == 0);
  // A flat window (std <= 10 over the inner 4x4) is rejected before any stage.
  CHECK(c.evaluate(integral_image(halves(false, 120, 125)), 0, 0) == -2);
  CHECK(c.evaluate(integral_image(GrayImage{6, 6, std::vector<uint8_t>(36, 77)}), 0, 0) == -2);
  CHECK(throws_naming([&] { c.evaluate(integral_image(halves(false, 200, 50)), 1, 0); }, "leaves the 6x6 image"));
}

TEST_CASE("cascade: a 2-node tree walks to the leaf computed by hand") {
  const HaarCascade c = HaarCascade::parse(cascade_xml(kTreeStage, kTwoFeatures), "tree.xml");
  // Upper half brighter: f0 > 0 -> node 0 goes right to leaf 0 (+1).
  CHECK(c.evaluate(integral_image(halves(false, 200, 50)), 0, 0) == 1);
  // Upper = lower (a left/right split): f0 = 0 is not < 0 -> right again, leaf 0.
  CHECK(c.evaluate(integral_image(halves(true, 200, 50)), 0, 0) == 1);
  // Lower half brighter -> node 1, which looks at the left/right split of the lower half.
  GrayImage lower_left = halves(false, 40, 40);
  for (int y = 3; y < 6; ++y)
    for (int x = 0; x < 6; ++x) lower_left.pixels[y * 6 + x] = x < 3 ? 220 : 120;
  CHECK(c.evaluate(integral_image(lower_left), 0, 0) == 1);  // node 1, left >= right: leaf 2 (+1)
  GrayImage lower_right = lower_left;
  for (int y = 3; y < 6; ++y)
    for (int x = 0; x < 6; ++x) lower_right.pixels[y * 6 + x] = x < 3 ? 120 : 220;
  CHECK(c.evaluate(integral_image(lower_right), 0, 0) == 0);  // node 1, left < right: leaf 1 (-1)
}

TEST_CASE("cascade: malformed files fail with the file, the line and the reason") {
  auto error_of = [](const std::string& xml) {
    try {
      HaarCascade::parse(xml, "bad.xml");
    } catch (const fer::Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  auto has = [](const std::string& message, const std::string& needle) {
    INFO("message: " << message);
    return message.find(needle) != std::string::npos;
  };
  CHECK(has(error_of(""), "cascade 'bad.xml'"));
  CHECK(has(error_of(""), "no root element"));
  CHECK(has(error_of("<opencv_storage>\n<cascade>\n<width>6</width>\n"), "line 4: end of file inside <cascade>"));
  CHECK(has(error_of("<a>\n<b></a>"), "line 2: closing tag </a> does not match <b>"));
  CHECK(has(error_of("<a><!-- never closed </a>"), "unterminated comment"));
  CHECK(has(error_of("<a>&bogus;</a>"), "unknown entity &bogus;"));
  CHECK(has(error_of("<a></a><b></b>"), "a second root element <b>"));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  CHECK(has(error_of(deep), "nested deeper than 64"));

  const std::string good = cascade_xml(kStumpStage, kTwoFeatures);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  CHECK(has(error_of(replaced("<stages>" + kStumpStage + "</stages>", "")), "missing <stages>"));
  CHECK(has(error_of(replaced("0 -1 0 0.", "0 -1 0 zero")), "not a number: 'zero'"));
  CHECK(has(error_of(replaced("0 -1 0 0.", "0 -1 7 0.")), "expected an integer in [0, 1], found 7"));
  CHECK(has(error_of(replaced("0 -1 0 0.", "0 -1 0")), "groups of 4 numbers"));
  CHECK(has(error_of(replaced("0 -1 0 0.", "0 -5 0 0.")), "found -5"));  // leaf 5 of 2
  CHECK(has(error_of(replaced("0 0 6 3 2.", "0 4 6 3 2.")), "leaves the 6x6 window"));
  CHECK(has(error_of(replaced("0 0 6 3 2.", "0 0 6 2.")), "'x y w h weight'"));
  CHECK(has(error_of(replaced("<featureType>HAAR", "<featureType>LBP")), "featureType 'LBP' is not supported"));
  CHECK(has(error_of(replaced("<maxCatCount>0", "<maxCatCount>256")), "categorical"));
  CHECK(has(error_of(replaced("<stageNum>1", "<stageNum>3")), "stageNum says 3 stages but <stages> has 1"));
  CHECK(has(error_of(replaced("<tilted>0</tilted>", "<tilted>1</tilted>")), "tilted rectangle"));
  // A tree node pointing back at itself would loop forever: rejected.
  const std::string looping = cascade_xml(
      "<_><stageThreshold>0</stageThreshold><weakClassifiers><_><internalNodes>1 0 0 0. 1 -1 1 0."
      "</internalNodes><leafValues>1. -1.</leafValues></_></weakClassifiers></_>",
      kTwoFeatures);
  CHECK(has(error_of(looping), "node 1 points back to node 1"));
  CHECK(has(error_of("<opencv_storage><haarcascade_old type_id=\"opencv-haar-classifier\"><size>20 20</size>"
                     "</haarcascade_old></opencv_storage>"),
            "old-style cascade format"));
  CHECK(throws_naming([] { HaarCascade::load("/nonexistent/cascade.xml"); }, "/nonexistent/cascade.xml"));
  {
    TempFile file(replaced("<width>6</width>", "<width>6</width"));
    CHECK(throws_naming([&] { HaarCascade::load(file.path); }, file.path));
  }
}

TEST_CASE("cascade: default path comes from FER_CASCADE or opencv-data, with a useful error") {
  setenv("FER_CASCADE", "/nonexistent/face.xml", 1);
  CHECK(throws_naming([] { default_cascade_path(); }, "FER_CASCADE='/nonexistent/face.xml'"));
  unsetenv("FER_CASCADE");
  if (missing(kFrontal, "opencv-data")) {
    CHECK(throws_naming([] { default_cascade_path(); }, "install Debian's opencv-data"));
    return;
  }
  CHECK(default_cascade_path() == kCascades + "haarcascade_frontalface_alt2.xml");
}

// ---- OpenCV's trained cascades on real photos ------------------------------------------------

TEST_CASE("detect: the frontal-face cascade loads with its 25 stages and 2913 features") {
  if (missing(kFrontal, "opencv-data")) return;
  const HaarCascade& c = frontal();
  CHECK(c.window_width() == 24);
  CHECK(c.window_height() == 24);
  CHECK(c.num_stages() == 25);
  CHECK(c.num_features() == 2913);
  CHECK_FALSE(c.has_tilted());
}

TEST_CASE("detect: faces in opencv-doc photos are where a person would draw them") {
  if (missing(kFrontal, "opencv-data")) return;
  // Hand-measured face centres and sizes (eyes-to-chin boxes read off magnified crops):
  struct Photo {
    std::string path;
    double cx, cy, side;
  };
  const std::vector<Photo> one_face{
      {kDoc + "opencv4/html/faceDetection.png", 302, 295, 190},          // Lena, 512x512
      {kDoc + "examples/data/messi5.jpg", 244, 113, 35},                  // Messi, 548x342
      {kDoc + "opencv4/html/julia_facedetect_sample.jpg", 236, 225, 140}  // Mona Lisa, 520x769
  };
  for (const Photo& p : one_face) {
    if (missing(p.path, "opencv-doc")) continue;
    const std::vector<Rect> faces = frontal().detect(read_image(p.path), DetectOptions{});
    INFO(p.path);
    REQUIRE(faces.size() == 1);
    const Rect& f = faces[0];
    INFO("box " << f.x << "," << f.y << " " << f.width << "x" << f.height);
    CHECK(centre_distance(f, p.cx, p.cy) < 0.15 * p.side);
    CHECK(f.width > 0.7 * p.side);
    CHECK(f.width < 1.4 * p.side);
  }
  // Four faces in a 2x2 grid of 100x100 tiles, each centred a little above its tile's centre.
  const std::string four = kDoc + "opencv4/html/facereg.jpg";
  if (!missing(four, "opencv-doc")) {
    const std::vector<Rect> faces = frontal().detect(read_image(four), DetectOptions{});
    REQUIRE(faces.size() == 4);
    for (const auto& [cx, cy] : std::vector<std::pair<double, double>>{{50, 45}, {150, 45}, {50, 145}, {150, 145}}) {
      int near = 0;
      for (const Rect& f : faces) near += centre_distance(f, cx, cy) < 12 && f.width > 50 && f.width < 90;
      CHECK_MESSAGE(near == 1, "face near (" << cx << ", " << cy << ")");
    }
  }
}

TEST_CASE("detect: photos without a face and flat images give no detection") {
  if (missing(kFrontal, "opencv-data")) return;
  for (const std::string& p : {kDoc + "examples/data/HappyFish.jpg", kDoc + "examples/hfs/data/000.jpg",
                               kDoc + "examples/hfs/data/001.jpg"}) {
    if (missing(p, "opencv-doc")) continue;
    INFO(p);
    CHECK(frontal().detect(read_image(p), DetectOptions{}).empty());
  }
  GrayImage gradient{320, 240, std::vector<uint8_t>(320 * 240)};
  for (int y = 0; y < 240; ++y)
    for (int x = 0; x < 320; ++x) gradient.pixels[y * 320 + x] = static_cast<uint8_t>((x * 255) / 319);
  CHECK(frontal().detect(gradient, DetectOptions{}).empty());
  CHECK(frontal().detect(GrayImage{200, 100, std::vector<uint8_t>(200 * 100, 128)}, DetectOptions{}).empty());
  // Smaller than the 24x24 window: nothing to search.
  CHECK(frontal().detect(GrayImage{20, 30, std::vector<uint8_t>(600, 10)}, DetectOptions{}).empty());
}

TEST_CASE("detect: min/max size, scale factor and grouping options act as documented") {
  if (missing(kFrontal, "opencv-data")) return;
  const std::string lena = kDoc + "opencv4/html/faceDetection.png";
  if (missing(lena, "opencv-doc")) return;
  const GrayImage img = read_image(lena);
  DetectOptions o;
  CHECK(frontal().detect(img, o).size() == 1);
  o.min_size = 260;  // the face is ~190 px: too small now; whatever is found is larger
  for (const Rect& r : frontal().detect(img, o)) CHECK(r.width >= 260);
  o.min_size = 0;
  o.max_size = 120;  // ... and too large here: whatever is found is smaller
  for (const Rect& r : frontal().detect(img, o)) CHECK(r.width <= 120);
  o.max_size = 0;
  o.min_neighbors = 0;  // raw hits: many overlapping boxes around the face
  const std::vector<Rect> raw = frontal().detect(img, o);
  size_t near_face = 0;
  for (const Rect& r : raw) near_face += centre_distance(r, 302, 295) < 60;
  CHECK(near_face > 20);
  CHECK(near_face >= 0.9 * raw.size());
  // Every raw hit is a box of the window (24) times a power of the scale factor, rounded.
  std::vector<int> sides;
  for (int k = 0; k < 40; ++k) sides.push_back(static_cast<int>(std::lround(24 * std::pow(1.1, k))));
  for (const Rect& r : raw) {
    CHECK(r.width == r.height);
    CHECK(std::find(sides.begin(), sides.end(), r.width) != sides.end());
  }
  o.scale_factor = 1.0;
  CHECK(throws_naming([&] { frontal().detect(img, o); }, "scale_factor"));
  o.scale_factor = 1.1;
  o.max_side = 10;
  CHECK(throws_naming([&] { frontal().detect(img, o); }, "max_side"));
  CHECK(throws_naming([&] { frontal().detect(GrayImage{10, 10, {}}, DetectOptions{}); }, "malformed image 10x10"));
}

TEST_CASE("detect: the result does not depend on the thread count") {
  if (missing(kFrontal, "opencv-data")) return;
  const std::string four = kDoc + "opencv4/html/facereg.jpg";
  if (missing(four, "opencv-doc")) return;
  const GrayImage img = read_image(four);
  DetectOptions one, two;
  one.threads = 1;
  two.threads = 3;
  CHECK(frontal().detect_raw(img, one) == frontal().detect_raw(img, two));
  CHECK(frontal().detect(img, one) == frontal().detect(img, two));
}

TEST_CASE("detect: a huge photo is searched at a bounded size and boxes map back") {
  if (missing(kFrontal, "opencv-data")) return;
  const std::string lena = kDoc + "opencv4/html/faceDetection.png";
  if (missing(lena, "opencv-doc")) return;
  // Lena blown up 12x to 6144 x 6144 (37.7 M pixels, near the decoder's 40 M limit).
  const GrayImage huge = resize_gray(read_image(lena), 6144, 6144);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Rect> faces = frontal().detect(huge, DetectOptions{});  // max_side 1024
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("6144x6144 detection: " << seconds << " s");
  REQUIRE(faces.size() == 1);
  CHECK(centre_distance(faces[0], 302 * 12, 295 * 12) < 0.15 * 190 * 12);
  CHECK(faces[0].width > 0.7 * 190 * 12);
  CHECK(faces[0].width < 1.4 * 190 * 12);
  CHECK(seconds < 30);  // about 0.5 s idle; the bound only catches a search of all 37.7 M pixels
}

TEST_CASE("detect: the eye cascade (trees and tilted features) finds Lena's eyes") {
  const std::string eyes = kCascades + "haarcascade_eye_tree_eyeglasses.xml";
  if (missing(eyes, "opencv-data")) return;
  const std::string lena = kDoc + "opencv4/html/faceDetection.png";
  if (missing(lena, "opencv-doc")) return;
  const HaarCascade c = HaarCascade::load(eyes);
  CHECK(c.has_tilted());
  const std::vector<Rect> found = c.detect(read_image(lena), DetectOptions{});
  // Hand-measured iris centres: (265, 270) and (335, 270).
  REQUIRE(found.size() == 2);
  for (const auto& [cx, cy] : std::vector<std::pair<double, double>>{{265, 270}, {335, 270}}) {
    int near = 0;
    for (const Rect& r : found) near += centre_distance(r, cx, cy) < 10;
    CHECK_MESSAGE(near == 1, "eye near (" << cx << ", " << cy << ")");
  }
}

TEST_CASE("cascade: randomly damaged files are rejected with a fer::Error or load cleanly") {
  // Byte flips, insertions and truncations of a small valid cascade: the reader must never crash
  // or throw anything but fer::Error, and what it accepts must evaluate safely.
  const std::string good = cascade_xml(kTreeStage, kTwoFeatures);
  const char alphabet[] = "<>/_ 0123456789-.e&;!?\"=abcz\n";
  fer::Generator gen(11);
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s = good;
    const int edits = 1 + static_cast<int>(gen.below(4));
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = gen.below(s.size());
      switch (gen.below(4)) {
        case 0: s[at] = alphabet[gen.below(sizeof alphabet - 1)]; break;
        case 1: s.insert(at, 1, alphabet[gen.below(sizeof alphabet - 1)]); break;
        case 2: s.erase(at, 1 + gen.below(8)); break;
        default: s.resize(at); break;
      }
    }
    try {
      const HaarCascade c = HaarCascade::parse(s, "damaged.xml");
      const GrayImage img = random_image(c.window_width() + 3, c.window_height() + 2, trial);
      const IntegralImage ii = integral_image(img, c.has_tilted());
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 4; ++x) c.evaluate(ii, x, y);
      c.detect(img, DetectOptions{});
      ++accepted;
    } catch (const fer::Error& e) {
      REQUIRE(std::string(e.what()).find("damaged.xml") != std::string::npos);
      ++rejected;
    }
  }
  MESSAGE("damaged cascades: " << accepted << " accepted, " << rejected << " rejected");
  CHECK(rejected > 1000);
}

// ---- The labelled set and the clean-up of boxes (data/face_scenes.h, data/face_finder.h) -------

namespace {
GrayImage noise_image(int w, int h, uint64_t seed) {
  fer::Generator g(seed);
  GrayImage img{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h)};
  for (uint8_t& p : img.pixels) p = static_cast<uint8_t>(g.below(256));
  return img;
}
}  // namespace

TEST_CASE("face scenes: reproducible, boxes inside and apart, faces pasted where the truth says") {
  const GrayImage background = noise_image(300, 200, 3);
  std::vector<GrayImage> faces{GrayImage{48, 48, std::vector<uint8_t>(48 * 48, 250)},
                               GrayImage{48, 48, std::vector<uint8_t>(48 * 48, 5)}};
  FaceSceneOptions o;
  o.width = 600;
  o.min_faces = o.max_faces = 4;
  o.min_side = 30;
  o.max_side = 100;
  const FaceScene a = compose_face_scene(background, faces, 0, 42, o);
  const FaceScene b = compose_face_scene(background, faces, 0, 42, o);
  CHECK(a.image.pixels == b.image.pixels);
  CHECK(a.faces == b.faces);
  CHECK(a.image.width == 600);
  CHECK(a.image.height == 400);  // the background's shape
  REQUIRE(a.faces.size() == 4);
  for (size_t i = 0; i < a.faces.size(); ++i) {
    const Rect& f = a.faces[i];
    INFO("face " << i << " at " << f.x << "," << f.y << " side " << f.width);
    CHECK(f.width == f.height);
    CHECK(f.width >= 30);
    CHECK(f.width <= 100);
    CHECK(f.x >= 0);
    CHECK(f.y >= 0);
    CHECK(f.x + f.width <= a.image.width);
    CHECK(f.y + f.height <= a.image.height);
    for (size_t j = 0; j < i; ++j) CHECK(box_iou(f, a.faces[j]) == 0.0);
    // The middle of the box is the face itself (alpha 1 inside the ramp), faces taken in turn.
    const uint8_t centre = a.image.pixels[static_cast<size_t>(f.y + f.height / 2) * a.image.width + f.x + f.width / 2];
    CHECK(centre == (i % 2 == 0 ? 250 : 5));
  }
  CHECK(compose_face_scene(background, faces, 0, 43, o).faces != a.faces);  // another seed, another scene
  CHECK(throws_naming([&] { compose_face_scene(background, {}, 0, 1, o); }, "no face images"));
}

TEST_CASE("detection scoring: IoU by hand, greedy pairing, duplicates are false positives") {
  CHECK(box_iou(Rect{0, 0, 10, 10}, Rect{0, 0, 10, 10}) == 1.0);
  CHECK(box_iou(Rect{0, 0, 10, 10}, Rect{5, 0, 10, 10}) == doctest::Approx(50.0 / 150.0));
  CHECK(box_iou(Rect{0, 0, 10, 10}, Rect{10, 0, 10, 10}) == 0.0);
  CHECK(box_iou(Rect{0, 0, 0, 10}, Rect{0, 0, 0, 10}) == 0.0);

  const std::vector<Rect> truth{{0, 0, 100, 100}, {200, 0, 50, 50}, {400, 400, 30, 30}};
  // One good box per the first two faces, a duplicate of the first, a box far from everything.
  const std::vector<Rect> detected{{5, 5, 100, 100}, {210, 0, 50, 50}, {0, 10, 90, 90}, {600, 600, 40, 40}};
  std::vector<bool> found;
  const DetectionCounts c = match_detections(detected, truth, 0.5, &found);
  CHECK(c.true_positives == 2);
  CHECK(c.false_positives == 2);
  CHECK(c.misses == 1);
  CHECK(found == std::vector<bool>{true, true, false});
  CHECK(c.precision() == 0.5);
  CHECK(c.recall() == doctest::Approx(2.0 / 3.0));
  // A stricter threshold loses the second face (IoU 40 * 50 / (2 * 2500 - 2000) = 0.667).
  CHECK(match_detections(detected, truth, 0.7).true_positives == 1);
  CHECK(match_detections({}, {}).precision() == 1.0);
}

TEST_CASE("merge: one box per face, the better supported kept, separate faces untouched") {
  const std::vector<SupportedRect> candidates{
      {{100, 100, 80, 80}, 5},   // a face
      {{110, 105, 80, 80}, 9},   // the same face, better supported: it wins
      {{120, 120, 30, 30}, 20},  // a small box inside the face (covers all of itself): merged away
      {{400, 100, 60, 60}, 2},   // another face, alone
      {{455, 100, 60, 60}, 1}};  // its neighbour, touching it (IoU 5/115): kept
  const std::vector<Rect> kept = merge_duplicate_faces(candidates, 0.3, 0.6);
  CHECK(kept == std::vector<Rect>{{110, 105, 80, 80}, {400, 100, 60, 60}, {455, 100, 60, 60}});
}

TEST_CASE("face finder: as the cascade alone when nothing is added; the profile cascade finds more") {
  if (missing(kFrontal, "opencv-data")) return;
  const std::string four = kDoc + "opencv4/html/facereg.jpg";
  if (missing(four, "opencv-doc")) return;
  const GrayImage photo = read_image(four);
  FaceFinderOptions o;
  o.merge = false;
  CHECK(FaceFinder(kFrontal, o).find(photo) == frontal().detect(photo, o.detect));
  o.merge = true;
  CHECK(FaceFinder(kFrontal, o).find(photo).size() == 4);  // four faces apart: nothing to merge
  // The profile cascade on the photo and its mirror image adds its boxes, each face once.
  o.profile_cascade = kCascades + "haarcascade_profileface.xml";
  if (missing(o.profile_cascade, "opencv-data")) return;
  const std::vector<Rect> with_profile = FaceFinder(kFrontal, o).find(photo);
  CHECK(with_profile.size() >= 4);
  for (size_t i = 0; i < with_profile.size(); ++i)
    for (size_t j = 0; j < i; ++j) CHECK(box_iou(with_profile[i], with_profile[j]) < 0.3);
  CHECK(throws_naming([&] { FaceFinder(kCascades + "no_such.xml", o); }, "no_such.xml"));
}
