// concat, resize_bilinear and pad2d: forward and backward side by side.
//
// concat along dim d: view every tensor as [outer, inner_i] with outer = prod(shape[:d]) and
// inner_i = prod(shape[d:]); the output row r is the rows r of all inputs side by side. Backward
// slices the same columns back out of dy.
#include "engine/ops/op_util.h"

namespace fer {
using namespace ops_detail;

namespace {
struct ConcatBackward : Node {
  int64_t outer = 0, total_inner = 0;
  std::vector<int64_t> inner;
  std::vector<Shape> shapes;
  std::vector<Tensor> backward(const Tensor& gy) override {
    std::vector<Tensor> grads;
    int64_t col = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor g;
      if (inputs[i].requires_grad()) {
        g = Tensor::empty(shapes[i], gy.device());
        backend_of(gy).copy_2d(gy.data() + col, total_inner, g.data(), inner[i], outer, inner[i],
                               false);
      }
      grads.push_back(g);
      col += inner[i];
    }
    return grads;
  }
  const char* name() const override { return "concat"; }
};

// ---- resize_bilinear ---------------------------------------------------------------------------
// x [N, C, H, W] -> y [N, C, OH, OW], PyTorch's align_corners=False: along each axis, output
// index o samples the input at
//   src = (o + 0.5) * (in / out) - 0.5, clamped at 0,
// between i0 = floor(src) and i1 = min(i0 + 1, in - 1) with weights (1 - l, l), l = src - i0;
// y is the product of the two axes' interpolations (four taps). The backward adds each dy into
// dx with the same four weights. Saved for backward: the sizes only.
struct ResizeBackward : Node {
  int64_t N, C, H, W, OH, OW;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty({N, C, H, W}, gy.device());
    backend_of(gy).resize_bilinear_backward(N * C, H, W, OH, OW, gy.data(), gx.data());
    return {gx};
  }
  const char* name() const override { return "resize_bilinear"; }
};

// ---- pad2d -------------------------------------------------------------------------------------
// x [N, C, H, W] -> y [N, C, H + top + bottom, W + left + right]: x placed at (top, left) in a
// plane of zeros. The backward crops dy back to [H, W] at the same place.
struct PadBackward : Node {
  int64_t N, C, H, W, top, bottom, left, right;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty({N, C, H, W}, gy.device());
    backend_of(gy).pad2d_backward(N * C, H, W, top, bottom, left, right, gy.data(), gx.data());
    return {gx};
  }
  const char* name() const override { return "pad2d"; }
};
}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  FER_CHECK(!xs.empty(), "concat: no tensors");
  const Shape& first = xs[0].shape();
  const int64_t rank = static_cast<int64_t>(first.size());
  if (dim < 0) dim += rank;
  FER_CHECK(dim >= 0 && dim < rank, "concat: dim ", dim, " out of range for ", xs[0].shape_str());
  Shape out_shape = first;
  out_shape[dim] = 0;
  std::vector<const Tensor*> ptrs;
  for (const Tensor& x : xs) {
    bool compatible = x.dim() == rank;
    for (int64_t d = 0; compatible && d < rank; ++d)
      compatible = d == dim || x.size(d) == first[d];
    FER_CHECK(compatible, "concat along dim ", dim, ": shapes ", xs[0].shape_str(), " and ",
              x.shape_str(), " differ outside that dim");
    out_shape[dim] += x.size(dim);
    ptrs.push_back(&x);
  }
  const Device dev = xs[0].device();
  for (const Tensor& x : xs)
    FER_CHECK(x.device() == dev, "concat: tensors on different devices (", device_name(dev), " ",
              xs[0].shape_str(), " and ", device_name(x.device()), " ", x.shape_str(), ")");
  const int64_t outer = shape_numel(Shape(first.begin(), first.begin() + dim));
  Tensor y = Tensor::empty(out_shape, dev);
  const int64_t total_inner = outer ? y.numel() / outer : 0;
  auto node = std::make_shared<ConcatBackward>();
  int64_t col = 0;
  for (const Tensor& x : xs) {
    const int64_t inner = outer ? x.numel() / outer : 0;
    backend(dev).copy_2d(x.data(), inner, y.data() + col, total_inner, outer, inner, false);
    node->inner.push_back(inner);
    node->shapes.push_back(x.shape());
    col += inner;
  }
  bool any_grad = false;
  for (const Tensor& x : xs) any_grad = any_grad || needs_grad({&x});
  if (any_grad) {
    node->outer = outer;
    node->total_inner = total_inner;
    record(y, node, xs);
  }
  if (OpTrace* trace = active_trace()) trace->record("concat", xs, y, {{"dim", dim}});
  return y;
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  FER_CHECK(x.dim() == 4, "resize_bilinear: expected NCHW input, got ", x.shape_str());
  FER_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: output size ", out_h, "x", out_w,
            " must be positive");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  FER_CHECK(H > 0 && W > 0, "resize_bilinear: empty input ", x.shape_str());
  Tensor y = Tensor::empty({N, C, out_h, out_w}, x.device());
  backend_of(x).resize_bilinear_forward(N * C, H, W, out_h, out_w, x.data(), y.data());
  if (needs_grad({&x})) {
    auto node = std::make_shared<ResizeBackward>();
    node->N = N; node->C = C; node->H = H; node->W = W; node->OH = out_h; node->OW = out_w;
    record(y, node, {x});
  }
  // Bilinear with align_corners=False (pixel centres at +0.5); the sizes are the output's shape.
  if (OpTrace* trace = active_trace()) trace->record("resize_bilinear", {x}, y);
  return y;
}

Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  FER_CHECK(x.dim() == 4, "pad2d: expected NCHW input, got ", x.shape_str());
  FER_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "pad2d: padding must be >= 0");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({N, C, H + top + bottom, W + left + right}, x.device());
  backend_of(x).pad2d_forward(N * C, H, W, top, bottom, left, right, x.data(), y.data());
  if (needs_grad({&x})) {
    auto node = std::make_shared<PadBackward>();
    node->N = N; node->C = C; node->H = H; node->W = W;
    node->top = top; node->bottom = bottom; node->left = left; node->right = right;
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace())
    trace->record("pad2d", {x}, y, {{"top", top}, {"bottom", bottom}, {"left", left}, {"right", right}});
  return y;
}

}  // namespace fer
