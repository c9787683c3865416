// Tensor: an N-d array of float32 on a device, and a node of the autograd graph.
//
// A Tensor is a cheap handle (a shared pointer) to a TensorImpl. Copying a Tensor copies the
// handle, not the data. The data lives in a Storage that several tensors may share: reshape,
// flatten and slicing along the batch dimension return views that alias the same storage at an
// element offset. Every tensor is contiguous (row-major, last dimension fastest), so a view is
// fully described by (storage, offset, shape).
//
// Autograd: a tensor produced by an op while grad mode is on, from inputs that require grad,
// records the op's backward Node in grad_fn. backward() on a scalar walks those nodes in reverse
// topological order and accumulates gradients into the .grad of leaf tensors that require grad.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/error.h"

namespace fer {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);

class Generator;
struct Node;

// Raw bytes on one device, released through that device's backend allocator.
struct Storage {
  Storage(size_t bytes, Device device);  // counted against this thread's StorageBudget, if any
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
};

// A bound on the tensor bytes one thread allocates while the budget is in scope: every Storage
// the thread creates counts (freed ones are not given back), and the one that would take the
// total past `bytes` throws fer::Error naming `what` before any memory is asked for. Building a
// model from a checkpoint's metadata runs under one sized by the file's own tensors, so a crafted
// file (a hidden layer of 10^8 units) is an error rather than gigabytes allocated
// (apps/training/checkpoint.h). Budgets nest: the innermost one counts.
class StorageBudget {
 public:
  StorageBudget(size_t bytes, std::string what);
  ~StorageBudget();
  StorageBudget(const StorageBudget&) = delete;
  StorageBudget& operator=(const StorageBudget&) = delete;
  void charge(size_t bytes);  // throws when the total would pass the budget
  size_t used() const { return used_; }

 private:
  size_t limit_, used_ = 0;
  std::string what_;
  StorageBudget* outer_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- Creation ------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, Device device = Device::CPU);  // uninitialised
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::CPU);
  static Tensor scalar(float value, Device device = Device::CPU) { return full({}, value, device); }
  // Seeded random initialisation (on the CPU, then copied to `device`).
  static Tensor uniform(const Shape& shape, float low, float high, Generator& gen,
                        Device device = Device::CPU);
  static Tensor normal(const Shape& shape, float mean, float stddev, Generator& gen,
                       Device device = Device::CPU);

  // ---- Shape and data ------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  Device device() const { return impl().storage->device; }
  std::string shape_str() const { return fer::shape_str(impl().shape); }

  // Pointer to the first element, on the tensor's device.
  float* data() const { return static_cast<float*>(impl().storage->data) + impl().offset; }
  std::vector<float> to_vector() const;  // copy to host
  float item() const;                    // the value of a one-element tensor

  // ---- Devices and copies --------------------------------------------------------------------
  Tensor to(Device device) const;  // a copy on `device` (this tensor itself if already there)
  Tensor clone() const;            // a deep copy, detached from the graph
  void copy_(const Tensor& src);   // overwrite this tensor's values (same numel), any devices
  void fill_(float value);
  void move_to_(Device device);    // move this tensor's storage in place (used by Module::to)

  // ---- Views (share storage; differentiable) -------------------------------------------------
  Tensor reshape(const Shape& shape) const;  // one dimension may be -1
  Tensor flatten(int64_t start_dim = 1) const;
  Tensor slice_batch(int64_t begin, int64_t end) const;  // rows [begin, end) of dimension 0

  // ---- Autograd ------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool value);
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  void zero_grad() const { impl().grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor detach() const;  // same storage, no history
  void backward() const;  // from a one-element loss; gradient 1

  // ---- Identity ------------------------------------------------------------------------------
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  bool shares_storage(const Tensor& other) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Tensors by name, in name order: a model's parameters and buffers (Module::state_dict), an
// optimizer's state (Optimizer::state_dict), the contents of a checkpoint (engine/safetensors.h).
using StateDict = std::map<std::string, Tensor>;
// String metadata stored beside tensors (safetensors' "__metadata__", optimizer hyper-parameters).
using Metadata = std::map<std::string, std::string>;

}  // namespace fer
