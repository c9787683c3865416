#include "engine/optim.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "engine/autograd.h"

namespace fer {

// ---- Metadata helpers --------------------------------------------------------------------------

std::string metadata_str(double value) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  return buf;
}

const std::string& metadata_get(const Metadata& in, const std::string& key) {
  auto it = in.find(key);
  FER_CHECK(it != in.end(), "checkpoint metadata: missing key '", key, "'");
  return it->second;
}

double metadata_double(const Metadata& in, const std::string& key) {
  const std::string& s = metadata_get(in, key);
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  FER_CHECK(!s.empty() && *end == '\0' && errno == 0, "checkpoint metadata: '", key,
            "' is not a number: '", s, "'");
  return v;
}

int64_t metadata_int(const Metadata& in, const std::string& key) {
  const std::string& s = metadata_get(in, key);
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  FER_CHECK(!s.empty() && *end == '\0' && errno == 0, "checkpoint metadata: '", key,
            "' is not an integer: '", s, "'");
  return static_cast<int64_t>(v);
}

namespace {

float metadata_float(const Metadata& in, const std::string& key) {
  return static_cast<float>(metadata_double(in, key));
}

std::vector<ParamGroup> single_group(std::vector<Tensor> params) {
  return {ParamGroup{std::move(params)}};
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, float lr, float weight_decay)
    : groups_(std::move(groups)), lr_(lr), initial_lr_(lr), default_weight_decay_(weight_decay) {
  FER_CHECK(lr >= 0.0f, "optimizer: invalid learning rate ", lr);
  FER_CHECK(weight_decay >= 0.0f, "optimizer: invalid weight_decay ", weight_decay);
  std::set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (g.lr < 0.0f) g.lr = lr;
    if (g.weight_decay < 0.0f) g.weight_decay = weight_decay;
    g.initial_lr = g.lr;
    for (const Tensor& p : g.params) {
      FER_CHECK(p.defined(), "optimizer: group ", gi, " ('", g.name, "') holds an undefined tensor");
      FER_CHECK(seen.insert(p.impl_ptr().get()).second, "optimizer: a parameter of shape ",
                p.shape_str(), " appears more than once (group ", gi, " '", g.name, "')");
    }
  }
}

std::vector<Tensor> Optimizer::params() const {
  std::vector<Tensor> out;
  for (const ParamGroup& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

void Optimizer::set_lr(float lr) {
  FER_CHECK(lr >= 0.0f, "set_lr: invalid learning rate ", lr);
  lr_ = lr;
  for (ParamGroup& g : groups_) {
    // A group's lr keeps its ratio to the nominal lr (ratio 1 when the nominal lr started at 0).
    g.lr = initial_lr_ > 0.0f ? g.initial_lr * (lr / initial_lr_) : lr;
  }
}

void Optimizer::zero_grad() {
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) p.zero_grad();
}

Optimizer::ParamState& Optimizer::state_for(const Tensor& param) {
  ParamState& s = state_[param.impl_ptr().get()];
  for (const std::string& name : state_names()) {
    auto it = s.tensors.find(name);
    if (it == s.tensors.end()) {
      s.tensors[name] = Tensor::zeros(param.shape(), param.device());
    } else if (it->second.device() != param.device()) {
      it->second.move_to_(param.device());  // the model moved (Module::to) after a step
    }
  }
  return s;
}

int64_t Optimizer::step_count(const Tensor& param) const {
  auto it = state_.find(param.impl_ptr().get());
  return it == state_.end() ? 0 : it->second.step;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (const ParamGroup& group : groups_) {
    for (const Tensor& p : group.params) {
      if (!p.requires_grad()) continue;
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      FER_CHECK(grad.numel() == p.numel(), type(), ".step: gradient of shape ", grad.shape_str(),
                " for a parameter of shape ", p.shape_str());
      FER_CHECK(grad.device() == p.device(), type(), ".step: gradient on ",
                device_name(grad.device()), " for a parameter on ", device_name(p.device()));
      ParamState& s = state_for(p);
      ++s.step;
      update(group, p, grad, s);
    }
  }
}

// ---- Optimizer checkpoints ---------------------------------------------------------------------

StateDict Optimizer::state_dict(const std::string& prefix) const {
  StateDict out;
  const std::vector<Tensor> ps = params();
  for (size_t i = 0; i < ps.size(); ++i) {
    auto it = state_.find(ps[i].impl_ptr().get());
    if (it == state_.end()) continue;
    for (const auto& [name, t] : it->second.tensors)
      out[prefix + std::to_string(i) + "." + name] = t;
  }
  return out;
}

Metadata Optimizer::metadata(const std::string& prefix) const {
  Metadata out;
  out[prefix + "type"] = type();
  out[prefix + "lr"] = metadata_str(lr_);
  out[prefix + "initial_lr"] = metadata_str(initial_lr_);
  out[prefix + "weight_decay"] = metadata_str(default_weight_decay_);
  out[prefix + "num_groups"] = std::to_string(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const std::string k = prefix + "group." + std::to_string(gi) + ".";
    out[k + "name"] = g.name;
    out[k + "num_params"] = std::to_string(g.params.size());
    out[k + "lr"] = metadata_str(g.lr);
    out[k + "initial_lr"] = metadata_str(g.initial_lr);
    out[k + "weight_decay"] = metadata_str(g.weight_decay);
  }
  const std::vector<Tensor> ps = params();
  out[prefix + "num_params"] = std::to_string(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    auto it = state_.find(ps[i].impl_ptr().get());
    if (it != state_.end()) out[prefix + std::to_string(i) + ".step"] = std::to_string(it->second.step);
  }
  save_hyper(out, prefix);
  return out;
}

void Optimizer::check_layout(const Metadata& in, const std::string& prefix) const {
  const std::string& saved_type = metadata_get(in, prefix + "type");
  FER_CHECK(saved_type == type(), "load_state_dict: the checkpoint holds a ", saved_type,
            " optimizer, this is ", type());
  const int64_t num_groups = metadata_int(in, prefix + "num_groups");
  FER_CHECK(num_groups == static_cast<int64_t>(groups_.size()), "load_state_dict: '", prefix,
            "num_groups' is ", num_groups, ", this optimizer has ", groups_.size(), " groups");
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string key = prefix + "group." + std::to_string(gi) + ".num_params";
    const int64_t n = metadata_int(in, key);
    FER_CHECK(n == static_cast<int64_t>(groups_[gi].params.size()), "load_state_dict: '", key,
              "' is ", n, ", this optimizer's group has ", groups_[gi].params.size());
  }
}

