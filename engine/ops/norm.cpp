// batch_norm and dropout: forward and backward side by side (math in kernels/cpu/batchnorm.cpp).
#include <cmath>

#include "engine/ops/op_util.h"
#include "engine/random.h"

namespace fer {
using namespace ops_detail;

namespace {
// Training mode: normalised with the batch statistics, which depend on every x, so dx carries
// the mean and variance terms. Eval mode: a fixed per-channel affine map, so dx = gamma*invstd*dy
// with invstd from the running variance; the same backward kernel gives dgamma and dbeta when it
// is handed the running statistics as "saved" ones.
struct BatchNormBackward : Node {
  int64_t N, C, HW;
  bool training;
  Tensor x, gamma, mean, invstd;  // mean/invstd: batch statistics, or running ones in eval mode
  std::vector<Tensor> backward(const Tensor& gy) override {
    Backend& be = backend_of(gy);
    const bool want_x = inputs[0].requires_grad();
    const bool want_params = inputs[1].requires_grad() || inputs[2].requires_grad();
    Tensor gx, gg, gb;
    if (want_params) {
      gg = Tensor::empty({C}, gy.device());
      gb = Tensor::empty({C}, gy.device());
    }
    if (want_x) gx = Tensor::empty(x.shape(), x.device());
    if (training) {
      be.batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), mean.data(),
                            invstd.data(), want_x ? gx.data() : nullptr,
                            want_params ? gg.data() : nullptr, want_params ? gb.data() : nullptr);
    } else {
      if (want_params)
        be.batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), mean.data(),
                              invstd.data(), nullptr, gg.data(), gb.data());
      if (want_x) {
        // dx = gamma * invstd * dy: the eval forward with beta = 0, mean = 0, var = 1/invstd^2 - eps
        // would be roundabout; a per-channel scale through the eval kernel with var chosen so that
        // 1/sqrt(var + 0) = invstd does exactly that.
        std::vector<float> inv = invstd.to_vector(), var(C);
        for (int64_t c = 0; c < C; ++c) var[c] = 1.0f / (inv[c] * inv[c]);
        Tensor var_t = Tensor::from_vector({C}, var, gy.device());
        Tensor zeros = Tensor::zeros({C}, gy.device());
        be.batchnorm_forward_eval(N, C, HW, gy.data(), gamma.data(), zeros.data(), zeros.data(),
                                  var_t.data(), 0.0f, gx.data());
      }
    }
    return {gx, inputs[1].requires_grad() ? gg : Tensor(), inputs[2].requires_grad() ? gb : Tensor()};
  }
  void release_saved() override { x = gamma = mean = invstd = Tensor(); }
  const char* name() const override { return "batch_norm"; }
};

struct DropoutBackward : Node {
  Tensor mask;
  std::vector<Tensor> backward(const Tensor& gy) override { return {mul(gy, mask)}; }
  void release_saved() override { mask = Tensor(); }
  const char* name() const override { return "dropout"; }
};
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  FER_CHECK(x.dim() == 4 || x.dim() == 2, "batch_norm: expected [N,C,H,W] or [N,C], got ",
            x.shape_str());
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    FER_CHECK(t->defined() && t->shape() == Shape{C}, "batch_norm: input ", x.shape_str(),
              " has ", C, " channels but a parameter/buffer has shape ",
              t->defined() ? t->shape_str() : "undefined");
  FER_CHECK(!training || N * HW > 1, "batch_norm: training needs more than one value per channel, "
                                     "got input ", x.shape_str());
  const Device dev = common_device("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  Backend& be = backend(dev);
  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean, invstd;
  if (training) {
    mean = Tensor::empty({C}, dev);
    invstd = Tensor::empty({C}, dev);
    be.batchnorm_forward_train(N, C, HW, x.data(), gamma.data(), beta.data(), eps, momentum,
                               running_mean.data(), running_var.data(), y.data(), mean.data(),
                               invstd.data());
  } else {
    be.batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), running_mean.data(),
                              running_var.data(), eps, y.data());
  }
  if (needs_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<BatchNormBackward>();
    node->N = N;
    node->C = C;
    node->HW = HW;
    node->training = training;
    node->x = x.detach();
    node->gamma = gamma.detach();
    if (training) {
      node->mean = mean;
      node->invstd = invstd;
    } else {
      std::vector<float> rv = running_var.to_vector();
      for (float& v : rv) v = 1.0f / std::sqrt(v + eps);
      node->mean = running_mean.clone();
      node->invstd = Tensor::from_vector({C}, rv, dev);
    }
    record(y, node, {x, gamma, beta});
  }
  return y;
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
  return y;
}

}  // namespace fer
