// Dropout masks, bilinear resize and zero padding on the CPU, threads over elements (masks) or
// planes (the contracts: engine/backend.h; resize and padding: engine/ops/shape.cpp).
#include <cstring>

#include "engine/random.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

void CpuBackend::dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float keep_scale = 1.0f / (1.0f - p);
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i)
      mask[i] = counter_uniform(seed, offset + static_cast<uint64_t>(i)) >= p ? keep_scale : 0.0f;
  });
}

// Bilinear resize (the math: resize_bilinear in engine/ops/shape.cpp). The taps of each axis
// (i0, i1 and their weights) are computed once per call, then every plane reuses them; backward
// scatters dy with the same four weights into a zeroed plane.
namespace {
struct Tap {
  int64_t i0, i1;
  float l0, l1;
};
std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    float src = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
    if (src < 0.0f) src = 0.0f;
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
    const int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
    const float l = src - static_cast<float>(i0);
    t[o] = {i0, i1, 1.0f - l, l};
  }
  return t;
}
}  // namespace

void CpuBackend::resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                         const float* x, float* y) {
  const auto th = taps(H, OH), tw = taps(W, OW);
  parallel_for(NC, 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = x + p * H * W;
      float* out = y + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Tap& a = th[oh];
        const float* r0 = in + a.i0 * W;
        const float* r1 = in + a.i1 * W;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Tap& b = tw[ow];
          out[oh * OW + ow] = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) +
                              a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
        }
      }
    }
  });
}

void CpuBackend::resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH,
                                          int64_t OW, const float* dy, float* dx) {
  const auto th = taps(H, OH), tw = taps(W, OW);
  parallel_for(NC, 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* gin = dx + p * H * W;
      std::memset(gin, 0, H * W * sizeof(float));
      const float* gout = dy + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Tap& a = th[oh];
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Tap& b = tw[ow];
          const float g = gout[oh * OW + ow];
          gin[a.i0 * W + b.i0] += a.l0 * b.l0 * g;
          gin[a.i0 * W + b.i1] += a.l0 * b.l1 * g;
          gin[a.i1 * W + b.i0] += a.l1 * b.l0 * g;
          gin[a.i1 * W + b.i1] += a.l1 * b.l1 * g;
        }
      }
    }
  });
}

// Zero padding: each plane zeroed, then x copied in row by row; backward copies the rows back.
void CpuBackend::pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                               int64_t left, int64_t right, const float* x, float* y) {
  const int64_t OH = H + top + bottom, OW = W + left + right;
  parallel_for(NC, 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* out = y + p * OH * OW;
      std::memset(out, 0, OH * OW * sizeof(float));
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(out + (h + top) * OW + left, x + (p * H + h) * W, W * sizeof(float));
    }
  });
}

void CpuBackend::pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom,
                                int64_t left, int64_t right, const float* dy, float* dx) {
  const int64_t OH = H + top + bottom, OW = W + left + right;
  parallel_for(NC, 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(dx + (p * H + h) * W, dy + p * OH * OW + (h + top) * OW + left,
                    W * sizeof(float));
  });
}

}  // namespace fer::cpu
