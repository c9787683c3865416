// 2-d convolution on the CPU as matrix products, threads over the batch. The math, and the same
// sums written as the products below: conv2d in engine/ops/conv_pool.cpp; what each kernel reads
// and overwrites: engine/backend.h.
//
// Notation, per image n and group g: Kg = K/groups filters, R = C/groups*KH*KW taps (one
// receptive field), P = OH*OW output pixels, W_g [Kg, R], col[R, P] = im2col(x[n, g]) one column
// per output pixel. Forward y[n, g] = W_g col (+ bias); weight gradient dW_g += dy[n, g] col^T
// summed over the batch; input gradient dx[n, g] = col2im(W_g^T dy[n, g]).
//
// Which code runs (the first that applies):
// - bf16 products on a CPU with AMX, stride 1, one group, at least 16 channels in and out: the
//   tile convolution of conv2d_amx.cpp (NHWC inside the call).
// - 3x3, stride 1, fp32, at least 32 channels in and out:
//   Winograd's F(4x4, 3x3) of conv2d_winograd.cpp, 4x fewer products (F(2x2, 3x3) on maps where
//   4x4 tiles would overhang). The weight gradient takes it where the output channels fill
//   whole micro-kernel panels but for an eighth (conv2d_winograd.h).
// - Stride 1, no dilation, one group (every 3x3 and 1x1 layer of the FER CNNs): the direct
//   convolution of conv2d_direct.cpp, which reads the weights and a padded image in place.
// - One kernel per channel (MobileNet's depthwise layers): conv2d_depthwise.cpp.
// - The scalar kernel set: im2col and the reference GEMM, the plain definition.
// - Anything else (stride 2, dilation, groups, 7x7 stems), on the packed GEMM (gemm.h):
//   forward is an implicit GEMM: W_g is packed once per call (PackedA) and col is never stored;
//   the GEMM driver asks ImageColumns for one cache block of col at a time, which reads it
//   straight from the image into the micro-kernel's panel layout. Layers with few pixels put
//   several images side by side in one product, col[R, nb*P], so that the product is wide
//   enough for the micro-kernel. The weight gradient materialises col for a group of images and
//   runs dW_g += dy_group[Kg, nb*P] * col[R, nb*P]^T, a product as deep as the group's pixels.
//   The input gradient is a forward convolution with rotated kernels where the stride is 1,
//   else W_g^T dy followed by col2im.
//
// Threads: with at least as many image groups as threads, each thread takes whole groups and
// runs single-threaded products (weight gradients go to per-thread partial sums, added at the
// end). With fewer (one-face inference) the groups run one after another and each product is
// split over the threads instead.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv2d_amx.h"
#include "kernels/cpu/conv2d_depthwise.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/conv2d_output.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

// Output columns [ow_lo, ow_hi) of one im2col row read inside the image: iw = ow*s + w_shift in [0, W).
void valid_columns(const Conv2dGeometry& g, int64_t w_shift, int64_t& ow_lo, int64_t& ow_hi) {
  ow_lo = 0, ow_hi = g.OW;
  while (ow_lo < g.OW && ow_lo * g.stride_w + w_shift < 0) ++ow_lo;
  while (ow_hi > ow_lo && (ow_hi - 1) * g.stride_w + w_shift >= g.W) --ow_hi;
}

// Writes out[t] = x_row[(ow0 + t)*s + w_shift] for t in [0, len), zero where that lies outside
// the row (ow outside [ow_lo, ow_hi)); x_row is null for a row outside the image.
void gather_row(const Conv2dGeometry& g, const float* x_row, int64_t ow0, int64_t len,
                int64_t w_shift, int64_t ow_lo, int64_t ow_hi, float* out) {
  if (!x_row) {
    std::memset(out, 0, len * sizeof(float));
    return;
  }
  const int64_t lo = std::clamp(ow_lo, ow0, ow0 + len), hi = std::clamp(ow_hi, lo, ow0 + len);
  for (int64_t ow = ow0; ow < lo; ++ow) out[ow - ow0] = 0.0f;
  if (g.stride_w == 1) {
    std::memcpy(out + (lo - ow0), x_row + lo + w_shift, (hi - lo) * sizeof(float));
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) out[ow - ow0] = x_row[ow * g.stride_w + w_shift];
  }
  for (int64_t ow = hi; ow < ow0 + len; ++ow) out[ow - ow0] = 0.0f;
}