void Optimizer::load_state_dict(const StateDict& state, const Metadata& in,
                                const std::string& prefix) {
  check_layout(in, prefix);
  // Parse everything before changing anything, so a bad checkpoint leaves this optimizer intact.
  const float lr = metadata_float(in, prefix + "lr");
  const float initial_lr = metadata_float(in, prefix + "initial_lr");
  const float weight_decay = metadata_float(in, prefix + "weight_decay");
  std::vector<ParamGroup> groups = groups_;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const std::string k = prefix + "group." + std::to_string(gi) + ".";
    groups[gi].name = metadata_get(in, k + "name");
    groups[gi].lr = metadata_float(in, k + "lr");
    groups[gi].initial_lr = metadata_float(in, k + "initial_lr");
    groups[gi].weight_decay = metadata_float(in, k + "weight_decay");
  }
  // Hyper-parameters go first (SGD's state tensors depend on its momentum); they are put back if
  // the state tensors turn out to be unusable.
  Metadata previous_hyper;
  save_hyper(previous_hyper, prefix);
  load_hyper(in, prefix);
  std::unordered_map<const TensorImpl*, ParamState> loaded;
  try {
    loaded = load_param_states(state, in, prefix);
  } catch (...) {
    load_hyper(previous_hyper, prefix);
    throw;
  }
  groups_ = std::move(groups);
  lr_ = lr;
  initial_lr_ = initial_lr;
  default_weight_decay_ = weight_decay;
  state_ = std::move(loaded);
}

std::unordered_map<const TensorImpl*, Optimizer::ParamState> Optimizer::load_param_states(
    const StateDict& state, const Metadata& in, const std::string& prefix) const {
  std::unordered_map<const TensorImpl*, ParamState> loaded;
  const std::vector<Tensor> ps = params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::string k = prefix + std::to_string(i) + ".";
    if (!in.count(k + "step")) continue;  // never updated: no state
    ParamState s;
    s.step = metadata_int(in, k + "step");
    // A count the updates go on incrementing (and raise betas to): negative or near the end of
    // int64 is a damaged or crafted file, not a run.
    FER_CHECK(s.step >= 0 && s.step <= (int64_t{1} << 53), "load_state_dict: '", k + "step",
              "' must be a count in [0, 2^53], got ", s.step);
    for (const std::string& name : state_names()) {
      auto it = state.find(k + name);
      FER_CHECK(it != state.end(), "load_state_dict: missing tensor '", k + name,
                "' (expected shape ", ps[i].shape_str(), ")");
      FER_CHECK(it->second.shape() == ps[i].shape(), "load_state_dict: tensor '", k + name,
                "' has shape ", it->second.shape_str(), " but the parameter has shape ",
                ps[i].shape_str());
      Tensor t = Tensor::empty(ps[i].shape(), ps[i].device());
      t.copy_(it->second);
      s.tensors[name] = t;
    }
    loaded[ps[i].impl_ptr().get()] = std::move(s);
  }
  return loaded;
}

// ---- SGD ---------------------------------------------------------------------------------------

SGD::SGD(std::vector<ParamGroup> groups, float lr, float momentum, float dampening,
         float weight_decay, bool nesterov)
    : Optimizer(std::move(groups), lr, weight_decay),
      momentum_(momentum),
      dampening_(dampening),
      nesterov_(nesterov) {
  validate(momentum_, dampening_, nesterov_);
}

SGD::SGD(std::vector<Tensor> params, float lr, float momentum, float dampening, float weight_decay,
         bool nesterov)
    : SGD(single_group(std::move(params)), lr, momentum, dampening, weight_decay, nesterov) {}

