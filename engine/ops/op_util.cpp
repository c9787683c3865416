#include "engine/ops/op_util.h"

namespace fer {

Device ops_detail::common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) first = t;
    else
      FER_CHECK(t->device() == first->device(), op, ": tensors on different devices (",
                device_name(first->device()), " ", first->shape_str(), " and ",
                device_name(t->device()), " ", t->shape_str(), ")");
  }
  FER_CHECK(first != nullptr, op, ": no input tensor");
  return first->device();
}

}  // namespace fer
