// Optimizers (SGD, Adam, AdamW) and gradient clipping, in the manner of torch.optim.
//
// Update formulas (the fused kernels are Backend::sgd_update / adam_update; g = param.grad):
//
//   SGD(lr, momentum, dampening, wd, nesterov)
//     g   = g + wd * p
//     buf = (first step) ? g : momentum * buf + (1 - dampening) * g     (only when momentum != 0)
//     d   = nesterov ? g + momentum * buf : buf                         (d = g when momentum == 0)
//     p   = p - lr * d
//
//   Adam(lr, beta1, beta2, eps, wd)            AdamW: same, but decoupled decay
//     g   = g + wd * p                          p = p * (1 - lr * wd)   instead
//     m   = beta1 * m + (1 - beta1) * g
//     v   = beta2 * v + (1 - beta2) * g^2
//     p   = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)     t = 1, 2, ...
//
//   clip_grad_norm(params, max_norm)
//     norm = sqrt(sum over params of sum(grad^2))
//     if norm > max_norm: grad *= max_norm / (norm + 1e-6)     returns norm (before clipping)
//
// Parameter groups: each group has its own lr and weight decay (transfer learning: backbone at
// lr/10, head at lr). A group whose lr or weight_decay is negative inherits the optimizer's
// default. The optimizer has a nominal lr (the constructor's lr); set_lr(x) rescales every group
// proportionally: group.lr = group.initial_lr * x / nominal_initial_lr, so the ratios between the
// groups survive a schedule (apply one with optimizer.set_lr(schedule.lr_at(step))).
//
// State: per parameter, created lazily at the parameter's first update, on the parameter's device
// (SGD with momentum: "momentum_buffer"; Adam/AdamW: "exp_avg", "exp_avg_sq"), plus a 1-based step
// count. step() skips parameters that do not require grad or have no gradient; their state and
// step count are untouched.
//
// Checkpoints: state_dict() returns the state tensors keyed "optim.<i>.<name>" where i numbers the
// parameters across all groups in order (as PyTorch does); the tensors are handles to the live
// state, so serialize (or clone) them before stepping again. metadata() returns the step counts
// ("optim.<i>.step"), the per-group lr / initial_lr / weight_decay / name and the optimizer's
// hyper-parameters as strings. load_state_dict(state, metadata) restores all of it (as PyTorch,
// hyper-parameters and group lrs come from the checkpoint) so that training resumes exactly.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace fer {

struct ParamGroup {
  std::vector<Tensor> params;
  float lr = -1.0f;            // negative: the optimizer's lr
  float weight_decay = -1.0f;  // negative: the optimizer's weight_decay
  std::string name{};
  float initial_lr = -1.0f;  // set by the optimizer (the group's lr at construction)
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that requires grad and has a gradient (under NoGradGuard).
  void step();
  // Drops every parameter's gradient (Tensor::zero_grad).
  void zero_grad();

  // The nominal learning rate; set_lr rescales every group proportionally (see above).
  float lr() const { return lr_; }
  void set_lr(float lr);

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  std::vector<Tensor> params() const;  // all groups' parameters, in checkpoint order
  virtual const char* type() const = 0;

  // ---- Checkpoints -----------------------------------------------------------------------------
  StateDict state_dict(const std::string& prefix = "optim.") const;
  Metadata metadata(const std::string& prefix = "optim.") const;
  // Throws fer::Error naming the key on a missing, mis-shaped or unparsable entry, and when the
  // checkpoint's optimizer type or parameter layout differs from this optimizer's.
  void load_state_dict(const StateDict& state, const Metadata& metadata,
                       const std::string& prefix = "optim.");

  // Step count of one parameter (0 before its first update).
  int64_t step_count(const Tensor& param) const;

 protected:
  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> tensors;
  };

  Optimizer(std::vector<ParamGroup> groups, float lr, float weight_decay);

  // Names of the state tensors of one parameter, each shaped like the parameter.
  virtual std::vector<std::string> state_names() const = 0;
  // One fused update; `s.step` has already been incremented (1 on the first update).
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                      ParamState& s) = 0;
  virtual void save_hyper(Metadata& out, const std::string& prefix) const = 0;
  virtual void load_hyper(const Metadata& in, const std::string& prefix) = 0;

 private:
  ParamState& state_for(const Tensor& param);
  void check_layout(const Metadata& in, const std::string& prefix) const;
  std::unordered_map<const TensorImpl*, ParamState> load_param_states(
      const StateDict& state, const Metadata& in, const std::string& prefix) const;

  std::vector<ParamGroup> groups_;
  float lr_, initial_lr_;
  float default_weight_decay_;
  std::unordered_map<const TensorImpl*, ParamState> state_;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, float lr, float momentum = 0.0f, float dampening = 0.0f,
      float weight_decay = 0.0f, bool nesterov = false);
  SGD(std::vector<Tensor> params, float lr, float momentum = 0.0f, float dampening = 0.0f,
      float weight_decay = 0.0f, bool nesterov = false);
  const char* type() const override { return "SGD"; }

  float momentum() const { return momentum_; }
  float dampening() const { return dampening_; }
  bool nesterov() const { return nesterov_; }

 protected:
  std::vector<std::string> state_names() const override;
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& s) override;
  void save_hyper(Metadata& out, const std::string& prefix) const override;
  void load_hyper(const Metadata& in, const std::string& prefix) override;

 private:
  void validate(float momentum, float dampening, bool nesterov) const;
  float momentum_, dampening_;
  bool nesterov_;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
       float eps = 1e-8f, float weight_decay = 0.0f);
  Adam(std::vector<Tensor> params, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
       float eps = 1e-8f, float weight_decay = 0.0f);
  const char* type() const override { return decoupled_ ? "AdamW" : "Adam"; }

  float beta1() const { return beta1_; }
  float beta2() const { return beta2_; }
  float eps() const { return eps_; }

 protected:
  Adam(std::vector<ParamGroup> groups, float lr, float beta1, float beta2, float eps,
       float weight_decay, bool decoupled);
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& s) override;
  void save_hyper(Metadata& out, const std::string& prefix) const override;
  void load_hyper(const Metadata& in, const std::string& prefix) override;

 private:
  void validate(float beta1, float beta2, float eps) const;
  float beta1_, beta2_, eps_;
  bool decoupled_;
};

// Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW.
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, float lr = 1e-3f, float beta1 = 0.9f,
        float beta2 = 0.999f, float eps = 1e-8f, float weight_decay = 1e-2f);
  AdamW(std::vector<Tensor> params, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weight_decay = 1e-2f);
};

// Clips the global L2 norm of the gradients of `params` (those with a gradient) to max_norm, in
// place, and returns the norm before clipping (torch.nn.utils.clip_grad_norm_).
float clip_grad_norm(const std::vector<Tensor>& params, float max_norm);

// ---- Metadata helpers (also used by the schedules) ---------------------------------------------
// Floats are written with enough digits to read back bit for bit.
std::string metadata_str(double value);
double metadata_double(const Metadata& in, const std::string& key);  // throws naming the key
int64_t metadata_int(const Metadata& in, const std::string& key);
const std::string& metadata_get(const Metadata& in, const std::string& key);

}  // namespace fer