void SGD::validate(float momentum, float dampening, bool nesterov) const {
  FER_CHECK(momentum >= 0.0f, "SGD: invalid momentum ", momentum);
  FER_CHECK(!nesterov || (momentum > 0.0f && dampening == 0.0f),
            "SGD: nesterov momentum requires a momentum and zero dampening");
}

std::vector<std::string> SGD::state_names() const {
  if (momentum_ == 0.0f) return {};
  return {"momentum_buffer"};
}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 ParamState& s) {
  const SgdHyper h{group.lr, momentum_, dampening_, group.weight_decay, nesterov_, s.step == 1};
  float* buf = momentum_ != 0.0f ? s.tensors.at("momentum_buffer").data() : nullptr;
  backend(param.device()).sgd_update(param.data(), grad.data(), buf, param.numel(), h);
}

void SGD::save_hyper(Metadata& out, const std::string& prefix) const {
  out[prefix + "momentum"] = metadata_str(momentum_);
  out[prefix + "dampening"] = metadata_str(dampening_);
  out[prefix + "nesterov"] = nesterov_ ? "1" : "0";
}

// All values are read and checked before any is assigned: a bad one leaves the optimizer as it was.
void SGD::load_hyper(const Metadata& in, const std::string& prefix) {
  const float momentum = metadata_float(in, prefix + "momentum");
  const float dampening = metadata_float(in, prefix + "dampening");
  const bool nesterov = metadata_int(in, prefix + "nesterov") != 0;
  validate(momentum, dampening, nesterov);
  momentum_ = momentum;
  dampening_ = dampening;
  nesterov_ = nesterov;
}

// ---- Adam / AdamW ------------------------------------------------------------------------------

Adam::Adam(std::vector<ParamGroup> groups, float lr, float beta1, float beta2, float eps,
           float weight_decay, bool decoupled)
    : Optimizer(std::move(groups), lr, weight_decay),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      decoupled_(decoupled) {
  validate(beta1_, beta2_, eps_);
}

Adam::Adam(std::vector<ParamGroup> groups, float lr, float beta1, float beta2, float eps,
           float weight_decay)
    : Adam(std::move(groups), lr, beta1, beta2, eps, weight_decay, false) {}

Adam::Adam(std::vector<Tensor> params, float lr, float beta1, float beta2, float eps,
           float weight_decay)
    : Adam(single_group(std::move(params)), lr, beta1, beta2, eps, weight_decay, false) {}

void Adam::validate(float beta1, float beta2, float eps) const {
  FER_CHECK(beta1 >= 0.0f && beta1 < 1.0f, type(), ": invalid beta1 ", beta1);
  FER_CHECK(beta2 >= 0.0f && beta2 < 1.0f, type(), ": invalid beta2 ", beta2);
  FER_CHECK(eps >= 0.0f, type(), ": invalid eps ", eps);
}

void Adam::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                  ParamState& s) {
  const AdamHyper h{group.lr, beta1_, beta2_, eps_, group.weight_decay, decoupled_, s.step};
  backend(param.device())
      .adam_update(param.data(), grad.data(), s.tensors.at("exp_avg").data(),
                   s.tensors.at("exp_avg_sq").data(), param.numel(), h);
}

void Adam::save_hyper(Metadata& out, const std::string& prefix) const {
  out[prefix + "beta1"] = metadata_str(beta1_);
  out[prefix + "beta2"] = metadata_str(beta2_);
  out[prefix + "eps"] = metadata_str(eps_);
}

// As SGD's: checked in full before anything changes.
void Adam::load_hyper(const Metadata& in, const std::string& prefix) {
  const float beta1 = metadata_float(in, prefix + "beta1");
  const float beta2 = metadata_float(in, prefix + "beta2");
  const float eps = metadata_float(in, prefix + "eps");
  validate(beta1, beta2, eps);
  beta1_ = beta1;
  beta2_ = beta2;
  eps_ = eps;
}

AdamW::AdamW(std::vector<ParamGroup> groups, float lr, float beta1, float beta2, float eps,
             float weight_decay)
    : Adam(std::move(groups), lr, beta1, beta2, eps, weight_decay, true) {}

AdamW::AdamW(std::vector<Tensor> params, float lr, float beta1, float beta2, float eps,
             float weight_decay)
    : Adam(single_group(std::move(params)), lr, beta1, beta2, eps, weight_decay, true) {}

// ---- Gradient clipping -------------------------------------------------------------------------

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  FER_CHECK(max_norm >= 0.0f, "clip_grad_norm: invalid max_norm ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  double sum_sq = 0.0;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    grads.push_back(p.grad());
    sum_sq += backend(grads.back().device()).sum_squares(grads.back().data(), grads.back().numel());
  }
  const double norm = std::sqrt(sum_sq);
  if (norm > max_norm) {
    const float coef = static_cast<float>(max_norm / (norm + 1e-6));
    for (const Tensor& g : grads) backend(g.device()).scale(g.data(), coef, g.data(), g.numel());
  }
  return static_cast<float>(norm);
}

}  // namespace fer
