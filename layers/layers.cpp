#include "layers/layers.h"

#include <cmath>
#include <mutex>
#include <optional>
#include <sstream>

#include "engine/init.h"
#include "engine/trace.h"

namespace fer {

namespace {
template <typename... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace

// ---- Conv2d ----------------------------------------------------------------------------------
Conv2d::Conv2d(const Conv2dConfig& c) : config_(c) {
  FER_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.kernel > 0 && c.groups > 0 &&
                c.in_channels % c.groups == 0 && c.out_channels % c.groups == 0,
            "Conv2d(", c.in_channels, ", ", c.out_channels, ", kernel=", c.kernel, ", groups=",
            c.groups, "): channels must be positive and divisible by groups");
  weight = register_parameter("weight",
                              Tensor::empty({c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel}));
  init::kaiming_uniform(weight, 1.0f / std::sqrt(3.0f));  // PyTorch default: U(+-1/sqrt(fan_in))
  if (c.bias) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(init::fans(weight.shape()).in));
    bias = register_parameter("bias", Tensor::empty({c.out_channels}));
    init::uniform(bias, bound);
  }
}

struct Conv2d::Folding {
  std::shared_ptr<BatchNorm> bn;
  BnActivation act = BnActivation::None;
  std::mutex mutex;      // the first call makes the folded weights; concurrent calls wait
  Tensor weight, bias;   // the folded ones, undefined until then
  PackedWeights packed;  // the backend's forms of the folded weights (the raw ones keep packed_)
};

Tensor Conv2d::forward(const Tensor& x) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = config_.stride;
  o.pad_h = o.pad_w = config_.padding;
  o.dil_h = o.dil_w = config_.dilation;
  o.groups = config_.groups;
  if (absorbed_layers() == 0) {
    o.packed = packed_.get();
    return conv2d(x, weight, bias, o);
  }
  Folding& f = *folding_;
  {
    std::lock_guard<std::mutex> lock(f.mutex);
    if (!f.weight.defined()) {
      // On the host, as PyTorch's fuse_conv_bn_weights computes it (scale = gamma / sqrt(var + eps)).
      const BatchNorm& bn = *f.bn;
      const int64_t K = config_.out_channels, per_channel = weight.numel() / K;
      std::vector<float> w = weight.to_vector(), b(static_cast<size_t>(K), 0.0f);
      if (bias.defined()) b = bias.to_vector();
      const std::vector<float> gamma = bn.weight.to_vector(), beta = bn.bias.to_vector(),
                               mean = bn.running_mean.to_vector(), var = bn.running_var.to_vector();
      for (int64_t k = 0; k < K; ++k) {
        const float scale = gamma[k] / std::sqrt(var[k] + bn.eps);
        for (int64_t i = 0; i < per_channel; ++i) w[k * per_channel + i] *= scale;
        b[k] = (b[k] - mean[k]) * scale + beta[k];
      }
      f.weight = Tensor::from_vector(weight.shape(), w, weight.device());
      f.bias = Tensor::from_vector({K}, b, weight.device());
    }
  }
  o.packed = &f.packed;
  o.activation = f.act;
  return conv2d(x, f.weight, f.bias, o);
}

void Conv2d::fold_batchnorm(std::shared_ptr<BatchNorm> bn, BnActivation act) {
  FER_CHECK(bn && bn->weight.numel() == config_.out_channels, describe(),
            ": cannot fold a batchnorm of ", bn ? bn->weight.numel() : 0, " channels");
  folding_ = std::make_shared<Folding>();
  folding_->bn = std::move(bn);
  folding_->act = act;
}

int Conv2d::absorbed_layers() const {
  if (!folding_ || !packed_ || folding_->bn->is_training() || ForwardHook::active() || active_trace())
    return 0;
  return folding_->act == BnActivation::None ? 1 : 2;
}

size_t Conv2d::packed_weight_bytes() const {
  return (packed_ ? packed_->bytes() : 0) + (folding_ ? folding_->packed.bytes() : 0);
}

void Conv2d::drop_packed_weights() {
  if (packed_) packed_->clear();
  if (folding_) {
    std::lock_guard<std::mutex> lock(folding_->mutex);
    folding_->packed.clear();
    folding_->weight = folding_->bias = Tensor();
  }
}

std::string Conv2d::describe() const {
  return str("Conv2d(", config_.in_channels, ", ", config_.out_channels, ", kernel=",
             config_.kernel, ", stride=", config_.stride, ", padding=", config_.padding,
             config_.groups > 1 ? str(", groups=", config_.groups) : "",
             config_.bias ? "" : ", bias=false", ")");
}

// ---- BatchNorm -------------------------------------------------------------------------------
BatchNorm::BatchNorm(int64_t channels, float eps, float momentum) : eps(eps), momentum(momentum) {
  weight = register_parameter("weight", Tensor::ones({channels}));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}));
}

void BatchNorm::count_batch() {
  if (!is_training()) return;
  // += 1 on the buffer's device: reading it back would stall a GPU's queue (and could not be
  // recorded in a CUDA graph).
  const Device dev = num_batches_tracked.device();
  const Tensor one = Tensor::ones({}, dev);
  backend(dev).axpby(1.0f, one.data(), 1.0f, num_batches_tracked.data(), 1);
}

