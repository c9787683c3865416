// Helpers shared by the op implementations in engine/ops/*.cpp.
#pragma once
#include <memory>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/trace.h"  // every op reports itself to the active trace, if any

namespace fer::ops_detail {

// All defined tensors must be on one device; returns it. Names the op and the shapes otherwise.
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors);

// Records `node` on `out` when any of `inputs` needs a gradient; the node's edges are `inputs`.
template <typename NodeT>
void record(Tensor& out, std::shared_ptr<NodeT> node, std::vector<Tensor> inputs) {
  node->inputs = std::move(inputs);
  attach_node(out, std::move(node));
}

inline Backend& backend_of(const Tensor& t) { return backend(t.device()); }

}  // namespace fer::ops_detail
