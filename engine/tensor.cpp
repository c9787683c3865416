#include "engine/tensor.h"

#include <algorithm>
#include <cstdint>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/random.h"
#include "engine/trace.h"

namespace fer {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {
thread_local StorageBudget* current_budget = nullptr;
}  // namespace

StorageBudget::StorageBudget(size_t bytes, std::string what)
    : limit_(bytes), what_(std::move(what)), outer_(current_budget) {
  current_budget = this;
}
StorageBudget::~StorageBudget() { current_budget = outer_; }

void StorageBudget::charge(size_t bytes) {
  FER_CHECK(bytes <= limit_ - used_, what_, ": needs more than ", limit_, " bytes of tensors (",
            used_, " allocated, ", bytes, " more asked for)");
  used_ += bytes;
}

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  if (current_budget) current_budget->charge(nbytes);
  data = nbytes ? backend(dev).allocate(nbytes) : nullptr;
}
Storage::~Storage() {
  if (data) backend(device).deallocate(data, bytes);
}

TensorImpl& Tensor::impl() const {
  FER_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  FER_CHECK(d >= 0 && d < n, "size(", d, "): tensor of shape ", shape_str(), " has ", n, " dims");
  return impl().shape[d];
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

// ---- Creation --------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, Device device) {
  // The element count is multiplied out with overflow checks: a shape from a file or a model's
  // config (a crafted checkpoint) must not wrap around into a small allocation.
  int64_t numel = 1;
  bool too_large = false;
  for (int64_t d : shape) {
    FER_CHECK(d >= 0, "negative dimension in shape ", fer::shape_str(shape));
    too_large = too_large || __builtin_mul_overflow(numel, d, &numel);
  }
  too_large = too_large || numel > static_cast<int64_t>(PTRDIFF_MAX / sizeof(float));
  FER_CHECK(!too_large, "shape ", fer::shape_str(shape), " has more elements than memory can hold");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(numel) * sizeof(float), device);
  impl->shape = shape;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }
Tensor Tensor::ones(const Shape& shape, Device device) { return full(shape, 1.0f, device); }

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  FER_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
            values.size(), " values for shape ", fer::shape_str(shape));
  Tensor t = empty(shape, device);
  backend(device).copy_from_host(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::uniform(const Shape& shape, float low, float high, Generator& gen, Device device) {
  std::vector<float> v(shape_numel(shape));
  for (float& x : v) x = gen.uniform(low, high);
  return from_vector(shape, v, device);
}

Tensor Tensor::normal(const Shape& shape, float mean, float stddev, Generator& gen, Device device) {
  std::vector<float> v(shape_numel(shape));
  for (float& x : v) x = mean + stddev * gen.normal();
  return from_vector(shape, v, device);
}

// ---- Data access -----------------------------------------------------------------------------

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(numel());
  if (!v.empty()) backend(device()).copy_to_host(v.data(), data(), v.size() * sizeof(float));
  return v;
}

float Tensor::item() const {
  FER_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(), " has ", numel(), " elements");
  return to_vector()[0];
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor t = empty(shape(), target);
  t.copy_(*this);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), device());
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  FER_CHECK(numel() == src.numel(), "copy_: destination ", shape_str(), " and source ",
            src.shape_str(), " differ in size");
  const size_t bytes = numel() * sizeof(float);
  if (bytes == 0) return;
  if (device() == src.device()) {
    backend(device()).copy(data(), src.data(), bytes);
  } else if (src.device() == Device::CPU) {
    backend(device()).copy_from_host(data(), src.data(), bytes);
  } else if (device() == Device::CPU) {
    backend(src.device()).copy_to_host(data(), src.data(), bytes);
  } else {
    copy_(src.to(Device::CPU));
  }
}

void Tensor::fill_(float value) { backend(device()).fill(data(), numel(), value); }