// col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*s - p + kh*d, ow*s - p + kw*d] (0 outside), with
// rows `ld` floats apart (ld > P puts several images' columns side by side).
void im2col(const Conv2dGeometry& g, int64_t Cg, const float* x, float* col, int64_t ld) {
  for (int64_t c = 0; c < Cg; ++c) {
    const float* plane = x + c * g.H * g.W;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        float* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const int64_t w_shift = kw * g.dil_w - g.pad_w;
        int64_t ow_lo, ow_hi;
        valid_columns(g, w_shift, ow_lo, ow_hi);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
          const float* x_row = (ih < 0 || ih >= g.H) ? nullptr : plane + ih * g.W;
          gather_row(g, x_row, 0, g.OW, w_shift, ow_lo, ow_hi, row + oh * g.OW);
        }
      }
    }
  }
}

// The adjoint of im2col: x[c, ih, iw] += col[...] for every window position that read it.
void col2im(const Conv2dGeometry& g, int64_t Cg, const float* col, float* x) {
  const int64_t P = g.OH * g.OW;
  std::memset(x, 0, Cg * g.H * g.W * sizeof(float));
  for (int64_t c = 0; c < Cg; ++c) {
    float* plane = x + c * g.H * g.W;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const float* row = col + ((c * g.KH + kh) * g.KW + kw) * P;
        const int64_t w_shift = kw * g.dil_w - g.pad_w;
        int64_t ow_lo, ow_hi;
        valid_columns(g, w_shift, ow_lo, ow_hi);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          const float* in = row + oh * g.OW;
          float* out = plane + ih * g.W + w_shift;
          if (g.stride_w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] += in[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow * g.stride_w] += in[ow];
          }
        }
      }
    }
  }
}

// The im2col matrix of `images` consecutive images (one group of channels each), columns side
// by side, B[r, n*P + p] = col_n[r, p], packed block by block without ever being stored whole.
class ImageColumns final : public PanelSource {
 public:
  // x points at the first image's first channel of the group; images are image_stride apart.
  ImageColumns(const Conv2dGeometry& g, const float* x, int64_t image_stride)
      : g_(g), x_(x), image_stride_(image_stride), P_(g.OH * g.OW) {}

  void pack(int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const override {
    const int64_t panels = (nc + nr - 1) / nr;
    for (int64_t k = 0; k < kc; ++k) {
      // Row r of col is (channel c, kernel row kh, kernel column kw).
      const int64_t r = p0 + k, kw = r % g_.KW, kh = (r / g_.KW) % g_.KH, c = r / (g_.KW * g_.KH);
      const int64_t w_shift = kw * g_.dil_w - g_.pad_w;
      int64_t ow_lo, ow_hi;
      valid_columns(g_, w_shift, ow_lo, ow_hi);
      for (int64_t panel = 0; panel < panels; ++panel) {
        float* out = dst + (panel * kc + k) * nr;
        const int64_t first = j0 + panel * nr, cols = std::min<int64_t>(nr, j0 + nc - first);
        // Walk the panel's columns in runs that stay within one output row of one image.
        for (int64_t t = 0; t < cols;) {
          const int64_t j = first + t, n = j / P_, p = j % P_, oh = p / g_.OW, ow = p % g_.OW;
          const int64_t len = std::min(cols - t, g_.OW - ow);
          const int64_t ih = oh * g_.stride_h - g_.pad_h + kh * g_.dil_h;
          const float* x_row = (ih < 0 || ih >= g_.H)
                                   ? nullptr
                                   : x_ + n * image_stride_ + (c * g_.H + ih) * g_.W;
          gather_row(g_, x_row, ow, len, w_shift, ow_lo, ow_hi, out + t);
          t += len;
        }
        for (int64_t t = cols; t < nr; ++t) out[t] = 0.0f;
      }
    }
  }

 private:
  const Conv2dGeometry& g_;
  const float* x_;
  int64_t image_stride_, P_;
};

// How many images share one product: enough for ~512 columns, so that layers of a few pixels
// still give the micro-kernel wide products (1 for layers of 512 pixels or more).
int64_t images_per_group(const Conv2dGeometry& g) {
  const int64_t P = g.OH * g.OW;
  return std::clamp<int64_t>((512 + P - 1) / P, 1, g.N);
}

// Layers with one input channel per group stay fp32 in bf16 precision: depthwise layers and
// single-channel stems (fer_vgg_small's grayscale input) have KH * KW products per output, too few
// for the bf16 kernels' packing to pay (the 1->32 stem at 48x48, batch 64, 2 threads, Xeon model
// 207: weight gradient 11.4 ms in bf16 against 7.0 ms in fp32, forward 2.5 against 1.7 ms).
Precision precision_for(const Conv2dGeometry& g) {
  return g.C == g.groups ? Precision::FP32 : matmul_precision();
}

// Runs body(first_image, count) for every group of images, spreading the groups over threads
// when there are enough of them, else one after another (then the products use the threads).
template <typename Body>
void for_each_image_group(int64_t N, int64_t per_group, Body body) {
  const int64_t groups = (N + per_group - 1) / per_group;
  const int threads = cpu_threads();
  if (groups >= threads && threads > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < groups; ++i) body(i * per_group, std::min(per_group, N - i * per_group));
  } else {
    for (int64_t i = 0; i < groups; ++i) body(i * per_group, std::min(per_group, N - i * per_group));
  }
}

}  // namespace

