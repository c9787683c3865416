// Depthwise convolution: every channel c is convolved with its own KH x KW kernel,
//
//   y[n, c, oh, ow] = sum over kh, kw of w[c, kh, kw] * x[n, c, oh*s - p + kh, ow*s - p + kw]
//
// A matrix product has nothing to offer here (one output channel per input channel, 9 products
// per output): each output row is a sum of KH*KW shifted input rows, scaled by one weight each.
//
// The plane layout. Each channel plane is copied, zero-padded, into a buffer in which every tap
// of an output row is a contiguous run at a fixed offset:
//   stride 1: the padded plane, rows Wp = W + 2*pad_w floats apart; output row oh reads padded
//             row oh + kh from column kw: offset(kh, kw) = kh*Wp + kw from row oh's start oh*Wp.
//   stride 2: the padded plane's even columns, then its odd columns, each half as wide
//             (We = ceil(Wp / 2)): output column ow reads padded column 2*ow + kw, which is
//             column ow + kw/2 of the even half (kw even) or of the odd half (kw odd). Output row
//             oh starts at padded row 2*oh: offset(kh, kw) = (kw odd ? Hp*We : 0) + kh*We + kw/2.
// So one vector loop (taps_sum: y[q] = sum_t w[t] * x[q + offset(t)]) computes any output row,
// and the gradients are the same walk: dW[t] the dot product of dy with the input at offset(t)
// (taps_dot: every tap in one pass over dy), dx scaled additions of dy at every offset.
//
// With stride 1 the walk covers a whole plane at once, as in the direct convolution: number the
// outputs on a grid as wide as the padded plane, q = oh*Wp + ow, and tap t of every output q
// reads buffer[q + offset(t)]. The grid's last Wp - OW columns of each row are not outputs: the
// forward computes and drops them, the gradients see them as zeros of dy. One call per tap and
// plane instead of one per tap and row: MobileNet's planes are 3x3 to 48x48, and on the small
// ones the per-row calls were mostly call overhead and masked tails. The input gradient is then
// itself a taps_sum over dy's grid, with the offsets negated:
//
//   dx_buffer[p] = sum over t of w[c, t] * dy_grid[p - offset(t)],
//
// dy_grid zero outside the grid (a margin of the largest offset before and after it) and in its
// dropped columns: one pass over the interior rows instead of a scaled addition per tap.
//
// Threads over channels: each thread owns whole channels, so dW needs no partial sums.
#include "kernels/cpu/conv2d_depthwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

struct PlaneLayout {
  int64_t Hp, Wp, row;   // padded sizes; floats between consecutive padded rows in the buffer
  int64_t half;          // stride 2: floats in the even half (the odd half follows)
  int64_t size;          // floats per buffer, with slack for vector reads past a row's end
  std::vector<int32_t> offsets;

  explicit PlaneLayout(const Conv2dGeometry& g)
      : Hp(g.H + 2 * g.pad_h), Wp(g.W + 2 * g.pad_w), row(g.stride_w == 2 ? (Wp + 1) / 2 : Wp),
        half(Hp * row), size((g.stride_w == 2 ? 2 : 1) * Hp * row + 64) {
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw)
        offsets.push_back(static_cast<int32_t>(g.stride_w == 2 ? (kw % 2) * half + kh * row + kw / 2
                                                               : kh * row + kw));
  }
  // Where padded pixel (h, w) lives in the buffer.
  int64_t index(const Conv2dGeometry& g, int64_t h, int64_t w) const {
    return g.stride_w == 2 ? (w % 2) * half + h * row + w / 2 : h * row + w;
  }
  // Where output row oh's taps start.
  int64_t row_start(const Conv2dGeometry& g, int64_t oh) const { return oh * g.stride_h * row; }
};

// Copies one channel plane into the buffer layout, zero-padded.
void load_plane(const Conv2dGeometry& g, const PlaneLayout& L, const float* plane, float* buf) {
  std::memset(buf, 0, L.size * sizeof(float));
  for (int64_t h = 0; h < g.H; ++h) {
    const float* src = plane + h * g.W;
    if (g.stride_w == 1) {
      std::memcpy(buf + L.index(g, h + g.pad_h, g.pad_w), src, g.W * sizeof(float));
    } else {
      for (int64_t w = 0; w < g.W; ++w) buf[L.index(g, h + g.pad_h, w + g.pad_w)] = src[w];
    }
  }
}

// The zeros kept before and after the stride-1 grid: the largest tap offset (a row of slack).
int64_t grid_margin(const Conv2dGeometry& g, const PlaneLayout& L) { return g.KH * L.row + g.KW; }

// Runs body(c, buffer, grid) for every channel, channels spread over the threads; grid is a
// second per-thread buffer of OH*Wp floats for the stride-1 whole-plane walk (else null), with
// grid_margin() zeros before and after it.
template <typename Body>
void for_each_channel(const Conv2dGeometry& g, const PlaneLayout& L, Body body) {
  parallel_for(g.C, 1, [&](int64_t c0, int64_t c1) {
    float* buf = thread_scratch(L.size, 0);
    float* grid = nullptr;
    if (g.stride_h == 1) {
      const int64_t margin = grid_margin(g, L), cells = g.OH * L.row;
      float* whole = thread_scratch(cells + 2 * margin, 1);
      std::memset(whole, 0, margin * sizeof(float));
      std::memset(whole + margin + cells, 0, margin * sizeof(float));
      grid = whole + margin;
    }
    for (int64_t c = c0; c < c1; ++c) body(c, buf, grid);
  });
}

}  // namespace

