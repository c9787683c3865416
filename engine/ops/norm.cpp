// batch_norm and dropout: forward and backward side by side.
#include "engine/ops/op_util.h"
#include "engine/random.h"

namespace fer {
using namespace ops_detail;

namespace {
// ---- batch_norm --------------------------------------------------------------------------------
// x [N, C, H, W], or [N, C] with H*W = 1; gamma, beta, running_mean, running_var [C]. Every
// channel c is normalised over its M = N*H*W values.
//
// Training: with the statistics of the batch, which also update the running ones (PyTorch's
// momentum m):
//   mean = sum(x) / M,   var = sum((x - mean)^2) / M,   invstd = 1 / sqrt(var + eps)
//   xhat = (x - mean) invstd,   y = gamma xhat + beta
//   running_mean = (1 - m) running_mean + m mean
//   running_var  = (1 - m) running_var  + m var M / (M - 1)      (unbiased, as PyTorch)
// Backward: mean and var depend on every x of the channel, which gives dx two more terms than
// an affine map would have:
//   dbeta = sum(dy),   dgamma = sum(dy xhat)
//   dx    = gamma invstd / M (M dy - dbeta - xhat dgamma)
// Saved for backward: x, gamma, and the batch mean and invstd (xhat is recomputed from x).
//
// Evaluation: the running statistics make it a fixed affine map per channel:
//   y  = a x + b,   a = gamma / sqrt(running_var + eps),   b = beta - running_mean a
//   dx = a dy,   dgamma = sum(dy (x - running_mean)) / sqrt(running_var + eps),   dbeta = sum(dy)
// Saved for backward: x, gamma, and copies of the running statistics and eps (a training step may
// update the buffers in place before this backward runs; the gradient is that of the values used).
//
// batch_norm_relu: y = max(z, 0) for the z above, and the backward above receives dy zeroed where
// z <= 0 (relu's gradient); batch_norm_relu6: y = min(max(z, 0), 6), dy zeroed where z <= 0 or
// z >= 6. The kernels recompute z from x and the saved values, so beta is saved too, and the
// tensor z itself never exists: one pass over the activations fewer each way.
const char* op_name(BnActivation act) {
  switch (act) {
    case BnActivation::ReLU: return "batch_norm_relu";
    case BnActivation::ReLU6: return "batch_norm_relu6";
    case BnActivation::None: break;
  }
  return "batch_norm";
}

struct BatchNormBackward : Node {
  int64_t N, C, HW;
  bool training;
  BnActivation act;
  float eps = 0.0f;
  Tensor x, gamma, beta;
  Tensor mean, invstd;              // training: the batch statistics
  Tensor running_mean, running_var;  // evaluation: the running statistics
  std::vector<Tensor> backward(const Tensor& gy) override {
    auto wanted = [&](int input, const Shape& shape) {
      return inputs[input].requires_grad() ? Tensor::empty(shape, gy.device()) : Tensor();
    };
    Tensor gx = wanted(0, x.shape()), gg = wanted(1, {C}), gb = wanted(2, {C});
    auto out = [](const Tensor& t) { return t.defined() ? t.data() : nullptr; };
    Backend& be = backend_of(gy);
    if (training)
      be.batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), out(beta), mean.data(),
                            invstd.data(), out(gx), out(gg), out(gb), act);
    else
      be.batchnorm_backward_eval(N, C, HW, x.data(), gy.data(), gamma.data(), out(beta),
                                 running_mean.data(), running_var.data(), eps, out(gx), out(gg),
                                 out(gb), act);
    return {gx, gg, gb};
  }
  void release_saved() override {
    x = gamma = beta = mean = invstd = running_mean = running_var = Tensor();
  }
  const char* name() const override { return op_name(act); }
};

// ---- dropout -----------------------------------------------------------------------------------
// Inverted dropout, in training only: y = x * mask,  mask = (u >= p) / (1 - p) with u uniform in
// [0, 1) (Backend::dropout_mask), so that E[y] = x;  dx = dy * mask. Saved for backward: the mask.
struct DropoutBackward : Node {
  Tensor mask;
  std::vector<Tensor> backward(const Tensor& gy) override { return {mul(gy, mask)}; }
  void release_saved() override { mask = Tensor(); }
  const char* name() const override { return "dropout"; }
};
}  // namespace

namespace {
Tensor batch_norm_op(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                     Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                     float eps, BnActivation act) {
  const char* op = op_name(act);
  FER_CHECK(x.dim() == 4 || x.dim() == 2, op, ": expected [N,C,H,W] or [N,C], got ",
            x.shape_str());
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    FER_CHECK(t->defined() && t->shape() == Shape{C}, op, ": input ", x.shape_str(),
              " has ", C, " channels but a parameter/buffer has shape ",
              t->defined() ? t->shape_str() : "undefined");
  FER_CHECK(!training || N * HW > 1, op, ": training needs more than one value per channel, "
            "got input ", x.shape_str());
  const Device dev = common_device(op, {&x, &gamma, &beta, &running_mean, &running_var});
  Backend& be = backend(dev);
  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean, invstd;
  if (training) {
    mean = Tensor::empty({C}, dev);
    invstd = Tensor::empty({C}, dev);
    be.batchnorm_forward_train(N, C, HW, x.data(), gamma.data(), beta.data(), eps, momentum,
                               running_mean.data(), running_var.data(), y.data(), mean.data(),
                               invstd.data(), act);
  } else {
    be.batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), running_mean.data(),
                              running_var.data(), eps, y.data(), act);
  }
  if (needs_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<BatchNormBackward>();
    node->N = N;
    node->C = C;
    node->HW = HW;
    node->training = training;
    node->act = act;
    node->x = x.detach();
    node->gamma = gamma.detach();
    if (act != BnActivation::None) node->beta = beta.detach();
    if (training) {
      node->mean = mean;
      node->invstd = invstd;
    } else {
      node->eps = eps;
      node->running_mean = running_mean.clone();
      node->running_var = running_var.clone();
    }
    record(y, node, {x, gamma, beta});
  }
  if (OpTrace* trace = active_trace())
    trace->record("batch_norm", {x, gamma, beta, running_mean, running_var}, y,
                  {{"training", training ? 1 : 0}, {"eps", eps}, {"activation", static_cast<int>(act)}});
  return y;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  return batch_norm_op(x, gamma, beta, running_mean, running_var, training, momentum, eps, BnActivation::None);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                       float eps) {
  return batch_norm_op(x, gamma, beta, running_mean, running_var, training, momentum, eps, BnActivation::ReLU);
}

Tensor batch_norm_relu6(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                        float eps) {
  return batch_norm_op(x, gamma, beta, running_mean, running_var, training, momentum, eps, BnActivation::ReLU6);
}

Tensor dropout(const Tensor& x, float p, bool training) {
  FER_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0f) return x;
  Tensor mask = Tensor::empty(x.shape(), x.device());
  backend_of(x).dropout_mask(mask.data(), mask.numel(), p, default_generator().next_u64(), 0);
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend_of(x).mul(x.data(), mask.data(), y.data(), x.numel());
  if (needs_grad({&x})) {
    auto node = std::make_shared<DropoutBackward>();
    node->mask = mask;
    record(y, node, {x});
  }
  if (OpTrace* trace = active_trace()) trace->record("dropout", {x}, y, {{"training", 1}, {"p", p}});
  return y;
}

}  // namespace fer
