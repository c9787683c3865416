// Cartoon faces per FER class, drawn with a few primitives on a float canvas.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "data/fer2013.h"
#include "engine/error.h"
#include "engine/random.h"

namespace fer::data {

namespace {

constexpr int N = kFaceSize;

struct Canvas {
  float px[kFacePixels];

  void fill_ellipse(float cx, float cy, float rx, float ry, float value) {
    for (int y = 0; y < N; ++y)
      for (int x = 0; x < N; ++x) {
        const float dx = (x - cx) / rx, dy = (y - cy) / ry;
        if (dx * dx + dy * dy <= 1.0f) px[y * N + x] = value;
      }
  }
  // A thick segment from (x0, y0) to (x1, y1).
  void line(float x0, float y0, float x1, float y1, float thickness, float value) {
    const float vx = x1 - x0, vy = y1 - y0, len2 = std::max(vx * vx + vy * vy, 1e-6f);
    for (int y = 0; y < N; ++y)
      for (int x = 0; x < N; ++x) {
        const float t = std::clamp(((x - x0) * vx + (y - y0) * vy) / len2, 0.0f, 1.0f);
        const float dx = x - (x0 + t * vx), dy = y - (y0 + t * vy);
        if (dx * dx + dy * dy <= thickness * thickness / 4) px[y * N + x] = value;
      }
  }
  // The curve y = cy + bend * ((x - cx) / half_width)^2 for |x - cx| <= half_width; bend < 0
  // lifts the ends (a smile), bend > 0 lowers them (a frown).
  void arc(float cx, float cy, float half_width, float bend, float thickness, float value) {
    for (int y = 0; y < N; ++y)
      for (int x = 0; x < N; ++x) {
        const float u = (x - cx) / half_width;
        if (std::fabs(u) > 1.0f) continue;
        if (std::fabs(y - (cy + bend * u * u)) <= thickness / 2) px[y * N + x] = value;
      }
  }
};

void draw_face(Canvas& c, int cls, Generator& gen, const SyntheticOptions& opts) {
  const float bg = gen.uniform(30, 90);
  for (int y = 0; y < N; ++y)
    for (int x = 0; x < N; ++x) c.px[y * N + x] = bg + 0.6f * (x - N / 2) * gen.uniform(-0.2f, 0.2f);

  const float cx = 23.5f + gen.uniform(-opts.jitter_px, opts.jitter_px);
  const float cy = 24.5f + gen.uniform(-opts.jitter_px, opts.jitter_px);
  const float s = gen.uniform(0.9f, 1.08f);  // face size
  const float skin = gen.uniform(150, 200);
  const float dark = gen.uniform(10, 50);
  c.fill_ellipse(cx, cy, 16 * s, 20 * s, skin);

  // Eyes.
  const float eye_y = cy - 5 * s, eye_dx = 6.5f * s;
  float eye_rx = 2.2f * s, eye_ry = 1.8f * s;
  if (cls == 2 || cls == 5) eye_rx = 3.0f * s, eye_ry = 3.0f * s;  // fear, surprise: wide open
  if (cls == 0) eye_ry = 1.0f * s;                                  // angry: narrowed
  c.fill_ellipse(cx - eye_dx, eye_y, eye_rx, eye_ry, dark);
  c.fill_ellipse(cx + eye_dx, eye_y, eye_rx, eye_ry, dark);

  // Eyebrows: inner end at (cx -+ 3s), outer at (cx -+ 10s); heights relative to the eyes.
  float inner = -4.5f, outer = -4.5f;  // neutral, happy, disgust
  if (cls == 0) inner = -2.5f, outer = -6.0f;  // angry: V
  if (cls == 4) inner = -7.0f, outer = -4.0f;  // sad: inner ends raised
  if (cls == 5) inner = -8.5f, outer = -8.5f;  // surprise: high
  if (cls == 2) inner = -8.5f, outer = -6.5f;  // fear: high, inner raised
  for (float side : {-1.0f, 1.0f})
    c.line(cx + side * 3 * s, eye_y + inner * s, cx + side * 10 * s, eye_y + outer * s, 1.6f, dark);

  // Mouth.
  const float my = cy + 9 * s;
  switch (cls) {
    case 0: c.line(cx - 5 * s, my, cx + 5 * s, my, 2.5f, dark); break;              // angry
    case 1:                                                                         // disgust
      c.line(cx - 6 * s, my + 1.5f * s, cx + 6 * s, my - 2.5f * s, 2.0f, dark);
      c.line(cx - 2 * s, cy + 1 * s, cx + 2 * s, cy + 1 * s, 1.2f, dark);  // nose wrinkle
      break;
    case 2: c.fill_ellipse(cx, my, 6.5f * s, 2.5f * s, dark); break;                // fear
    case 3: c.arc(cx, my + 2.5f * s, 8 * s, -6 * s, 2.4f, dark); break;              // happy
    case 4: c.arc(cx, my - 2.5f * s, 7 * s, 5 * s, 2.2f, dark); break;              // sad
    case 5: c.fill_ellipse(cx, my, 3.0f * s, 4.0f * s, dark); break;                // surprise
    default: c.line(cx - 4.5f * s, my, cx + 4.5f * s, my, 1.4f, dark); break;       // neutral
  }

  for (float& v : c.px) v += opts.noise_std * gen.normal();
}

}  // namespace

Dataset make_synthetic_faces(int64_t per_class, uint64_t seed, const SyntheticOptions& opts) {
  FER_CHECK(per_class >= 0, "make_synthetic_faces: negative per_class ", per_class);
  Dataset out;
  out.class_names = fer_class_names();
  out.pixels.reserve(static_cast<size_t>(per_class) * kFerClasses * kFacePixels);
  Canvas canvas;
  uint8_t face[kFacePixels];
  for (int cls = 0; cls < kFerClasses; ++cls) {
    for (int64_t i = 0; i < per_class; ++i) {
      Generator gen(splitmix64(splitmix64(seed ^ 0xFACEull) ^ (static_cast<uint64_t>(cls) << 40) ^
                               static_cast<uint64_t>(i)));
      draw_face(canvas, cls, gen, opts);
      for (int k = 0; k < kFacePixels; ++k)
        face[k] = static_cast<uint8_t>(std::clamp(std::lround(canvas.px[k]), 0L, 255L));
      out.add(face, cls);
    }
  }
  return out;
}

}  // namespace fer::data