void Tensor::move_to_(Device target) {
  if (device() == target) return;
  Tensor moved = to(target);
  impl().storage = moved.impl().storage;
  impl().offset = 0;
  if (impl().grad) Tensor(impl().grad).move_to_(target);
}

// ---- Views -----------------------------------------------------------------------------------

namespace {

Tensor make_view(const Tensor& base, const Shape& shape, int64_t extra_offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + extra_offset;
  impl->shape = shape;
  return Tensor(std::move(impl));
}

// Backward of reshape: the gradient is the output gradient seen with the input's shape.
struct ReshapeBackward : Node {
  Shape input_shape;
  std::vector<Tensor> backward(const Tensor& gy) override { return {gy.reshape(input_shape)}; }
  const char* name() const override { return "reshape"; }
};

// Backward of slice_batch: the slice's gradient lands in rows [begin, end) of a zero tensor.
struct SliceBatchBackward : Node {
  Shape input_shape;
  int64_t begin = 0;
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::zeros(input_shape, gy.device());
    const int64_t row = shape_numel(input_shape) / input_shape[0];
    backend(gy.device()).copy(gx.data() + begin * row, gy.data(), gy.numel() * sizeof(float));
    return {gx};
  }
  const char* name() const override { return "slice_batch"; }
};

}  // namespace

Tensor Tensor::reshape(const Shape& requested) const {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FER_CHECK(infer < 0, "reshape: more than one -1 in ", fer::shape_str(requested));
      infer = static_cast<int64_t>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    FER_CHECK(known > 0 && numel() % known == 0, "reshape: cannot view ", shape_str(), " as ",
              fer::shape_str(requested));
    shape[infer] = numel() / known;
  }
  FER_CHECK(shape_numel(shape) == numel(), "reshape: cannot view ", shape_str(), " (", numel(),
            " elements) as ", fer::shape_str(requested));
  Tensor out = make_view(*this, shape, 0);
  if (needs_grad({this})) {
    auto node = std::make_shared<ReshapeBackward>();
    node->input_shape = this->shape();
    node->inputs = {*this};
    attach_node(out, node);
  }
  if (OpTrace* trace = active_trace()) trace->record("reshape", {*this}, out);  // shape: out's
  return out;
}

Tensor Tensor::flatten(int64_t start_dim) const {
  FER_CHECK(start_dim >= 0 && start_dim < std::max<int64_t>(dim(), 1), "flatten(", start_dim,
            "): tensor of shape ", shape_str());
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(-1);
  return reshape(s);
}

Tensor Tensor::slice_batch(int64_t begin, int64_t end) const {
  FER_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= size(0), "slice_batch(", begin,
            ", ", end, "): tensor of shape ", shape_str());
  Shape s = shape();
  s[0] = end - begin;
  Tensor out = make_view(*this, s, begin * (size(0) ? numel() / size(0) : 0));
  if (needs_grad({this})) {
    auto node = std::make_shared<SliceBatchBackward>();
    node->input_shape = shape();
    node->begin = begin;
    node->inputs = {*this};
    attach_node(out, node);
  }
  if (OpTrace* trace = active_trace())
    trace->record("slice_batch", {*this}, out, {{"begin", begin}, {"end", end}});
  return out;
}

// ---- Autograd --------------------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool value) {
  FER_CHECK(is_leaf() || value, "set_requires_grad(false) on a non-leaf tensor: use detach()");
  impl().requires_grad = value;
  return *this;
}

Tensor Tensor::detach() const { return make_view(*this, shape(), 0); }

void Tensor::backward() const {
  FER_CHECK(numel() == 1, "backward(): the loss must have one element, got shape ", shape_str());
  FER_CHECK(requires_grad(), "backward(): the loss does not require grad (no parameter or input "
                             "with requires_grad contributed to it, or it was computed under "
                             "NoGradGuard)");
  run_backward(*this, Tensor::ones(shape(), device()));
}

}  // namespace fer
