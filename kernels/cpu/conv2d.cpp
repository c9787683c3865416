// 2-d convolution on the CPU: im2col + GEMM, threads over the batch.
//
// Shapes (per image n and group g; Cg = C/groups input channels and Kg = K/groups filters per
// group; P = OH*OW output pixels; R = Cg*KH*KW is one receptive field):
//   col[R, P]    = im2col(x[n, g])            one column per output pixel
//   y[n, g]      = W_g[Kg, R] * col[R, P]  (+ bias)
// Backward:
//   dW_g        += dy[n, g][Kg, P] * col[R, P]^T     summed over the batch
//   dbias[k]    += sum over n, p of dy[n, k, p]
//   dcol[R, P]   = W_g^T[R, Kg] * dy[n, g][Kg, P]
//   dx[n, g]     = col2im(dcol)              the adjoint of im2col: overlapping windows add up
// A 1x1 convolution with stride 1 and no padding needs no im2col: col is x itself.
//
// Threads: with at least as many images as threads, each thread takes whole images and runs
// single-threaded GEMMs on its own column buffer (weight gradients go to per-thread partial sums,
// added at the end). With fewer images (one-face inference) the images run one after another and
// Eigen splits each GEMM over the threads instead.
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace fer::cpu {

namespace {

bool is_pointwise(const Conv2dGeometry& g) {
  return g.KH == 1 && g.KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*s - p + kh*d, ow*s - p + kw*d] (0 outside).
void im2col(const Conv2dGeometry& g, int64_t Cg, const float* x, float* col) {
  const int64_t P = g.OH * g.OW;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* plane = x + c * g.H * g.W;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        float* row = col + ((c * g.KH + kh) * g.KW + kw) * P;
        const int64_t w_shift = kw * g.dil_w - g.pad_w;
        // Output columns whose input column lies inside the image: iw = ow*s + w_shift in [0, W).
        int64_t ow_lo = 0, ow_hi = g.OW;
        while (ow_lo < g.OW && ow_lo * g.stride_w + w_shift < 0) ++ow_lo;
        while (ow_hi > ow_lo && (ow_hi - 1) * g.stride_w + w_shift >= g.W) --ow_hi;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          float* out = row + oh * g.OW;
          const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
          if (ih < 0 || ih >= g.H) {
            std::memset(out, 0, g.OW * sizeof(float));
            continue;
          }
          const float* in = plane + ih * g.W + w_shift;
          for (int64_t ow = 0; ow < ow_lo; ++ow) out[ow] = 0.0f;
          if (g.stride_w == 1) {
            std::memcpy(out + ow_lo, in + ow_lo, (ow_hi - ow_lo) * sizeof(float));
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = in[ow * g.stride_w];
          }
          for (int64_t ow = ow_hi; ow < g.OW; ++ow) out[ow] = 0.0f;
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
        int64_t ow_lo = 0, ow_hi = g.OW;
        while (ow_lo < g.OW && ow_lo * g.stride_w + w_shift < 0) ++ow_lo;
        while (ow_hi > ow_lo && (ow_hi - 1) * g.stride_w + w_shift >= g.W) --ow_hi;
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

// Runs body(n) for every image, either spreading images over threads or one after another.
template <typename Body>
void for_each_image(int64_t N, Body body) {
  const int threads = cpu_threads();
  if (N >= threads && threads > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) body(n);
  } else {
    for (int64_t n = 0; n < N; ++n) body(n);
  }
}

}  // namespace

void CpuBackend::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                const float* bias, float* y) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  const bool pointwise = is_pointwise(g);
  for_each_image(g.N, [&](int64_t n) {
    float* col = pointwise ? nullptr : thread_scratch(R * P);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      if (!pointwise) im2col(g, Cg, xg, col);
      float* out = y + (n * g.K + grp * Kg) * P;
      // out[Kg, P] = W_g[Kg, R] * col[R, P]
      sgemm(false, false, Kg, P, R, 1.0f, w + grp * Kg * R, R, pointwise ? xg : col, P, 0.0f, out, P);
      if (bias)
        for (int64_t k = 0; k < Kg; ++k)
          for (int64_t p = 0; p < P; ++p) out[k * P + p] += bias[grp * Kg + k];
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
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  const bool pointwise = is_pointwise(g);
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
    conv2d_forward(t, dy, rotated.data(), nullptr, dx);
    return;
  }
  for_each_image(g.N, [&](int64_t n) {
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
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, P = g.OH * g.OW;
  const int64_t R = Cg * g.KH * g.KW;
  const bool pointwise = is_pointwise(g);
  const int64_t wsize = g.K * R;
  const int threads = (g.N >= cpu_threads()) ? cpu_threads() : 1;

  // Partial sums per thread (thread 0 writes straight into dw).
  std::vector<float> partial(static_cast<size_t>(threads - 1) * (wsize + g.K), 0.0f);
  std::fill(dw, dw + wsize, 0.0f);
  if (dbias) std::fill(dbias, dbias + g.K, 0.0f);

  auto work = [&](int64_t n, int t) {
    float* dw_t = t == 0 ? dw : partial.data() + (t - 1) * (wsize + g.K);
    float* db_t = t == 0 ? dbias : partial.data() + (t - 1) * (wsize + g.K) + wsize;
    float* col = pointwise ? nullptr : thread_scratch(R * P);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      if (!pointwise) im2col(g, Cg, xg, col);
      const float* dyg = dy + (n * g.K + grp * Kg) * P;
      // dW_g[Kg, R] += dy_g[Kg, P] * col[R, P]^T
      sgemm(false, true, Kg, R, P, 1.0f, dyg, P, pointwise ? xg : col, P, 1.0f, dw_t + grp * Kg * R, R);
      if (dbias)
        for (int64_t k = 0; k < Kg; ++k) {
          float s = 0.0f;
          for (int64_t p = 0; p < P; ++p) s += dyg[k * P + p];
          db_t[grp * Kg + k] += s;
        }
    }
  };

  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (int64_t n = g.N * t / nt; n < g.N * (t + 1) / nt; ++n) work(n, t);
    }
    for (int t = 1; t < threads; ++t) {
      const float* p = partial.data() + (t - 1) * (wsize + g.K);
      for (int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
      if (dbias)
        for (int64_t k = 0; k < g.K; ++k) dbias[k] += p[wsize + k];
    }
  } else {
    for (int64_t n = 0; n < g.N; ++n) work(n, 0);
  }
}

}  // namespace fer::cpu
