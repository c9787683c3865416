// Haar-cascade face detection: the cascade XML reader, integral images, window evaluation, the
// multi-scale search and OpenCV-style grouping. The method is described in data/face_detect.h.
#include "data/face_detect.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <numeric>
#include <utility>

#include <omp.h>

#include "engine/error.h"

namespace fer::data {

// ---- A minimal XML reader ----------------------------------------------------------------------
// Enough XML for OpenCV's FileStorage output: elements, attributes, character data with the five
// predefined entities and numeric references, comments, <?...?> and <!...> declarations and
// CDATA. Iterative (no recursion on nesting), nesting limited to kMaxXmlDepth.

namespace {

constexpr int kMaxXmlDepth = 64;
constexpr size_t kMaxCascadeBytes = 64u << 20;

struct XmlNode {
  std::string name;
  std::string text;  // character data directly inside this element
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<XmlNode> children;
  int line = 0;

  const XmlNode* child(const std::string& n) const {
    for (const XmlNode& c : children)
      if (c.name == n) return &c;
    return nullptr;
  }
  std::string attribute(const std::string& n) const {
    for (const auto& [k, v] : attributes)
      if (k == n) return v;
    return "";
  }
};

class XmlReader {
 public:
  XmlReader(const std::string& text, const std::string& file) : s_(text), file_(file) {}

  XmlNode parse() {
    XmlNode document;  // holds the root element as its only child
    std::vector<XmlNode*> open{&document};
    while (pos_ < s_.size()) {
      if (s_[pos_] != '<') {
        const size_t end = s_.find('<', pos_);
        const std::string chunk = s_.substr(pos_, end == std::string::npos ? std::string::npos : end - pos_);
        if (open.size() == 1) {
          if (chunk.find_first_not_of(" \t\r\n") != std::string::npos)
            error("text outside the root element");
        } else {
          open.back()->text += decode_entities(chunk);
        }
        advance_to(end == std::string::npos ? s_.size() : end);
        continue;
      }
      if (starts_with("<?")) {
        skip_past("?>", "unterminated <? ... ?> declaration");
      } else if (starts_with("<!--")) {
        skip_past("-->", "unterminated comment");
      } else if (starts_with("<![CDATA[")) {
        if (open.size() == 1) error("CDATA outside the root element");
        const size_t begin = pos_ + 9, end = s_.find("]]>", begin);
        if (end == std::string::npos) error("unterminated CDATA section");
        open.back()->text += s_.substr(begin, end - begin);
        advance_to(end + 3);
      } else if (starts_with("<!")) {
        skip_past(">", "unterminated <! ... > declaration");
      } else if (starts_with("</")) {
        advance_to(pos_ + 2);
        const std::string name = read_name();
        skip_space();
        expect('>');
        if (open.size() == 1) error("closing tag </", name, "> with no open element");
        if (open.back()->name != name)
          error("closing tag </", name, "> does not match <", open.back()->name, "> opened on line ",
                open.back()->line);
        open.pop_back();
      } else {
        advance_to(pos_ + 1);
        XmlNode node;
        node.line = line_;
        node.name = read_name();
        bool self_closing = false;
        for (;;) {
          skip_space();
          if (pos_ >= s_.size()) error("unterminated tag <", node.name, ">");
          if (s_[pos_] == '/') {
            advance_to(pos_ + 1);
            expect('>');
            self_closing = true;
            break;
          }
          if (s_[pos_] == '>') {
            advance_to(pos_ + 1);
            break;
          }
          std::string key = read_name();
          skip_space();
          expect('=');
          skip_space();
          if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\''))
            error("attribute '", key, "' of <", node.name, "> needs a quoted value");
          const char quote = s_[pos_];
          const size_t end = s_.find(quote, pos_ + 1);
          if (end == std::string::npos) error("unterminated value of attribute '", key, "'");
          node.attributes.emplace_back(std::move(key), decode_entities(s_.substr(pos_ + 1, end - pos_ - 1)));
          advance_to(end + 1);
        }
        if (open.size() == 1 && !document.children.empty())
          error("a second root element <", node.name, ">");
        open.back()->children.push_back(std::move(node));
        if (!self_closing) {
          if (static_cast<int>(open.size()) > kMaxXmlDepth)
            error("elements nested deeper than ", kMaxXmlDepth, " levels");
          // Safe: this vector only grows again after the element just opened is closed.
          open.push_back(&open.back()->children.back());
        }
      }
    }
    if (open.size() > 1)
      error("end of file inside <", open.back()->name, "> opened on line ", open.back()->line);
    if (document.children.empty()) error("no root element (empty or not XML)");
    return std::move(document.children.front());
  }

 private:
  template <typename... Parts>
  [[noreturn]] void error(const Parts&... parts) const {
    fail("cascade '", file_, "': line ", line_, ": ", parts...);
  }

  bool starts_with(const char* prefix) const { return s_.compare(pos_, std::char_traits<char>::length(prefix), prefix) == 0; }

