// Module: the base of every layer and model, in the manner of torch.nn.Module.
//
// A module owns named parameters (trainable tensors), named buffers (state that is saved but not
// trained, such as batchnorm running statistics) and named child modules. Names compose with dots
// exactly as in PyTorch ("features.0.weight", "bn1.running_mean"), so a state dict maps one to
// one onto a torchvision checkpoint. train()/eval() switch the mode of the whole tree (dropout and
// batchnorm behave differently); to(device) moves every tensor in place, so handles held by the
// layers and by an optimizer stay valid.
//
// A module calls its children as PyTorch's do, child(x) (operator()), not child.forward(x): the
// call runs forward and then shows (module, input, output) to the ForwardHook in scope, if any,
// which is how a tool looks inside a model without knowing how it is built (forward_flops in
// models/registry.h counts every convolution of a ResNet block that way). While an op trace
// (engine/trace.h) is active, the call also marks the module as the scope of the ops its forward
// runs, so an exporter can name the module of an op it cannot translate.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace fer {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  // forward(x), then the ForwardHook in scope (if any) sees this module, x and the result.
  Tensor operator()(const Tensor& x);
  // A one-line description ("Conv2d(1, 32, kernel=3, stride=1, padding=1)").
  virtual std::string describe() const = 0;

  // ---- Tree --------------------------------------------------------------------------------
  NamedTensors named_parameters(bool trainable_only = false) const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters(bool trainable_only = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  std::shared_ptr<Module> child(const std::string& name) const;
  int64_t parameter_count(bool trainable_only = false) const;
  std::string summary() const;  // an indented tree of describe() lines

  // ---- State -------------------------------------------------------------------------------
  StateDict state_dict() const;  // parameters and buffers, by dotted name
  // Copies values into this module's tensors. strict: every name must match both ways. Any
  // mismatch names the tensor and the shapes.
  void load_state_dict(const StateDict& state, bool strict = true);

  // ---- Modes -------------------------------------------------------------------------------
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void to(Device device);
  void zero_grad();
  // Freeze (false) or unfreeze (true) every parameter of this subtree (transfer learning).
  void set_requires_grad(bool value);
  // For inference from here on, as PyTorch's torch.jit.freeze: eval mode, no parameter takes
  // gradients, and layers whose backend can keep its own forms of their weights between calls
  // (the Winograd transforms of a Conv2d's kernels: engine/backend.h's PackedWeights) keep them.
  // Loading weights (load_state_dict) or moving the model (to) drops the kept forms; training it
  // again fails with a message naming the packed weights. The apps that only infer call it.
  void freeze_for_inference();

 protected:
  // What freeze_for_inference() and a change of the weights mean for one layer (the tree walk is
  // the base's): a layer that keeps packed forms of its weights starts keeping them, or drops them.
  virtual void start_packing_weights() {}
  virtual void drop_packed_weights() {}
  // Return the registered handle; layers keep it as a member (handles share the tensor).
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void collect(const std::string& prefix, bool params, bool trainable_only, NamedTensors& out) const;
  void for_each_module(const std::function<void(Module&)>& fn);
  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A forward hook for a scope, as PyTorch's register_forward_hook but on every module at once:
// while it lives, each module called through operator() on this thread reports itself, its input
// and its output to fn, after its forward has run, however deep in the tree. A hook created in
// the scope of another replaces it until it ends.
class ForwardHook {
 public:
  using Fn = std::function<void(const Module& module, const Tensor& input, const Tensor& output)>;
  explicit ForwardHook(Fn fn);
  ~ForwardHook();
  // True while a hook is in scope on this thread. Layers that fuse two modules' ops into one
  // (a BatchNorm and the ReLU after it) run them apart then, so that the hook sees each module.
  static bool active();
  ForwardHook(const ForwardHook&) = delete;
  ForwardHook& operator=(const ForwardHook&) = delete;

 private:
  friend class Module;
  Fn fn_;
  ForwardHook* previous_;
};

}  // namespace fer
