// conv2d, max/avg pooling and global average pooling: validation, forward and backward.
#include "engine/ops/op_util.h"

namespace fer {
using namespace ops_detail;

namespace {
// ---- conv2d ------------------------------------------------------------------------------------
// x [N, C, H, W], w [K, C/G, KH, KW], b [K] -> y [N, K, OH, OW], with G groups, stride s, padding
// p and dilation d per axis. Output channel k belongs to group g = k / (K/G) and reads the input
// channels of that group only, c = g*C/G + c' for c' < C/G:
//
//   y[n,k,oh,ow] = b[k] + sum over c' < C/G, kh < KH, kw < KW of
//                  w[k,c',kh,kw] * x[n, g*C/G + c', oh*s_h - p_h + kh*d_h, ow*s_w - p_w + kw*d_w]
//
// with x = 0 outside the image, and OH = (H + 2 p_h - d_h (KH-1) - 1) / s_h + 1 (likewise OW) so
// that the last window still fits. This is a cross-correlation, as PyTorch's conv2d (the kernel is
// not flipped). Each product w * x in the sum sends dy back to both factors:
//
//   dx[n,c,ih,iw]   = sum of w[k,c',kh,kw] dy[n,k,oh,ow] over the (k, kh, kw, oh, ow) whose tap
//                     reads (ih, iw)        (a transposed convolution of dy)
//   dw[k,c',kh,kw]  = sum over n, oh, ow of dy[n,k,oh,ow] x[n, g*C/G + c', ih, iw] at that tap
//   db[k]           = sum over n, oh, ow of dy[n,k,oh,ow]
//
// As matrix products, per image n and group g, with R = C/G*KH*KW taps and P = OH*OW pixels:
// col[R, P] = im2col(x[n, g]) holds the input value of tap r under pixel q, and
//   y[n, g][K/G, P] = w_g[K/G, R] col[R, P],   dw_g += dy[n, g] col^T,
//   dcol = w_g^T dy[n, g],   dx[n, g] = col2im(dcol)   (overlapping windows add up).
// Saved for backward: x (for dw) and w (for dx); the geometry.
struct Conv2dBackward : Node {
  Conv2dGeometry g;
  Tensor x, w;
  bool has_bias = false;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Backend& be = backend_of(gy);
    Tensor gx, gw, gb;
    if (inputs[0].requires_grad()) {
      gx = Tensor::empty(x.shape(), x.device());
      be.conv2d_backward_input(g, gy.data(), w.data(), gx.data());
    }
    const bool want_w = inputs[1].requires_grad();
    const bool want_b = has_bias && inputs[2].requires_grad();
    if (want_w || want_b) {
      gw = Tensor::empty(w.shape(), w.device());
      if (want_b) gb = Tensor::empty({g.K}, w.device());
      be.conv2d_backward_weight(g, gy.data(), x.data(), gw.data(), want_b ? gb.data() : nullptr);
      if (!want_w) gw = Tensor();
    }
    if (has_bias) return {gx, gw, gb};
    return {gx, gw};
  }
  void release_saved() override { x = w = Tensor(); }
  const char* name() const override { return "conv2d"; }
};

// ---- max_pool2d, avg_pool2d, global_avg_pool ----------------------------------------------------
// x [N, C, H, W] -> y [N, C, OH, OW], every plane on its own. Output (oh, ow) has the window of
// input rows oh*s_h - p_h + [0, KH) and columns ow*s_w - p_w + [0, KW); the padding is at most
// half the window. OH = floor((H + 2 p_h - KH) / s_h) + 1, or with ceil_mode the ceiling, less
// one when that last window would start past the image's last row (as PyTorch); likewise OW.
//
// max:  y = max of x over the window's positions inside the image (padding never wins, as if it
//       were -inf; a NaN wins, so it propagates). argmax = ih*W + iw of the first maximum in
//       row-major window order.  dx[i] = sum of dy[o] over the outputs o with argmax[o] == i.
//       Saved for backward: argmax (int32, one per output), not x.
// avg:  y = sum of x over the window's positions inside the image / divisor, the divisor being
//       the window clipped to the padded image [-p, H + p) x [-p, W + p): padded zeros count
//       (PyTorch's count_include_pad=True), the ceil_mode overhang beyond the padding does not.
//       dx[i] = sum of dy[o] / divisor(o) over the windows o that hold i. Saved: the geometry.
// global_avg_pool: avg_pool2d with one window the size of the image, viewed as [N, C].
struct MaxPoolBackward : Node {
  Pool2dGeometry g;
  std::shared_ptr<Storage> argmax;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty({g.N, g.C, g.H, g.W}, gy.device());
    backend_of(gy).max_pool2d_backward(g, gy.data(), static_cast<int32_t*>(argmax->data),
                                       gx.data());
    return {gx};
  }
  void release_saved() override { argmax.reset(); }
  const char* name() const override { return "max_pool2d"; }
};