  void advance_to(size_t target) {
    target = std::min(target, s_.size());
    line_ += static_cast<int>(std::count(s_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                         s_.begin() + static_cast<std::ptrdiff_t>(target), '\n'));
    pos_ = target;
  }
  void skip_past(const char* terminator, const char* message) {
    const size_t end = s_.find(terminator, pos_);
    if (end == std::string::npos) error(message);
    advance_to(end + std::char_traits<char>::length(terminator));
  }
  void skip_space() {
    size_t p = pos_;
    while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t' || s_[p] == '\r' || s_[p] == '\n')) ++p;
    advance_to(p);
  }
  void expect(char c) {
    if (pos_ >= s_.size() || s_[pos_] != c) error("expected '", c, "'");
    advance_to(pos_ + 1);
  }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':';
  }
  std::string read_name() {
    size_t p = pos_;
    while (p < s_.size() && name_char(s_[p])) ++p;
    if (p == pos_) error("expected an element or attribute name");
    std::string name = s_.substr(pos_, p - pos_);
    advance_to(p);
    return name;
  }
  std::string decode_entities(const std::string& raw) const {
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out += raw[i];
        continue;
      }
      const size_t semi = raw.find(';', i);
      if (semi == std::string::npos || semi - i > 10) error("unterminated entity reference");
      const std::string ent = raw.substr(i + 1, semi - i - 1);
      if (ent == "lt") out += '<';
      else if (ent == "gt") out += '>';
      else if (ent == "amp") out += '&';
      else if (ent == "quot") out += '"';
      else if (ent == "apos") out += '\'';
      else if (ent.size() > 1 && ent[0] == '#') {
        const bool hex = ent[1] == 'x';
        long code = std::strtol(ent.c_str() + (hex ? 2 : 1), nullptr, hex ? 16 : 10);
        if (code <= 0 || code > 127) error("character reference &", ent, "; outside ASCII");
        out += static_cast<char>(code);
      } else {
        error("unknown entity &", ent, ";");
      }
      i = semi;
    }
    return out;
  }

  const std::string& s_;
  const std::string& file_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

// ---- From the XML tree to the cascade ----------------------------------------------------------

class CascadeBuilder {
 public:
  CascadeBuilder(const std::string& file) : file_(file) {}

  HaarCascade build(const XmlNode& root) {
    HaarCascade c;
    c.name_ = file_;
    const XmlNode* cascade = root.name == "cascade" ? &root : root.child("cascade");
    if (!cascade) {
      for (const XmlNode& ch : root.children)
        if (ch.attribute("type_id") == "opencv-haar-classifier")
          error(ch, "old-style cascade format (type_id \"opencv-haar-classifier\") is not "
                    "supported; use a new-style cascade such as /usr/share/opencv4/haarcascades/"
                    "haarcascade_frontalface_default.xml");
      error(root, "no <cascade> element: not an OpenCV cascade classifier file");
    }
    const std::string stage_type = trimmed(required(*cascade, "stageType"));
    if (stage_type != "BOOST") error(*cascade, "stageType '", stage_type, "' is not supported (only BOOST)");
    const std::string feature_type = trimmed(required(*cascade, "featureType"));
    if (feature_type != "HAAR")
      error(*cascade, "featureType '", feature_type, "' is not supported (only HAAR cascades)");
    c.window_w_ = integer(required(*cascade, "width"), 1, 1024);
    c.window_h_ = integer(required(*cascade, "height"), 1, 1024);
    if (c.window_w_ < 3 || c.window_h_ < 3) error(*cascade, "window ", c.window_w_, "x", c.window_h_, " is too small");
    if (const XmlNode* fp = cascade->child("featureParams"))
      if (const XmlNode* cats = fp->child("maxCatCount"))
        if (integer(*cats, 0, 1 << 20) != 0)
          error(*cats, "categorical features (maxCatCount > 0) are not supported");

    // Features first, so the trees' feature indices can be checked.
    const XmlNode& features = required(*cascade, "features");
    for (const XmlNode& f : features.children) read_feature(c, f);
    if (c.features_.empty()) error(features, "<features> is empty");

    const XmlNode& stages = required(*cascade, "stages");
    for (const XmlNode& s : stages.children) read_stage(c, s);
    if (c.stages_.empty()) error(stages, "<stages> is empty");
    if (const XmlNode* n = cascade->child("stageNum")) {
      const int declared = integer(*n, 0, 1 << 20);
      if (declared != c.num_stages())
        error(*n, "stageNum says ", declared, " stages but <stages> has ", c.num_stages());
    }
    return c;
  }

 private:
  template <typename... Parts>
  [[noreturn]] void error(const XmlNode& at, const Parts&... parts) const {
    fail("cascade '", file_, "': line ", at.line, " (<", at.name, ">): ", parts...);
  }

  static std::string trimmed(const XmlNode& n) {
    const size_t a = n.text.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    const size_t b = n.text.find_last_not_of(" \t\r\n");
    return n.text.substr(a, b - a + 1);
  }

