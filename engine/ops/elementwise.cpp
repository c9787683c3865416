// Elementwise ops and activations: forward and backward side by side.
#include "engine/ops/op_util.h"

namespace fer {
using namespace ops_detail;

// ---- add: y = a + b;  da = dy, db = dy ---------------------------------------------------------
namespace {
struct AddBackward : Node {
  std::vector<Tensor> backward(const Tensor& gy) override { return {gy, gy}; }
  const char* name() const override { return "add"; }
};

// ---- mul: y = a * b;  da = dy * b, db = dy * a ---------------------------------------------------
struct MulBackward : Node {
  Tensor a, b;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor ga, gb;
    if (inputs[0].requires_grad()) {
      ga = Tensor::empty(a.shape(), a.device());
      backend_of(a).mul(gy.data(), b.data(), ga.data(), a.numel());
    }
    if (inputs[1].requires_grad()) {
      gb = Tensor::empty(b.shape(), b.device());
      backend_of(b).mul(gy.data(), a.data(), gb.data(), b.numel());
    }
    return {ga, gb};
  }
  void release_saved() override { a = b = Tensor(); }
  const char* name() const override { return "mul"; }
};

// ---- scale: y = alpha x;  dx = alpha dy ----------------------------------------------------------
struct ScaleBackward : Node {
  float alpha = 1.0f;
  std::vector<Tensor> backward(const Tensor& gy) override { return {scale(gy, alpha)}; }
  const char* name() const override { return "scale"; }
};

// ---- sum: y = sum_i x_i;  dx_i = dy --------------------------------------------------------------
struct SumBackward : Node {
  Shape shape;
  std::vector<Tensor> backward(const Tensor& gy) override {
    return {Tensor::full(shape, gy.item(), gy.device())};
  }
  const char* name() const override { return "sum"; }
};

// ---- activation: y = f(x);  dx = f'(x) dy -------------------------------------------------------
//   ReLU       f = max(x, 0)                     f' = [x > 0]
//   ReLU6      f = min(max(x, 0), 6)             f' = [0 < x < 6]
//   LeakyReLU  f = x > 0 ? x : alpha x           f' = x > 0 ? 1 : alpha
//   Sigmoid    f = 1 / (1 + exp(-x))             f' = y (1 - y)
//   Tanh       f = tanh(x)                       f' = 1 - y^2
// (At the kinks, f' is what these expressions give, as in PyTorch.) Saved for backward: x and y,
// so that each f' reads whichever is cheaper.
struct ActivationBackward : Node {
  Activation act;
  float alpha = 0.0f;
  Tensor x, y;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty(x.shape(), x.device());
    backend_of(x).activation_backward(act, alpha, x.data(), y.data(), gy.data(), gx.data(),
                                      x.numel());
    return {gx};
  }
  void release_saved() override { x = y = Tensor(); }
  const char* name() const override { return "activation"; }
};

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  FER_CHECK(a.shape() == b.shape(), op, ": shapes ", a.shape_str(), " and ", b.shape_str(),
            " differ (elementwise ops need equal shapes)");
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape("add", a, b);
  const Device dev = common_device("add", {&a, &b});
  Tensor y = Tensor::empty(a.shape(), dev);
  backend(dev).add(a.data(), b.data(), y.data(), y.numel());
  if (needs_grad({&a, &b})) record(y, std::make_shared<AddBackward>(), {a, b});
  if (OpTrace* trace = active_trace()) trace->record("add", {a, b}, y);
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape("mul", a, b);
  const Device dev = common_device("mul", {&a, &b});
  Tensor y = Tensor::empty(a.shape(), dev);
  backend(dev).mul(a.data(), b.data(), y.data(), y.numel());
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<MulBackward>();
    node->a = a.detach();
    node->b = b.detach();
    record(y, node, {a, b});
  }
  if (OpTrace* trace = active_trace()) trace->record("mul", {a, b}, y);
  return y;
}

Tensor scale(const Tensor& x, float alpha) {
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend_of(x).scale(x.data(), alpha, y.data(), y.numel());
  if (needs_grad({&x})) {
    auto node = std::make_shared<ScaleBackward>();
    node->alpha = alpha;
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace()) trace->record("scale", {x}, y, {{"alpha", alpha}});
  return y;
}

Tensor sum(const Tensor& x) {
  Tensor y = Tensor::scalar(static_cast<float>(backend_of(x).sum(x.data(), x.numel())), x.device());
  if (needs_grad({&x})) {
    auto node = std::make_shared<SumBackward>();
    node->shape = x.shape();
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace()) trace->record("sum", {x}, y);
  return y;
}

Tensor mean(const Tensor& x) {
  FER_CHECK(x.numel() > 0, "mean of an empty tensor ", x.shape_str());
  return scale(sum(x), 1.0f / static_cast<float>(x.numel()));
}

Tensor activation(const Tensor& x, Activation act, float alpha) {
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend_of(x).activation_forward(act, alpha, x.data(), y.data(), x.numel());
  if (needs_grad({&x})) {
    auto node = std::make_shared<ActivationBackward>();
    node->act = act;
    node->alpha = alpha;
    node->x = x.detach();
    node->y = y.detach();
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace())
    trace->record("activation", {x}, y, {{"kind", static_cast<int>(act)}, {"alpha", alpha}});
  return y;
}

}  // namespace fer
