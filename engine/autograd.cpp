#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/backend.h"

namespace fer {

namespace {
thread_local bool g_grad_enabled = true;

// dst += src, allocating dst on first use. Gradients are never aliased with forward values, so
// accumulating in place is safe.
void accumulate(Tensor& dst, const Tensor& src) {
  if (!dst.defined()) {
    dst = src;
    return;
  }
  FER_CHECK(dst.numel() == src.numel(), "autograd: gradient of shape ", src.shape_str(),
            " does not match ", dst.shape_str());
  if (dst.shares_storage(src)) {  // both views of one buffer: materialise before adding
    dst = dst.clone();
  }
  backend(dst.device()).axpby(1.0f, src.data(), 1.0f, dst.data(), dst.numel());
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void attach_node(Tensor& output, std::shared_ptr<Node> node) {
  output.impl().grad_fn = std::move(node);
  output.impl().requires_grad = true;
}

void run_backward(const Tensor& root, const Tensor& seed) {
  if (!root.grad_fn()) {  // a leaf loss: its gradient is the seed
    Tensor g = root.grad();
    accumulate(g, seed);
    root.set_grad(g);
    return;
  }

  // 1. Topological order of the nodes reachable from the root (iterative DFS, post-order).
  // `order` owns the nodes: releasing a node's edges below would otherwise destroy the nodes
  // behind it before their turn.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root.grad_fn(), 0}};
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    FER_CHECK(!node->released, "backward through the graph a second time (op '", node->name(),
              "'): the graph is freed after backward(); run the forward pass again");
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      const std::shared_ptr<Node>& child = in.defined() ? in.grad_fn() : nullptr;
      if (child && visited.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  // 2. Walk from the root towards the leaves, handing each node the sum of its output gradients.
  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient flows here
    Tensor grad_out = std::move(found->second);
    pending.erase(found);
    std::vector<Tensor> grads;
    {
      NoGradGuard no_grad;  // gradients are plain values: no graph of the backward pass
      grads = node->backward(grad_out);
    }
    FER_CHECK(grads.size() == node->inputs.size(), "autograd: op '", node->name(), "' returned ",
              grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!grads[i].defined() || !in.defined() || !in.requires_grad()) continue;
      FER_CHECK(grads[i].numel() == in.numel(), "autograd: op '", node->name(), "' gave input ", i,
                " a gradient of shape ", grads[i].shape_str(), " for ", in.shape_str());
      if (in.grad_fn()) {
        accumulate(pending[in.grad_fn().get()], grads[i]);
      } else {
        Tensor g = in.grad();
        // A leaf's .grad must not alias a gradient another node may still add to.
        Tensor contribution = g.defined() ? grads[i] : grads[i].clone().reshape(in.shape());
        accumulate(g, contribution);
        in.set_grad(g.reshape(in.shape()).detach());
      }
    }
    // 3. Free this part of the graph as soon as it has been used.
    node->release_saved();
    node->inputs.clear();
    node->released = true;
  }
}

}  // namespace fer