  const XmlNode& required(const XmlNode& parent, const std::string& name) const {
    const XmlNode* c = parent.child(name);
    if (!c) error(parent, "missing <", name, ">");
    return *c;
  }

  // Every whitespace-separated number of an element's text.
  std::vector<double> numbers(const XmlNode& n) const {
    std::vector<double> out;
    const char* p = n.text.data();
    const char* end = p + n.text.size();
    for (;;) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) ++p;
      if (p == end) break;
      if (*p == '+') ++p;  // from_chars does not take a leading '+'
      double v = 0;
      const auto [next, ec] = std::from_chars(p, end, v);
      if (ec != std::errc() || (next < end && !std::isspace(static_cast<unsigned char>(*next))) ||
          !std::isfinite(v)) {
        const char* stop = p;
        while (stop < end && !std::isspace(static_cast<unsigned char>(*stop))) ++stop;
        error(n, "not a number: '", std::string(p, stop), "'");
      }
      out.push_back(v);
      p = next;
    }
    return out;
  }

  double number(const XmlNode& n) const {
    const std::vector<double> v = numbers(n);
    if (v.size() != 1) error(n, "expected one number, found ", v.size());
    return v[0];
  }

  int as_int(const XmlNode& n, double v, int lo, int hi) const {
    if (v != std::floor(v) || v < lo || v > hi)
      error(n, "expected an integer in [", lo, ", ", hi, "], found ", v);
    return static_cast<int>(v);
  }
  int integer(const XmlNode& n, int lo, int hi) const { return as_int(n, number(n), lo, hi); }

  void read_feature(HaarCascade& c, const XmlNode& f) {
    const int index = c.num_features();
    const XmlNode& rects = required(f, "rects");
    HaarCascade::Feature feature;
    if (const XmlNode* t = f.child("tilted")) feature.tilted = integer(*t, 0, 1) == 1;
    if (rects.children.size() < 1 || rects.children.size() > 3)
      error(rects, "feature ", index, " has ", rects.children.size(), " rectangles (1 to 3 supported)");
    for (const XmlNode& r : rects.children) {
      const std::vector<double> v = numbers(r);
      if (v.size() != 5) error(r, "feature ", index, ": a rectangle is 'x y w h weight', found ", v.size(), " numbers");
      HaarCascade::WeightedRect wr;
      wr.x = as_int(r, v[0], 0, c.window_w_);
      wr.y = as_int(r, v[1], 0, c.window_h_);
      wr.w = as_int(r, v[2], 1, c.window_w_);
      wr.h = as_int(r, v[3], 1, c.window_h_);
      wr.weight = static_cast<float>(v[4]);
      const bool inside = feature.tilted
                              ? wr.x - wr.h >= 0 && wr.x + wr.w <= c.window_w_ && wr.y + wr.w + wr.h <= c.window_h_
                              : wr.x + wr.w <= c.window_w_ && wr.y + wr.h <= c.window_h_;
      if (!inside)
        error(r, "feature ", index, ": ", feature.tilted ? "tilted " : "", "rectangle ", wr.x, " ", wr.y,
              " ", wr.w, " ", wr.h, " leaves the ", c.window_w_, "x", c.window_h_, " window");
      feature.rects[feature.count++] = wr;
    }
    c.has_tilted_ = c.has_tilted_ || feature.tilted;
    c.features_.push_back(feature);
  }

  void read_stage(HaarCascade& c, const XmlNode& s) {
    HaarCascade::Stage stage;
    stage.threshold = static_cast<float>(number(required(s, "stageThreshold")) - 1e-5);
    stage.first_tree = static_cast<int>(c.trees_.size());
    const XmlNode& weak = required(s, "weakClassifiers");
    for (const XmlNode& w : weak.children) {
      const XmlNode& nodes_xml = required(w, "internalNodes");
      const std::vector<double> nodes = numbers(nodes_xml);
      const XmlNode& leaves_xml = required(w, "leafValues");
      const std::vector<double> leaves = numbers(leaves_xml);
      if (leaves.empty()) error(leaves_xml, "a weak classifier without leaf values");
      if (nodes.empty() || nodes.size() % 4 != 0)
        error(nodes_xml, "internalNodes must be groups of 4 numbers (left right feature threshold), found ",
              nodes.size());
      const int n_nodes = static_cast<int>(nodes.size() / 4);
      const int n_leaves = static_cast<int>(leaves.size());
      HaarCascade::Tree tree;
      tree.first_node = static_cast<int>(c.nodes_.size());
      tree.first_leaf = static_cast<int>(c.leaves_.size());
      for (int k = 0; k < n_nodes; ++k) {
        HaarCascade::Node node;
        node.left = as_int(nodes_xml, nodes[4 * k], -(n_leaves - 1), n_nodes - 1);
        node.right = as_int(nodes_xml, nodes[4 * k + 1], -(n_leaves - 1), n_nodes - 1);
        node.feature = as_int(nodes_xml, nodes[4 * k + 2], 0, c.num_features() - 1);
        node.threshold = static_cast<float>(nodes[4 * k + 3]);
        // A child node must come after its parent: the walk always ends at a leaf.
        for (int child : {node.left, node.right})
          if (child > 0 && child <= k)
            error(nodes_xml, "node ", k, " points back to node ", child, " (the tree would loop)");
        c.nodes_.push_back(node);
      }
      c.leaves_.insert(c.leaves_.end(), leaves.begin(), leaves.end());
      c.trees_.push_back(tree);
      ++stage.num_trees;
    }
    if (stage.num_trees == 0) error(weak, "stage ", c.num_stages(), " has no weak classifiers");
    c.stages_.push_back(stage);
  }

  const std::string& file_;
};