void CpuBackend::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                const float* bias, float* y, PackedWeights* packed,
                                BnActivation act) {
  const PrecisionScope precision(precision_for(g));
  const ConvOutput output(bias, act);
  if (const AmxConvKernels* amx = active_amx_conv_kernels(); amx && conv2d_amx_applies(g)) {
    conv2d_amx_forward(*amx, g, x, w, bias, y);
    return output.activate(y, g.N * g.K * g.OH * g.OW);
  }
  if (conv2d_winograd_applies(g)) return conv2d_winograd_forward(g, x, w, output, y, packed);
  if (conv2d_direct_applies(g)) return conv2d_direct_forward(g, x, w, output, y);
  if (conv2d_depthwise_applies(g)) return conv2d_depthwise_forward(g, x, w, output, y);
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  if (!active_gemm_microkernel()) {  // the scalar set: im2col and the reference product, plainly
    std::vector<float> col(R * P);
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        im2col(g, Cg, x + (n * g.C + grp * Cg) * g.H * g.W, col.data(), P);
        float* yg = y + (n * g.K + grp * Kg) * P;
        sgemm_reference(false, false, Kg, P, R, 1.0f, w + grp * Kg * R, R, col.data(), P, 0.0f, yg, P);
        for (int64_t k = 0; k < Kg; ++k)  // act(sum + bias), plainly
          for (int64_t p = 0; p < P; ++p) yg[k * P + p] = output(yg[k * P + p], output.bias(grp * Kg + k));
      }
    return;
  }
  std::vector<PackedA> weights;
  weights.reserve(g.groups);
  for (int64_t grp = 0; grp < g.groups; ++grp) weights.emplace_back(false, Kg, R, w + grp * Kg * R, R);
  const int64_t per_group = images_per_group(g);
  for_each_image_group(g.N, per_group, [&](int64_t n0, int64_t nb) {
    // One image writes straight into y; several go through a [Kg, nb*P] buffer, then to NCHW.
    float* buffer = nb > 1 ? thread_scratch(Kg * nb * P) : nullptr;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const ImageColumns cols(g, x + (n0 * g.C + grp * Cg) * g.H * g.W, g.C * g.H * g.W);
      float* sums = nb > 1 ? buffer : y + (n0 * g.K + grp * Kg) * P;
      sgemm_packed(weights[grp], cols, nb * P, 1.0f, 0.0f, sums, nb * P);
      if (nb == 1 && output.plain()) continue;
      // act(sum + bias) on the way to each image's NCHW planes (in place for one image).
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t k = 0; k < Kg; ++k)
          output.store(sums + k * nb * P + i * P, y + ((n0 + i) * g.K + grp * Kg + k) * P, P,
                       output.bias(grp * Kg + k));
    }
  });
}

// Backward w.r.t. the input. With stride 1 and no dilation, dx is itself a convolution: the
// "full" correlation of dy with the kernels rotated by 180 degrees and with input and output
// channels swapped,
//   dx[c, h, w] = sum_k sum_ij dy[k, h + p - i', w + p - j'] W[k, c, i', j'],
//              = conv2d(dy, W_rot, padding = K - 1 - p)  with W_rot[c, k, i, j] = W[k, c, K-1-i, K-1-j].
// That runs through the forward path, whose GEMM [C, K*KH*KW] x [K*KH*KW, P] keeps every core
// busy, instead of the GEMM [R, Kg] x [Kg, P] with its short inner dimension Kg followed by a
// scattering col2im. Other geometries take the col2im route.
void CpuBackend::conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                       float* dx) {
  const PrecisionScope precision(precision_for(g));
  if (conv2d_depthwise_applies(g)) return conv2d_depthwise_backward_input(g, dy, w, dx);
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  const bool pointwise = g.KH == 1 && g.KW == 1 && g.stride_h == 1 && g.stride_w == 1 &&
                         g.pad_h == 0 && g.pad_w == 0;
  if (!pointwise && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
      g.pad_h < g.KH && g.pad_w < g.KW) {
    std::vector<float> rotated(g.C * Kg * g.KH * g.KW);
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t i = 0; i < g.KH; ++i)
            for (int64_t j = 0; j < g.KW; ++j)
              rotated[(((grp * Cg + c) * Kg + k) * g.KH + (g.KH - 1 - i)) * g.KW + (g.KW - 1 - j)] =
                  w[(((grp * Kg + k) * Cg + c) * g.KH + i) * g.KW + j];
    Conv2dGeometry t{g.N, g.K, g.OH, g.OW, g.C, g.KH, g.KW, 1, 1, g.KH - 1 - g.pad_h,
                     g.KW - 1 - g.pad_w, 1, 1, g.groups, g.H, g.W};
    conv2d_forward(t, dy, rotated.data(), nullptr, dx, nullptr, BnActivation::None);
    return;
  }
  for_each_image_group(g.N, 1, [&](int64_t n, int64_t) {
    float* dcol = pointwise ? nullptr : thread_scratch(R * P);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      float* dxg = dx + (n * g.C + grp * Cg) * g.H * g.W;
      // dcol[R, P] = W_g^T[R, Kg] * dy_g[Kg, P]
      sgemm(true, false, R, P, Kg, 1.0f, w + grp * Kg * R, R, dy + (n * g.K + grp * Kg) * P, P,
            0.0f, pointwise ? dxg : dcol, P);
      if (!pointwise) col2im(g, Cg, dcol, dxg);
    }
  });
}

