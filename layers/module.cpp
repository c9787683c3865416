#include "layers/module.h"

#include <optional>
#include <set>
#include <sstream>

#include "engine/autograd.h"
#include "engine/trace.h"

namespace fer {

namespace {
thread_local ForwardHook* active_hook = nullptr;
}  // namespace

ForwardHook::ForwardHook(Fn fn) : fn_(std::move(fn)), previous_(active_hook) { active_hook = this; }
ForwardHook::~ForwardHook() { active_hook = previous_; }
bool ForwardHook::active() { return active_hook != nullptr; }

Tensor Module::operator()(const Tensor& x) {
  std::optional<OpTrace::Scope> scope;  // while tracing (an export), ops say which module ran them
  if (OpTrace* trace = active_trace()) scope.emplace(*trace, this);
  Tensor y = forward(x);
  if (active_hook) active_hook->fn_(*this, x, y);
  return y;
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return params_.back().second;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.emplace_back(name, value);
  return buffers_.back().second;
}

void Module::collect(const std::string& prefix, bool params, bool trainable_only,
                     NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_)
    if (!trainable_only || t.requires_grad()) out.emplace_back(prefix + name, t);
  for (const auto& [name, m] : children_) m->collect(prefix + name + ".", params, trainable_only, out);
}

NamedTensors Module::named_parameters(bool trainable_only) const {
  NamedTensors out;
  collect("", true, trainable_only, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, false, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool trainable_only) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(trainable_only)) out.push_back(t);
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return m;
  fail("module has no child named '", name, "'");
}

int64_t Module::parameter_count(bool trainable_only) const {
  int64_t n = 0;
  for (const Tensor& t : parameters(trainable_only)) n += t.numel();
  return n;
}

std::string Module::summary() const {
  std::ostringstream os;
  os << describe() << "\n";
  for (const auto& [name, m] : children_) {
    std::istringstream lines(m->summary());
    std::string line;
    bool first = true;
    while (std::getline(lines, line)) {
      os << "  " << (first ? "(" + name + "): " : "") << line << "\n";
      first = false;
    }
  }
  return os.str();
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, t] : named_parameters()) out[name] = t;
  for (auto& [name, t] : named_buffers()) out[name] = t;
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  NoGradGuard no_grad;
  std::set<std::string> used;
  auto load = [&](const NamedTensors& mine) {
    for (const auto& [name, t] : mine) {
      auto it = state.find(name);
      if (it == state.end()) {
        FER_CHECK(!strict, "load_state_dict: missing tensor '", name, "' (expected shape ",
                  t.shape_str(), ")");
        continue;
      }
      FER_CHECK(it->second.shape() == t.shape(), "load_state_dict: tensor '", name, "' has shape ",
                it->second.shape_str(), " but the model expects ", t.shape_str());
      Tensor(t).copy_(it->second);
      used.insert(name);
    }
  };
  load(named_parameters());
  load(named_buffers());
  if (strict)
    for (const auto& [name, t] : state)
      FER_CHECK(used.count(name), "load_state_dict: unexpected tensor '", name, "' of shape ",
                t.shape_str(), " (the model has no such parameter or buffer)");
  for_each_module([](Module& m) { m.drop_packed_weights(); });
}

void Module::for_each_module(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [name, m] : children_) m->for_each_module(fn);
}

void Module::freeze_for_inference() {
  eval();
  set_requires_grad(false);
  for_each_module([](Module& m) { m.start_packing_weights(); });
}

void Module::train(bool on) {
  for_each_module([on](Module& m) { m.training_ = on; });
}

void Module::to(Device device) {
  for_each_module([device](Module& m) {
    for (auto& [name, t] : m.params_) t.move_to_(device);
    for (auto& [name, t] : m.buffers_) t.move_to_(device);
    m.drop_packed_weights();
  });
}

void Module::zero_grad() {
  for (const Tensor& t : parameters(false)) t.zero_grad();
}

void Module::set_requires_grad(bool value) {
  for (Tensor t : parameters(false)) t.set_requires_grad(value);
}

}  // namespace fer