HaarCascade HaarCascade::parse(const std::string& xml, const std::string& name) {
  const XmlNode root = XmlReader(xml, name).parse();
  return CascadeBuilder(name).build(root);
}

HaarCascade HaarCascade::load(const std::string& path) {
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file_bytes(path, kMaxCascadeBytes);
  } catch (const Error& e) {
    fail("cascade: ", e.what());
  }
  return parse(std::string(bytes.begin(), bytes.end()), path);
}

// ---- Integral images ---------------------------------------------------------------------------

IntegralImage integral_image(const GrayImage& image, bool with_tilted) {
  const int W = image.width, H = image.height;
  FER_CHECK(W > 0 && H > 0 && image.pixels.size() == static_cast<size_t>(W) * H,
            "integral_image: malformed image ", W, "x", H);
  IntegralImage ii;
  ii.width = W;
  ii.height = H;
  const size_t stride = static_cast<size_t>(W) + 1;
  ii.sum.assign(stride * (H + 1), 0);
  ii.sqsum.assign(stride * (H + 1), 0);
  for (int y = 0; y < H; ++y) {
    const uint8_t* row = image.pixels.data() + static_cast<size_t>(y) * W;
    const uint32_t* above_s = ii.sum.data() + static_cast<size_t>(y) * stride;
    const uint32_t* above_q = ii.sqsum.data() + static_cast<size_t>(y) * stride;
    uint32_t* out_s = ii.sum.data() + static_cast<size_t>(y + 1) * stride;
    uint32_t* out_q = ii.sqsum.data() + static_cast<size_t>(y + 1) * stride;
    uint32_t run_s = 0, run_q = 0;  // this row's running sums (wrap-around is intended)
    for (int x = 0; x < W; ++x) {
      const uint32_t v = row[x];
      run_s += v;
      run_q += v * v;
      out_s[x + 1] = above_s[x + 1] + run_s;
      out_q[x + 1] = above_q[x + 1] + run_q;
    }
  }
  if (with_tilted) {
    // tilted(X, Y) = tilted(X, Y-1) + I(X-1, Y-1) + diag(X-2, Y-2) + anti(X, Y-2): going one row
    // down, the cone gains its new apex pixel and one pixel per earlier row on each flank; the
    // left flank is the down-right diagonal ending at (X-2, Y-2), the right flank the down-left
    // diagonal ending at (X, Y-2). diag/anti are those diagonal running sums (0 off the image).
    std::vector<uint32_t> diag(static_cast<size_t>(W) * H), anti(static_cast<size_t>(W) * H);
    auto px = [&](int x, int y) -> uint32_t { return image.pixels[static_cast<size_t>(y) * W + x]; };
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const size_t i = static_cast<size_t>(y) * W + x;
        diag[i] = px(x, y) + (x > 0 && y > 0 ? diag[i - W - 1] : 0u);
        anti[i] = px(x, y) + (x + 1 < W && y > 0 ? anti[i - W + 1] : 0u);
      }
    auto diag_at = [&](int x, int y) -> uint32_t {
      return x >= 0 && y >= 0 && x < W ? diag[static_cast<size_t>(y) * W + x] : 0u;
    };
    auto anti_at = [&](int x, int y) -> uint32_t {
      return x >= 0 && y >= 0 && x < W ? anti[static_cast<size_t>(y) * W + x] : 0u;
    };
    ii.tilted.assign(stride * (H + 1), 0);
    for (int Y = 1; Y <= H; ++Y)
      for (int X = 0; X <= W; ++X) {
        uint32_t t = ii.tilted[static_cast<size_t>(Y - 1) * stride + X];
        if (X >= 1) t += px(X - 1, Y - 1);
        t += diag_at(X - 2, Y - 2) + anti_at(X, Y - 2);
        ii.tilted[static_cast<size_t>(Y) * stride + X] = t;
      }
  }
  return ii;
}

namespace {
uint32_t box_sum(const std::vector<uint32_t>& t, size_t stride, int x, int y, int w, int h) {
  const size_t top = static_cast<size_t>(y) * stride, bottom = static_cast<size_t>(y + h) * stride;
  return t[top + x] - t[top + x + w] - t[bottom + x] + t[bottom + x + w];
}
}  // namespace