void CpuBackend::conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                        float* dw, float* dbias) {
  const PrecisionScope precision(precision_for(g));
  if (const AmxConvKernels* amx = active_amx_conv_kernels(); amx && conv2d_amx_applies(g))
    return conv2d_amx_backward_weight(*amx, g, dy, x, dw, dbias);
  if (conv2d_winograd_weight_applies(g)) return conv2d_winograd_backward_weight(g, dy, x, dw, dbias);
  if (conv2d_direct_applies(g)) return conv2d_direct_backward_weight(g, dy, x, dw, dbias);
  if (conv2d_depthwise_applies(g)) return conv2d_depthwise_backward_weight(g, dy, x, dw, dbias);
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  const int64_t wsize = g.K * R;
  const int64_t per_group = images_per_group(g);
  const int64_t image_groups = (g.N + per_group - 1) / per_group;
  const int threads = std::max<int>(1, std::min<int64_t>(cpu_threads(), image_groups));

  // Partial sums per thread (thread 0 writes straight into dw).
  std::vector<float> partial(static_cast<size_t>(threads - 1) * (wsize + g.K), 0.0f);
  std::fill(dw, dw + wsize, 0.0f);
  if (dbias) std::fill(dbias, dbias + g.K, 0.0f);

  // One group of nb images on thread t: dW_g += dy_group[Kg, nb*P] * col_group[R, nb*P]^T.
  auto work = [&](int64_t n0, int64_t nb, int t) {
    float* dw_t = t == 0 ? dw : partial.data() + (t - 1) * (wsize + g.K);
    float* db_t = t == 0 ? dbias : partial.data() + (t - 1) * (wsize + g.K) + wsize;
    const int64_t cols = nb * P;
    float* col = thread_scratch(R * cols, 0);
    float* dy_group = nb > 1 ? thread_scratch(Kg * cols, 1) : nullptr;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      for (int64_t i = 0; i < nb; ++i) {
        im2col(g, Cg, x + ((n0 + i) * g.C + grp * Cg) * g.H * g.W, col + i * P, cols);
        if (dy_group)
          for (int64_t k = 0; k < Kg; ++k)
            std::memcpy(dy_group + k * cols + i * P, dy + ((n0 + i) * g.K + grp * Kg + k) * P,
                        P * sizeof(float));
      }
      const float* dyg = dy_group ? dy_group : dy + (n0 * g.K + grp * Kg) * P;
      sgemm(false, true, Kg, R, cols, 1.0f, dyg, cols, col, cols, 1.0f, dw_t + grp * Kg * R, R);
      if (dbias)
        for (int64_t k = 0; k < Kg; ++k) {
          float s = 0.0f;
          for (int64_t p = 0; p < cols; ++p) s += dyg[k * cols + p];
          db_t[grp * Kg + k] += s;
        }
    }
  };

  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (int64_t i = image_groups * t / nt; i < image_groups * (t + 1) / nt; ++i)
        work(i * per_group, std::min(per_group, g.N - i * per_group), t);
    }
    for (int t = 1; t < threads; ++t) {
      const float* p = partial.data() + (t - 1) * (wsize + g.K);
      for (int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
      if (dbias)
        for (int64_t k = 0; k < g.K; ++k) dbias[k] += p[wsize + k];
    }
  } else {
    for (int64_t i = 0; i < image_groups; ++i) work(i * per_group, std::min(per_group, g.N - i * per_group), 0);
  }
}

}  // namespace fer::cpu