struct AvgPoolBackward : Node {
  Pool2dGeometry g;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty({g.N, g.C, g.H, g.W}, gy.device());
    backend_of(gy).avg_pool2d_backward(g, gy.data(), gx.data());
    return {gx};
  }
  const char* name() const override { return "avg_pool2d"; }
};

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t span = in + 2 * p - k;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // PyTorch: with ceil_mode the last window must start inside the image or the left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

Pool2dGeometry pool_geometry(const char* op, const Tensor& x, const Pool2dOptions& o) {
  FER_CHECK(x.dim() == 4, op, ": expected NCHW input, got ", x.shape_str());
  FER_CHECK(o.kernel_h > 0 && o.kernel_w > 0 && o.stride_h > 0 && o.stride_w > 0, op,
            ": kernel and stride must be positive");
  FER_CHECK(o.pad_h >= 0 && o.pad_w >= 0 && 2 * o.pad_h <= o.kernel_h && 2 * o.pad_w <= o.kernel_w,
            op, ": padding must be at most half the kernel (kernel ", o.kernel_h, "x", o.kernel_w,
            ", padding ", o.pad_h, "x", o.pad_w, ")");
  Pool2dGeometry g{x.size(0), x.size(1), x.size(2), x.size(3), o.kernel_h, o.kernel_w,
                   o.stride_h, o.stride_w, o.pad_h, o.pad_w, 0, 0};
  g.OH = pooled_size(g.H, g.KH, g.stride_h, g.pad_h, o.ceil_mode);
  g.OW = pooled_size(g.W, g.KW, g.stride_w, g.pad_w, o.ceil_mode);
  FER_CHECK(g.OH > 0 && g.OW > 0, op, ": input ", x.shape_str(), " is smaller than the ",
            o.kernel_h, "x", o.kernel_w, " window");
  return g;
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  FER_CHECK(x.dim() == 4, "conv2d: expected NCHW input, got ", x.shape_str());
  FER_CHECK(weight.dim() == 4, "conv2d: expected weight [K, C/groups, KH, KW], got ",
            weight.shape_str());
  FER_CHECK(o.groups >= 1 && x.size(1) % o.groups == 0 && weight.size(0) % o.groups == 0,
            "conv2d: groups=", o.groups, " must divide input channels ", x.size(1),
            " and output channels ", weight.size(0));
  FER_CHECK(weight.size(1) * o.groups == x.size(1), "conv2d: input ", x.shape_str(), " has ",
            x.size(1), " channels but weight ", weight.shape_str(), " with groups=", o.groups,
            " expects ", weight.size(1) * o.groups);
  FER_CHECK(!bias.defined() || bias.shape() == Shape{weight.size(0)}, "conv2d: bias ",
            bias.defined() ? bias.shape_str() : "", " does not match ", weight.size(0),
            " output channels");
  FER_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.dil_h > 0 && o.dil_w > 0 && o.pad_h >= 0 &&
                o.pad_w >= 0,
            "conv2d: stride and dilation must be positive, padding non-negative");
  Conv2dGeometry g{x.size(0),  x.size(1),  x.size(2),  x.size(3), weight.size(0),
                   weight.size(2), weight.size(3), o.stride_h, o.stride_w, o.pad_h,
                   o.pad_w,    o.dil_h,    o.dil_w,    o.groups,  0,
                   0};
  g.OH = (g.H + 2 * g.pad_h - g.dil_h * (g.KH - 1) - 1) / g.stride_h + 1;
  g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.KW - 1) - 1) / g.stride_w + 1;
  FER_CHECK(g.H + 2 * g.pad_h >= g.dil_h * (g.KH - 1) + 1 &&
                g.W + 2 * g.pad_w >= g.dil_w * (g.KW - 1) + 1,
            "conv2d: input ", x.shape_str(), " (padded by ", g.pad_h, "x", g.pad_w,
            ") is smaller than the kernel ", weight.shape_str());
  const Device dev = common_device("conv2d", {&x, &weight, &bias});
  FER_CHECK(!o.packed || !needs_grad({&weight, &bias}), "conv2d: weight ", weight.shape_str(),
            " is packed (a frozen layer's) and cannot take gradients");
  Tensor y = Tensor::empty({g.N, g.K, g.OH, g.OW}, dev);
  // The activation goes into the convolution's output stores unless it must be a node of its own
  // (gradients, or a trace that records each op).
  const bool grad = needs_grad({&x, &weight, &bias});
  const bool own_node = grad || active_trace();
  backend(dev).conv2d_forward(g, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr,
                              y.data(), o.packed,
                              own_node ? BnActivation::None : o.activation);
  if (grad) {
    auto node = std::make_shared<Conv2dBackward>();
    node->g = g;
    node->x = x.detach();
    node->w = weight.detach();
    node->has_bias = bias.defined();
    std::vector<Tensor> inputs{x, weight};
    if (bias.defined()) inputs.push_back(bias);
    record(y, node, inputs);
  }
  if (OpTrace* trace = active_trace())
    trace->record("conv2d", {x, weight, bias}, y,
                  {{"stride_h", o.stride_h}, {"stride_w", o.stride_w}, {"pad_h", o.pad_h},
                   {"pad_w", o.pad_w}, {"dil_h", o.dil_h}, {"dil_w", o.dil_w}, {"groups", o.groups}});
  if (o.activation == BnActivation::None || !own_node) return y;
  return activation(y, separate_activation(o.activation));
}