Tensor BatchNorm::forward(const Tensor& x) {
  count_batch();
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

Tensor BatchNorm::activated(const Tensor& x, BnActivation act) {
  if (act == BnActivation::None) return (*this)(x);
  if (ForwardHook::active()) return act == BnActivation::ReLU ? relu((*this)(x)) : relu6((*this)(x));
  std::optional<OpTrace::Scope> scope;  // as operator() marks it for forward()
  if (OpTrace* trace = active_trace()) scope.emplace(*trace, this);
  count_batch();
  return (act == BnActivation::ReLU ? batch_norm_relu : batch_norm_relu6)(
      x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

std::string BatchNorm::describe() const {
  return str("BatchNorm(", weight.numel(), ", eps=", eps, ", momentum=", momentum, ")");
}

// ---- Linear ----------------------------------------------------------------------------------
Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias) {
  FER_CHECK(in_features > 0 && out_features > 0, "Linear(", in_features, ", ", out_features,
            "): sizes must be positive");
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  init::kaiming_uniform(weight, 1.0f / std::sqrt(3.0f));
  if (has_bias) {
    bias = register_parameter("bias", Tensor::empty({out_features}));
    init::uniform(bias, 1.0f / std::sqrt(static_cast<float>(in_features)));
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::describe() const {
  return str("Linear(", weight.size(1), ", ", weight.size(0), bias.defined() ? "" : ", bias=false",
             ")");
}

// ---- Pooling, dropout, activations -----------------------------------------------------------
namespace {
Pool2dOptions pool_options(int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode) {
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = kernel;
  o.stride_h = o.stride_w = stride > 0 ? stride : kernel;
  o.pad_h = o.pad_w = padding;
  o.ceil_mode = ceil_mode;
  return o;
}
}  // namespace

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode)
    : options(pool_options(kernel, stride, padding, ceil_mode)) {}
std::string MaxPool2d::describe() const {
  return str("MaxPool2d(kernel=", options.kernel_h, ", stride=", options.stride_h, ")");
}

AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode)
    : options(pool_options(kernel, stride, padding, ceil_mode)) {}
std::string AvgPool2d::describe() const {
  return str("AvgPool2d(kernel=", options.kernel_h, ", stride=", options.stride_h, ")");
}

std::string Dropout::describe() const { return str("Dropout(p=", p, ")"); }

std::string Act::describe() const {
  switch (kind) {
    case Activation::ReLU: return "ReLU()";
    case Activation::ReLU6: return "ReLU6()";
    case Activation::LeakyReLU: return str("LeakyReLU(", alpha, ")");
    case Activation::Sigmoid: return "Sigmoid()";
    case Activation::Tanh: return "Tanh()";
  }
  return "Activation()";
}

// ---- Sequential ------------------------------------------------------------------------------
Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) add(m);
}

Sequential& Sequential::add(std::shared_ptr<Module> m) {
  return add(std::to_string(layers_.size()), std::move(m));
}

Sequential& Sequential::add(const std::string& name, std::shared_ptr<Module> m) {
  for (const auto& [used, child] : named_children())
    FER_CHECK(used != name, "Sequential: two children named '", name, "'");
  register_module(name, m);
  layers_.push_back(std::move(m));
  return *this;
}

namespace {
// The activation a batchnorm (or a convolution that folded one) runs in its own op when layer i
// of a Sequential is a ReLU or a ReLU6; None for any other layer, or past the end.
BnActivation fusable_activation(const std::vector<std::shared_ptr<Module>>& layers, size_t i) {
  const auto* act = i < layers.size() ? dynamic_cast<const Act*>(layers[i].get()) : nullptr;
  if (!act) return BnActivation::None;
  if (act->kind == Activation::ReLU) return BnActivation::ReLU;
  return act->kind == Activation::ReLU6 ? BnActivation::ReLU6 : BnActivation::None;
}
}  // namespace

void Sequential::start_packing_weights() {
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    auto conv = std::dynamic_pointer_cast<Conv2d>(layers_[i]);
    auto bn = std::dynamic_pointer_cast<BatchNorm>(layers_[i + 1]);
    if (conv && bn && bn->weight.numel() == conv->config().out_channels)
      conv->fold_batchnorm(bn, fusable_activation(layers_, i + 2));
  }
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    // A frozen convolution that folded the batchnorm after it (and its activation) runs them.
    if (const auto* conv = dynamic_cast<Conv2d*>(layers_[i].get())) {
      const int absorbed = conv->absorbed_layers();
      if (absorbed > 0) {
        h = (*layers_[i])(h);
        i += static_cast<size_t>(absorbed);
        continue;
      }
    }
    // A BatchNorm followed by a ReLU or a ReLU6 runs as one op (BatchNorm::activated), unless a
    // hook must see both modules.
    auto* bn = dynamic_cast<BatchNorm*>(layers_[i].get());
    const BnActivation act = bn ? fusable_activation(layers_, i + 1) : BnActivation::None;
    if (act != BnActivation::None && !ForwardHook::active()) {
      h = bn->activated(h, act);
      ++i;
      continue;
    }
    h = (*layers_[i])(h);
  }
  return h;
}

}  // namespace fer