void spread_onto_grid(int64_t rows, int64_t width, int64_t row, const float* plane, float* grid) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(grid + r * row, plane + r * width, width * sizeof(float));
    std::memset(grid + r * row + width, 0, (row - width) * sizeof(float));
  }
}

bool conv2d_depthwise_applies(const Conv2dGeometry& g) {
  return active_vector_kernels() && g.groups == g.C && g.K == g.C && g.dil_h == 1 && g.dil_w == 1 &&
         g.stride_h == g.stride_w && (g.stride_h == 1 || g.stride_h == 2);
}

void conv2d_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w,
                              const ConvOutput& output, float* y) {
  const VectorKernels& vk = *active_vector_kernels();
  const PlaneLayout L(g);
  const int taps = static_cast<int>(g.KH * g.KW);
  for_each_channel(g, L, [&](int64_t c, float* buf, float* grid) {
    for (int64_t n = 0; n < g.N; ++n) {
      load_plane(g, L, x + (n * g.C + c) * g.H * g.W, buf);
      float* out = y + (n * g.C + c) * g.OH * g.OW;
      if (grid)  // stride 1: the whole plane on the grid, then its output columns
        vk.taps_sum(g.OH * L.row, buf, L.offsets.data(), w + c * taps, taps, grid);
      for (int64_t oh = 0; oh < g.OH; ++oh) {  // each row: act(sums + bias) while in L1
        float* row = out + oh * g.OW;
        if (grid) {
          output.store(grid + oh * L.row, row, g.OW, output.bias(c));
        } else {
          vk.taps_sum(g.OW, buf + L.row_start(g, oh), L.offsets.data(), w + c * taps, taps, row);
          if (!output.plain()) output.store(row, row, g.OW, output.bias(c));
        }
      }
    }
  });
}

// dx: every output pixel hands w[c, t] * dy back to the input pixel its tap t read. Stride 1:
// the taps_sum over dy's grid above, for the padded plane's interior rows, cropped into dx.
// Stride 2: for each output row and tap, dx_buffer[row_start + offset(t) + ow] += w[c, t] *
// dy[oh, ow], then the buffer's padded plane is cropped and its columns re-interleaved into dx.
void conv2d_depthwise_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                     float* dx) {
  const VectorKernels& vk = *active_vector_kernels();
  const PlaneLayout L(g);
  const int64_t taps = g.KH * g.KW;
  std::vector<int32_t> back(L.offsets.size());  // the offsets negated: from dx to the dy it gathers
  for (size_t t = 0; t < back.size(); ++t) back[t] = -L.offsets[t];
  for_each_channel(g, L, [&](int64_t c, float* buf, float* grid) {
    for (int64_t n = 0; n < g.N; ++n) {
      const float* grad = dy + (n * g.C + c) * g.OH * g.OW;
      float* plane = dx + (n * g.C + c) * g.H * g.W;
      if (grid) {
        spread_onto_grid(g.OH, g.OW, L.row, grad, grid);
        vk.taps_sum(g.H * L.row, grid + g.pad_h * L.row, back.data(), w + c * taps, static_cast<int>(taps), buf);
        for (int64_t h = 0; h < g.H; ++h) std::memcpy(plane + h * g.W, buf + h * L.row + g.pad_w, g.W * sizeof(float));
        continue;
      }
      std::memset(buf, 0, L.size * sizeof(float));
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t t = 0; t < taps; ++t)
          vk.axpy(g.OW, w[c * taps + t], grad + oh * g.OW, buf + L.row_start(g, oh) + L.offsets[t]);
      for (int64_t h = 0; h < g.H; ++h)
        for (int64_t x = 0; x < g.W; ++x) plane[h * g.W + x] = buf[L.index(g, h + g.pad_h, x + g.pad_w)];
    }
  });
}

// dW[c, t] = sum over n, oh of dot(dy[n, c, oh, :], the input row that tap t read for it):
// every tap's dot product in one pass over dy (taps_dot), whole planes at stride 1, rows at 2.
void conv2d_depthwise_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                      float* dw, float* dbias) {
  const VectorKernels& vk = *active_vector_kernels();
  const PlaneLayout L(g);
  const int taps = static_cast<int>(g.KH * g.KW);
  for_each_channel(g, L, [&](int64_t c, float* buf, float* grid) {
    std::vector<double> sums(taps, 0.0);
    std::vector<float> part(taps);
    double bias_sum = 0.0;
    const auto add = [&](int64_t len, const float* grad_row, const float* input) {
      vk.taps_dot(len, grad_row, input, L.offsets.data(), taps, part.data());
      for (int t = 0; t < taps; ++t) sums[t] += part[t];
    };
    for (int64_t n = 0; n < g.N; ++n) {
      load_plane(g, L, x + (n * g.C + c) * g.H * g.W, buf);
      const float* grad = dy + (n * g.C + c) * g.OH * g.OW;
      if (grid) {  // stride 1: the whole plane at once
        spread_onto_grid(g.OH, g.OW, L.row, grad, grid);
        add(g.OH * L.row, grid, buf);
      } else {
        for (int64_t oh = 0; oh < g.OH; ++oh) add(g.OW, grad + oh * g.OW, buf + L.row_start(g, oh));
      }
      if (dbias)
        for (int64_t i = 0; i < g.OH * g.OW; ++i) bias_sum += grad[i];
    }
    for (int64_t t = 0; t < taps; ++t) dw[c * taps + t] = static_cast<float>(sums[t]);
    if (dbias) dbias[c] = static_cast<float>(bias_sum);
  });
}

}  // namespace fer::cpu