uint32_t IntegralImage::rect_sum(int x, int y, int w, int h) const {
  FER_CHECK(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= width && y + h <= height,
            "rect_sum: rectangle ", x, ",", y, " ", w, "x", h, " outside the ", width, "x", height, " image");
  return box_sum(sum, stride(), x, y, w, h);
}

uint32_t IntegralImage::rect_sqsum(int x, int y, int w, int h) const {
  FER_CHECK(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= width && y + h <= height,
            "rect_sqsum: rectangle ", x, ",", y, " ", w, "x", h, " outside the ", width, "x", height, " image");
  return box_sum(sqsum, stride(), x, y, w, h);
}

uint32_t IntegralImage::tilted_sum(int x, int y, int w, int h) const {
  FER_CHECK(!tilted.empty(), "tilted_sum: the integral image was built without its tilted table");
  FER_CHECK(w >= 0 && h >= 0 && x - h >= 0 && x + w <= width && y >= 0 && y + w + h <= height,
            "tilted_sum: tilted rectangle ", x, ",", y, " ", w, "x", h, " outside the ", width, "x",
            height, " image");
  const size_t s = stride();
  return tilted[y * s + x] - tilted[(y + w) * s + x + w] - tilted[(y + h) * s + x - h] +
         tilted[(y + w + h) * s + x + w - h];
}

// ---- Window evaluation -------------------------------------------------------------------------

// The cascade's rectangles as offsets into integral tables of one stride (one pyramid level), so
// a feature costs 8 or 12 loads from the window's top-left pointer.
struct ScaledCascade {
  struct Feature {
    int ofs[3][4];
    float weight[3];
    int count;
    bool tilted;
  };
  const HaarCascade& c;
  std::vector<Feature> features;
  int norm_ofs[4];
  double norm_area;
  bool stumps_only;  // every tree is "0 -1 f t" with 2 leaves, stored in order

  ScaledCascade(const HaarCascade& cascade, int stride) : c(cascade) {
    stumps_only = c.nodes_.size() == c.trees_.size() && c.leaves_.size() == 2 * c.trees_.size();
    for (size_t t = 0; t < c.trees_.size() && stumps_only; ++t) {
      const HaarCascade::Node& node = c.nodes_[t];
      stumps_only = c.trees_[t].first_node == static_cast<int>(t) &&
                    c.trees_[t].first_leaf == static_cast<int>(2 * t) && node.left == 0 && node.right == -1;
    }
    features.resize(c.features_.size());
    for (size_t i = 0; i < features.size(); ++i) {
      const HaarCascade::Feature& f = c.features_[i];
      Feature& o = features[i];
      o.count = f.count;
      o.tilted = f.tilted;
      for (int r = 0; r < 3; ++r) {
        const HaarCascade::WeightedRect& q = f.rects[r];
        o.weight[r] = r < f.count ? q.weight : 0.0f;
        if (r >= f.count) {
          std::fill(o.ofs[r], o.ofs[r] + 4, 0);
        } else if (f.tilted) {
          o.ofs[r][0] = q.y * stride + q.x;
          o.ofs[r][1] = (q.y + q.w) * stride + q.x + q.w;
          o.ofs[r][2] = (q.y + q.h) * stride + q.x - q.h;
          o.ofs[r][3] = (q.y + q.w + q.h) * stride + q.x + q.w - q.h;
        } else {
          o.ofs[r][0] = q.y * stride + q.x;
          o.ofs[r][1] = q.y * stride + q.x + q.w;
          o.ofs[r][2] = (q.y + q.h) * stride + q.x;
          o.ofs[r][3] = (q.y + q.h) * stride + q.x + q.w;
        }
      }
    }
    const int w = c.window_w_ - 2, h = c.window_h_ - 2;
    norm_ofs[0] = stride + 1;
    norm_ofs[1] = stride + 1 + w;
    norm_ofs[2] = (1 + h) * stride + 1;
    norm_ofs[3] = (1 + h) * stride + 1 + w;
    norm_area = static_cast<double>(w) * h;
  }

  static uint32_t corners(const uint32_t* p, const int* o) { return p[o[0]] - p[o[1]] - p[o[2]] + p[o[3]]; }

  float feature_value(int index, const uint32_t* sum, const uint32_t* tilted) const {
    const Feature& f = features[index];
    const uint32_t* t = f.tilted ? tilted : sum;
    float v = f.weight[0] * static_cast<float>(corners(t, f.ofs[0])) +
              f.weight[1] * static_cast<float>(corners(t, f.ofs[1]));
    if (f.count > 2) v += f.weight[2] * static_cast<float>(corners(t, f.ofs[2]));
    return v;
  }

