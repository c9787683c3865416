// matmul and linear: forward and backward side by side.
//
// matmul: C[M,N] = A[M,K] B[K,N];   dA = dC B^T,  dB = A^T dC
// linear: y[N,out] = x[N,in] W[out,in]^T + b[out]
//         dx = dy W,  dW = dy^T x,  db = sum over rows of dy
#include "engine/ops/op_util.h"

namespace fer {
using namespace ops_detail;

namespace {
struct MatmulBackward : Node {
  Tensor a, b;
  std::vector<Tensor> backward(const Tensor& gc) override {
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    Backend& be = backend_of(gc);
    Tensor ga, gb;
    if (inputs[0].requires_grad()) {
      ga = Tensor::empty(a.shape(), a.device());
      be.gemm(false, true, M, K, N, 1.0f, gc.data(), b.data(), 0.0f, ga.data());
    }
    if (inputs[1].requires_grad()) {
      gb = Tensor::empty(b.shape(), b.device());
      be.gemm(true, false, K, N, M, 1.0f, a.data(), gc.data(), 0.0f, gb.data());
    }
    return {ga, gb};
  }
  void release_saved() override { a = b = Tensor(); }
  const char* name() const override { return "matmul"; }
};

struct LinearBackward : Node {
  Tensor x, w;
  bool has_bias = false;
  std::vector<Tensor> backward(const Tensor& gy) override {
    const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
    Backend& be = backend_of(gy);
    Tensor gx, gw, gb;
    if (inputs[0].requires_grad()) {
      gx = Tensor::empty(x.shape(), x.device());
      be.gemm(false, false, N, in, out, 1.0f, gy.data(), w.data(), 0.0f, gx.data());
    }
    if (inputs[1].requires_grad()) {
      gw = Tensor::empty(w.shape(), w.device());
      be.gemm(true, false, out, in, N, 1.0f, gy.data(), x.data(), 0.0f, gw.data());
    }
    if (has_bias && inputs[2].requires_grad()) {
      gb = Tensor::empty({out}, gy.device());
      be.sum_rows(gy.data(), gb.data(), N, out, false);
    }
    if (has_bias) return {gx, gw, gb};
    return {gx, gw};
  }
  void release_saved() override { x = w = Tensor(); }
  const char* name() const override { return "linear"; }
};
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  FER_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: cannot multiply ",
            a.shape_str(), " by ", b.shape_str());
  const Device dev = common_device("matmul", {&a, &b});
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor c = Tensor::empty({M, N}, dev);
  backend(dev).gemm(false, false, M, N, K, 1.0f, a.data(), b.data(), 0.0f, c.data());
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<MatmulBackward>();
    node->a = a.detach();
    node->b = b.detach();
    record(c, node, {a, b});
  }
  if (OpTrace* trace = active_trace()) trace->record("matmul", {a, b}, c);
  return c;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  FER_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", weight.shape_str());
  FER_CHECK(x.dim() == 2 && x.size(1) == weight.size(1), "linear: input ", x.shape_str(),
            " does not match weight ", weight.shape_str(), " (expected [N, ", weight.size(1),
            "])");
  FER_CHECK(!bias.defined() || bias.shape() == Shape{weight.size(0)}, "linear: bias ",
            bias.defined() ? bias.shape_str() : "", " does not match weight ",
            weight.shape_str());
  const Device dev = common_device("linear", {&x, &weight, &bias});
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  Tensor y = Tensor::empty({N, out}, dev);
  Backend& be = backend(dev);
  be.gemm(false, true, N, out, in, 1.0f, x.data(), weight.data(), 0.0f, y.data());
  if (bias.defined()) be.add_row_bias(y.data(), bias.data(), N, out);
  if (needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<LinearBackward>();
    node->x = x.detach();
    node->w = weight.detach();
    node->has_bias = bias.defined();
    std::vector<Tensor> inputs{x, weight};
    if (bias.defined()) inputs.push_back(bias);
    record(y, node, inputs);
  }
  if (OpTrace* trace = active_trace()) trace->record("linear", {x, weight, bias}, y);
  return y;
}

}  // namespace fer
