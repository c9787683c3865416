// The layers users compose into models, each a thin Module over one op of engine/ops.h.
// Constructor arguments and parameter names follow torch.nn, so code and checkpoints translate.
#pragma once
#include <initializer_list>
#include <memory>
#include <vector>

#include "engine/ops.h"
#include "layers/module.h"

namespace fer {

class BatchNorm;

struct Conv2dConfig {
  int64_t in_channels, out_channels, kernel = 3, stride = 1, padding = 0, groups = 1,
          dilation = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dConfig& c);
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         bool bias = true, int64_t groups = 1)
      : Conv2d(Conv2dConfig{in, out, kernel, stride, padding, groups, 1, bias}) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Conv2dConfig& config() const { return config_; }
  Tensor weight, bias;  // [out, in/groups, k, k], [out] (undefined when bias=false)
  // The bytes of the packed forms of the weights this layer keeps (after freeze_for_inference()).
  size_t packed_weight_bytes() const;

  // Conv-BN folding, as torch.jit.freeze does it: a frozen convolution followed by a BatchNorm
  // in eval mode computes bn(conv(x)) as one convolution whose weights and bias absorb the
  // batchnorm's affine map, w' = w * s, b' = beta + (b - mean) * s with s = gamma / sqrt(var +
  // eps) per output channel, and applies the ReLU or ReLU6 after it (act) in the same op.
  // Sequential sets it up when the model is frozen (a Conv2d, a BatchNorm of its channels, and
  // optionally a ReLU/ReLU6 in a row); the folded weights are computed at the first call and
  // dropped with the packed forms.
  void fold_batchnorm(std::shared_ptr<BatchNorm> bn, BnActivation act);
  // How many of the layers after this one its forward computes now: 0, 1 (the batchnorm) or 2
  // (and the activation). Never while the batchnorm trains, while a ForwardHook must see each
  // module or while an op trace records the graph.
  int absorbed_layers() const;

 protected:
  void start_packing_weights() override { packed_ = std::make_shared<PackedWeights>(); }
  void drop_packed_weights() override;

 private:
  struct Folding;
  Conv2dConfig config_;
  std::shared_ptr<PackedWeights> packed_;  // null until frozen for inference
  std::shared_ptr<Folding> folding_;       // null unless a batchnorm is folded in
};

// BatchNorm over channels of [N,C,H,W] (BatchNorm2d) or features of [N,C] (BatchNorm1d).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  Tensor forward(const Tensor& x) override;
  // relu((*this)(x)), as one op (batch_norm_relu): what Sequential runs for a BatchNorm followed
  // by a ReLU, and blocks for their relu(bn(...)). With a ForwardHook in scope the two run apart,
  // so that the hook sees this module's own output.
  Tensor relu_of(const Tensor& x) { return activated(x, BnActivation::ReLU); }
  // The same for any activation the batchnorm kernels fuse (ReLU6: batch_norm_relu6).
  Tensor activated(const Tensor& x, BnActivation act);
  std::string describe() const override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  float eps, momentum;

 private:
  void count_batch();  // num_batches_tracked += 1 in training
};
using BatchNorm2d = BatchNorm;
using BatchNorm1d = BatchNorm;

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Tensor weight, bias;  // [out, in], [out]
};

class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f) : p(p) {}
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training()); }
  std::string describe() const override;
  float p;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0, bool ceil_mode = false);
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options); }
  std::string describe() const override;
  Pool2dOptions options;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0, bool ceil_mode = false);
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options); }
  std::string describe() const override;
  Pool2dOptions options;
};

// [N,C,H,W] -> [N,C] (Keras's GlobalAveragePooling2D; torch's AdaptiveAvgPool2d(1) + flatten).
class GlobalAvgPool : public Module {
 public:
  Tensor forward(const Tensor& x) override { return global_avg_pool(x); }
  std::string describe() const override { return "GlobalAvgPool()"; }
};

class Act : public Module {
 public:
  explicit Act(Activation kind, float alpha = 0.0f) : kind(kind), alpha(alpha) {}
  Tensor forward(const Tensor& x) override { return activation(x, kind, alpha); }
  std::string describe() const override;
  Activation kind;
  float alpha;
};
inline std::shared_ptr<Act> ReLU() { return std::make_shared<Act>(Activation::ReLU); }
inline std::shared_ptr<Act> ReLU6() { return std::make_shared<Act>(Activation::ReLU6); }
inline std::shared_ptr<Act> LeakyReLU(float slope = 0.01f) {
  return std::make_shared<Act>(Activation::LeakyReLU, slope);
}
inline std::shared_ptr<Act> Sigmoid() { return std::make_shared<Act>(Activation::Sigmoid); }
inline std::shared_ptr<Act> Tanh() { return std::make_shared<Act>(Activation::Tanh); }

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x.flatten(1); }
  std::string describe() const override { return "Flatten()"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string describe() const override { return "Identity()"; }
};

// Runs its children in order; children are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential& add(std::shared_ptr<Module> m);  // named by its index: "0", "1", ...
  // Named explicitly, for trees that mirror another framework's names ("layer1", "conv_dw_1").
  Sequential& add(const std::string& name, std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Sequential()"; }
  size_t size() const { return layers_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return layers_.at(i); }

 protected:
  // Frozen: each Conv2d followed by a BatchNorm of its channels (and a ReLU or ReLU6) folds them.
  void start_packing_weights() override;

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace fer