  // See HaarCascade::evaluate. The pointers address the window's top-left table entries.
  int run(const uint32_t* sum, const uint32_t* sqsum, const uint32_t* tilted) const {
    const int n_stages = c.num_stages();
    const double s = corners(sum, norm_ofs), q = corners(sqsum, norm_ofs);
    const double nf = norm_area * q - s * s;  // = area^2 * variance
    if (nf <= 0) return -n_stages - 1;
    const double norm = 1.0 / std::sqrt(nf);
    if (norm_area * norm >= 0.1) return -n_stages - 1;  // std <= 10 grey levels: a flat window
    const float fnorm = static_cast<float>(norm);
    for (int si = 0; si < n_stages; ++si) {
      const HaarCascade::Stage& stage = c.stages_[si];
      float stage_sum = 0;
      if (stumps_only) {
        // Every tree is one node: no walk, and the leaf is picked by index arithmetic rather than
        // a branch (the comparison is data-dependent: a branch would mispredict very often).
        const HaarCascade::Node* nodes = c.nodes_.data() + stage.first_tree;
        const float* leaves = c.leaves_.data() + 2 * stage.first_tree;
        for (int t = 0; t < stage.num_trees; ++t) {
          const float value = feature_value(nodes[t].feature, sum, tilted) * fnorm;
          stage_sum += leaves[2 * t + static_cast<int>(value >= nodes[t].threshold)];
        }
        if (stage_sum < stage.threshold) return -si;
        continue;
      }
      for (int t = stage.first_tree; t < stage.first_tree + stage.num_trees; ++t) {
        const HaarCascade::Tree& tree = c.trees_[t];
        const HaarCascade::Node* nodes = c.nodes_.data() + tree.first_node;
        int idx = 0;
        do {
          const HaarCascade::Node& node = nodes[idx];
          const float value = feature_value(node.feature, sum, tilted) * fnorm;
          idx = value < node.threshold ? node.left : node.right;
        } while (idx > 0);
        stage_sum += c.leaves_[tree.first_leaf - idx];
      }
      if (stage_sum < stage.threshold) return -si;
    }
    return n_stages;
  }
};

int HaarCascade::evaluate(const IntegralImage& ii, int x, int y) const {
  FER_CHECK(x >= 0 && y >= 0 && x + window_w_ <= ii.width && y + window_h_ <= ii.height,
            "cascade '", name_, "': window at ", x, ",", y, " leaves the ", ii.width, "x", ii.height, " image");
  FER_CHECK(!has_tilted_ || !ii.tilted.empty(), "cascade '", name_,
            "' has tilted features: build the integral image with its tilted table");
  const ScaledCascade sc(*this, ii.stride());
  const size_t at = static_cast<size_t>(y) * ii.stride() + x;
  return sc.run(ii.sum.data() + at, ii.sqsum.data() + at, has_tilted_ ? ii.tilted.data() + at : nullptr);
}

// ---- Multi-scale search ------------------------------------------------------------------------

namespace {

// One pyramid level: bilinear sampling at the pixel centres, x_src = (x + 0.5) * in/out - 0.5
// (OpenCV's INTER_LINEAR, which its cascade detector uses). Unlike data::resize_gray's area
// averaging it does not blur when shrinking; the shipped cascades detect best on such levels
// (fewer false positives on the opencv-doc photos at the same recall).
GrayImage pyramid_level(const GrayImage& in, int out_w, int out_h) {
  struct Tap {
    int i0, i1;
    float w1;  // weight of i1; i0 gets 1 - w1
  };
  auto taps = [](int n_in, int n_out) {
    std::vector<Tap> t(n_out);
    const double scale = static_cast<double>(n_in) / n_out;
    for (int o = 0; o < n_out; ++o) {
      const double x = std::clamp((o + 0.5) * scale - 0.5, 0.0, static_cast<double>(n_in - 1));
      const int i0 = static_cast<int>(x);
      t[o] = {i0, std::min(i0 + 1, n_in - 1), static_cast<float>(x - i0)};
    }
    return t;
  };
  const std::vector<Tap> tx = taps(in.width, out_w), ty = taps(in.height, out_h);
  GrayImage out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(static_cast<size_t>(out_w) * out_h);
  std::vector<float> row0(out_w), row1(out_w);
  auto horizontal = [&](int y, std::vector<float>& row) {
    const uint8_t* src = in.pixels.data() + static_cast<size_t>(y) * in.width;
    for (int x = 0; x < out_w; ++x)
      row[x] = src[tx[x].i0] + tx[x].w1 * (static_cast<float>(src[tx[x].i1]) - src[tx[x].i0]);
  };
  for (int y = 0; y < out_h; ++y) {
    horizontal(ty[y].i0, row0);
    horizontal(ty[y].i1, row1);
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * out_w;
    const float w1 = ty[y].w1;
    for (int x = 0; x < out_w; ++x)
      dst[x] = static_cast<uint8_t>(std::clamp(row0[x] + w1 * (row1[x] - row0[x]) + 0.5f, 0.0f, 255.0f));
  }
  return out;
}

}  // namespace