namespace {
// The attributes of a traced pooling op: its window, strides, padding and rounding.
std::map<std::string, double> pool_attrs(const Pool2dOptions& o) {
  return {{"kernel_h", o.kernel_h}, {"kernel_w", o.kernel_w}, {"stride_h", o.stride_h},
          {"stride_w", o.stride_w}, {"pad_h", o.pad_h},       {"pad_w", o.pad_w},
          {"ceil_mode", o.ceil_mode ? 1 : 0}};
}
}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o) {
  const Pool2dGeometry g = pool_geometry("max_pool2d", x, o);
  Tensor y = Tensor::empty({g.N, g.C, g.OH, g.OW}, x.device());
  auto argmax = std::make_shared<Storage>(y.numel() * sizeof(int32_t), x.device());
  backend_of(x).max_pool2d_forward(g, x.data(), y.data(), static_cast<int32_t*>(argmax->data));
  if (needs_grad({&x})) {
    auto node = std::make_shared<MaxPoolBackward>();
    node->g = g;
    node->argmax = argmax;
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace()) trace->record("max_pool2d", {x}, y, pool_attrs(o));
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o) {
  const Pool2dGeometry g = pool_geometry("avg_pool2d", x, o);
  Tensor y = Tensor::empty({g.N, g.C, g.OH, g.OW}, x.device());
  backend_of(x).avg_pool2d_forward(g, x.data(), y.data());
  if (needs_grad({&x})) {
    auto node = std::make_shared<AvgPoolBackward>();
    node->g = g;
    record(y, node, {x});
  }
  // Padding counts in the divisor (PyTorch's count_include_pad=True).
  if (OpTrace* trace = active_trace()) trace->record("avg_pool2d", {x}, y, pool_attrs(o));
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  FER_CHECK(x.dim() == 4, "global_avg_pool: expected NCHW input, got ", x.shape_str());
  Pool2dOptions o;
  o.kernel_h = o.stride_h = x.size(2);
  o.kernel_w = o.stride_w = x.size(3);
  return avg_pool2d(x, o).reshape({x.size(0), x.size(1)});
}

}  // namespace fer
