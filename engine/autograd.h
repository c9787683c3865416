// Define-by-run autograd.
//
// Every differentiable op, when grad mode is on and one of its inputs requires grad, creates a
// Node that remembers its inputs (the graph edges) and whatever it saved for backward, and hangs
// it on its output as grad_fn. Tensor::backward() then:
//   1. orders the nodes reachable from the loss topologically (depth-first, iterative),
//   2. walks them from the loss down, calling Node::backward(grad_of_output) to get one gradient
//      per input, summing gradients that reach the same tensor from several uses,
//   3. accumulates into .grad of every leaf that requires grad (so two backward() calls without
//      zero_grad() add up, as in PyTorch),
//   4. frees the graph: each node drops its saved tensors and edges; a second backward() through
//      the same graph is an error.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace fer {

struct Node {
  virtual ~Node() = default;
  // Gradients of the loss w.r.t. each input, given the gradient w.r.t. this node's output.
  // Entries for inputs that need no gradient may be left undefined.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  virtual const char* name() const = 0;
  // Drop everything saved for backward (called once backward has passed through this node).
  virtual void release_saved() {}

  std::vector<Tensor> inputs;  // the edges: one per differentiable input, in backward()'s order
  bool released = false;
};

// Grad mode: on by default; a NoGradGuard turns it off for the current thread (inference,
// optimizer updates, evaluation), and restores the previous mode when it goes out of scope.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches `node` (with its inputs already set) to `output` and marks output as requiring grad.
void attach_node(Tensor& output, std::shared_ptr<Node> node);

// Runs backward from `root` with the given seed gradient (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace fer