std::vector<Rect> HaarCascade::detect_raw(const GrayImage& image, const DetectOptions& o) const {
  FER_CHECK(image.width > 0 && image.height > 0 &&
                image.pixels.size() == static_cast<size_t>(image.width) * image.height,
            "detect: malformed image ", image.width, "x", image.height);
  FER_CHECK(std::isfinite(o.scale_factor) && o.scale_factor > 1.0 && o.scale_factor <= 4.0,
            "detect: scale_factor must be in (1, 4], got ", o.scale_factor);
  FER_CHECK(o.min_neighbors >= 0, "detect: min_neighbors must be >= 0, got ", o.min_neighbors);
  FER_CHECK(o.min_size >= 0 && o.max_size >= 0, "detect: min_size/max_size must be >= 0, got ",
            o.min_size, "/", o.max_size);
  FER_CHECK(o.step >= 0 && o.step <= 64, "detect: step must be in [0, 64], got ", o.step);
  FER_CHECK(o.max_side == 0 || o.max_side >= std::max(window_w_, window_h_),
            "detect: max_side ", o.max_side, " is smaller than the cascade's window");

  // Bound the work: search a copy no larger than max_side, map boxes back by `pre`.
  GrayImage shrunk;
  const GrayImage* base = &image;
  double pre = 1.0;
  const int longest = std::max(image.width, image.height);
  if (o.max_side > 0 && longest > o.max_side) {
    pre = static_cast<double>(longest) / o.max_side;
    shrunk = resize_gray(image, std::max(1, static_cast<int>(std::lround(image.width / pre))),
                         std::max(1, static_cast<int>(std::lround(image.height / pre))));
    base = &shrunk;
  }

  std::vector<double> factors;
  for (double factor = 1.0;; factor *= o.scale_factor) {
    const double win_w = std::round(window_w_ * factor), win_h = std::round(window_h_ * factor);
    if (win_w > base->width || win_h > base->height) break;
    if (o.max_size > 0 && (win_w * pre > o.max_size || win_h * pre > o.max_size)) break;
    if (win_w * pre < o.min_size || win_h * pre < o.min_size) continue;
    factors.push_back(factor);
  }

  std::vector<std::vector<Rect>> per_scale(factors.size());
  std::vector<std::exception_ptr> errors(factors.size());
  const int n = static_cast<int>(factors.size());
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (n > 1 && threads > 1)
  for (int k = 0; k < n; ++k) {
    try {
      const double factor = factors[k];
      const int sw = static_cast<int>(std::lround(base->width / factor));
      const int sh = static_cast<int>(std::lround(base->height / factor));
      if (sw < window_w_ || sh < window_h_) continue;
      const GrayImage layer = (sw == base->width && sh == base->height) ? *base : pyramid_level(*base, sw, sh);
      const IntegralImage ii = integral_image(layer, has_tilted_);
      const ScaledCascade sc(*this, ii.stride());
      const int step = o.step > 0 ? o.step : (factor > 2.0 ? 1 : 2);
      const double box_scale = factor * pre;
      const int box_w = static_cast<int>(std::lround(window_w_ * box_scale));
      const int box_h = static_cast<int>(std::lround(window_h_ * box_scale));
      for (int y = 0; y + window_h_ <= sh; y += step) {
        for (int x = 0; x + window_w_ <= sw; x += step) {
          const size_t at = static_cast<size_t>(y) * ii.stride() + x;
          const int result = sc.run(ii.sum.data() + at, ii.sqsum.data() + at,
                                    has_tilted_ ? ii.tilted.data() + at : nullptr);
          if (result == num_stages()) {
            per_scale[k].push_back(Rect{static_cast<int>(std::lround(x * box_scale)),
                                        static_cast<int>(std::lround(y * box_scale)), box_w, box_h});
          } else if (result == 0) {
            x += step;  // rejected by the very first stage: its neighbour most likely is too
          }
        }
      }
    } catch (...) {
      errors[k] = std::current_exception();
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  std::vector<Rect> out;
  for (const auto& v : per_scale) out.insert(out.end(), v.begin(), v.end());
  return out;
}

std::vector<Rect> HaarCascade::detect(const GrayImage& image, const DetectOptions& options) const {
  std::vector<Rect> raw = detect_raw(image, options);
  if (options.min_neighbors == 0) {
    std::stable_sort(raw.begin(), raw.end(), [](const Rect& a, const Rect& b) {
      return static_cast<int64_t>(a.width) * a.height > static_cast<int64_t>(b.width) * b.height;
    });
    return raw;
  }
  return group_rectangles(raw, options.min_neighbors, options.group_eps);
}

// ---- Grouping ----------------------------------------------------------------------------------

std::vector<Rect> group_rectangles(const std::vector<Rect>& rects, int min_neighbors, double eps,
                                   std::vector<int>* support) {
  FER_CHECK(min_neighbors >= 0, "group_rectangles: min_neighbors must be >= 0, got ", min_neighbors);
  FER_CHECK(eps >= 0 && std::isfinite(eps), "group_rectangles: eps must be >= 0, got ", eps);
  const int n = static_cast<int>(rects.size());

  // Union-find over "similar" pairs. Sorting by x lets the inner loop stop early: a similar
  // rectangle's x is within delta <= eps * (w_i + h_i) / 2 of rect i's.
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  std::vector<int> by_x(n);
  std::iota(by_x.begin(), by_x.end(), 0);
  std::stable_sort(by_x.begin(), by_x.end(), [&](int a, int b) { return rects[a].x < rects[b].x; });
  for (int a = 0; a < n; ++a) {
    const Rect& r1 = rects[by_x[a]];
    const double reach = eps * (r1.width + r1.height) * 0.5;
    for (int b = a + 1; b < n; ++b) {
      const Rect& r2 = rects[by_x[b]];
      if (r2.x - r1.x > reach) break;
      const double delta = eps * (std::min(r1.width, r2.width) + std::min(r1.height, r2.height)) * 0.5;
      if (std::abs(r1.x - r2.x) <= delta && std::abs(r1.y - r2.y) <= delta &&
          std::abs(r1.x + r1.width - r2.x - r2.width) <= delta &&
          std::abs(r1.y + r1.height - r2.y - r2.height) <= delta) {
        const int ra = find(by_x[a]), rb = find(by_x[b]);
        if (ra != rb) parent[std::max(ra, rb)] = std::min(ra, rb);
      }
    }
  }

  // Classes in order of their first member; each averaged.
  std::vector<int> class_of_root(n, -1);
  std::vector<std::array<double, 4>> sums;
  std::vector<int> counts;
  for (int i = 0; i < n; ++i) {
    const int root = find(i);
    if (class_of_root[root] < 0) {
      class_of_root[root] = static_cast<int>(counts.size());
      sums.push_back({0, 0, 0, 0});
      counts.push_back(0);
    }
    const int c = class_of_root[root];
    sums[c][0] += rects[i].x;
    sums[c][1] += rects[i].y;
    sums[c][2] += rects[i].width;
    sums[c][3] += rects[i].height;
    ++counts[c];
  }
  const int classes = static_cast<int>(counts.size());
  std::vector<Rect> avg(classes);
  for (int c = 0; c < classes; ++c) {
    const double s = 1.0 / counts[c];
    avg[c] = Rect{static_cast<int>(std::lround(sums[c][0] * s)), static_cast<int>(std::lround(sums[c][1] * s)),
                  static_cast<int>(std::lround(sums[c][2] * s)), static_cast<int>(std::lround(sums[c][3] * s))};
  }

  std::vector<std::pair<Rect, int>> kept;
  for (int i = 0; i < classes; ++i) {
    const int n1 = counts[i];
    if (n1 <= min_neighbors) continue;
    const Rect& r1 = avg[i];
    bool inside_stronger = false;
    for (int j = 0; j < classes && !inside_stronger; ++j) {
      const int n2 = counts[j];
      if (j == i || n2 <= min_neighbors) continue;
      const Rect& r2 = avg[j];
      const int dx = static_cast<int>(std::lround(r2.width * eps));
      const int dy = static_cast<int>(std::lround(r2.height * eps));
      inside_stronger = r1.x >= r2.x - dx && r1.y >= r2.y - dy && r1.x + r1.width <= r2.x + r2.width + dx &&
                        r1.y + r1.height <= r2.y + r2.height + dy && (n2 > std::max(3, n1) || n1 < 3);
    }
    if (!inside_stronger) kept.emplace_back(r1, n1);
  }
  std::stable_sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    const int64_t area_a = static_cast<int64_t>(a.first.width) * a.first.height;
    const int64_t area_b = static_cast<int64_t>(b.first.width) * b.first.height;
    if (area_a != area_b) return area_a > area_b;
    if (a.first.y != b.first.y) return a.first.y < b.first.y;
    return a.first.x < b.first.x;
  });
  std::vector<Rect> out;
  if (support) support->clear();
  for (const auto& [r, count] : kept) {
    out.push_back(r);
    if (support) support->push_back(count);
  }
  return out;
}

// ---- The default cascade -----------------------------------------------------------------------

std::string default_cascade_path() {
  if (const char* env = std::getenv("FER_CASCADE"); env && *env) {
    if (std::filesystem::is_regular_file(env)) return env;
    fail("FER_CASCADE='", env, "' is not a readable file");
  }
  // alt2 rather than _default: on the labelled set of bench/face_detector_eval.cpp it finds more
  // faces with fewer false ones (README "How well faces are found").
  const char* file = "haarcascade_frontalface_alt2.xml";
  const std::vector<std::string> dirs = {"/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades",
                                         "/usr/local/share/opencv4/haarcascades",
                                         "/usr/local/share/opencv/haarcascades"};
  std::string looked;
  for (const std::string& d : dirs) {
    const std::string p = d + "/" + file;
    if (std::filesystem::is_regular_file(p)) return p;
    looked += (looked.empty() ? "" : ", ") + d;
  }
  fail("no face-detection cascade found (", file, " is not in ", looked,
       "): install Debian's opencv-data package (apt-get install opencv-data, or run "
       "scripts/setup.sh), set FER_CASCADE, or pass a cascade file");
}

}  // namespace fer::data
