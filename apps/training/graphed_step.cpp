#include "apps/training/graphed_step.h"

#include "engine/autograd.h"
#include "engine/error.h"

namespace fer {

namespace {
// The allocator pool of the training step's graphs: the forward graph's saved activations are
// read by the backward graph, so both record into one pool and replay in that order.
constexpr int kStepPool = 1;
}  // namespace

std::unique_ptr<GraphedStep> GraphedStep::record(Module& model, const Shape& input_shape,
                                                 Device device) {
  Backend& be = backend(device);
  std::unique_ptr<GraphedStep> step(new GraphedStep());
  step->input_ = Tensor::zeros(input_shape, device);
  for (const Tensor& p : model.parameters(/*trainable_only=*/false)) p.zero_grad();  // the backward graph creates them

  step->forward_ = be.capture([&] { step->logits_ = model.forward(step->input_); }, kStepPool);
  if (!step->forward_) return nullptr;
  FER_CHECK(step->logits_.defined() && step->logits_.requires_grad(),
            "GraphedStep: the model's output of shape ", step->logits_.shape_str(),
            " has no gradient history (no trainable parameters?)");
  step->dlogits_ = Tensor::zeros(step->logits_.shape(), device);
  step->backward_ = be.capture([&] { run_backward(step->logits_, step->dlogits_); }, kStepPool);
  FER_CHECK(step->backward_ != nullptr, "GraphedStep: the backward pass could not be recorded");
  // Replays read and write the buffers; the recorded history itself is not needed again.
  step->logits_ = step->logits_.detach();
  return step;
}

GraphedStep::Output GraphedStep::run(const Tensor& images, uint64_t seed,
                                     const std::function<Tensor(const Tensor& logits)>& loss_fn) {
  FER_CHECK(images.shape() == input_.shape(), "GraphedStep: a batch of shape ", images.shape_str(),
            " for a step recorded with ", input_.shape_str(),
            " (graphs replay fixed shapes: drop the last partial batch)");
  input_.copy_(images);
  forward_->replay(seed);
  Tensor logits = logits_.detach();
  logits.set_requires_grad(true);
  Tensor loss = loss_fn(logits);
  loss.backward();
  FER_CHECK(logits.grad().defined(), "GraphedStep: the loss does not depend on the logits");
  dlogits_.copy_(logits.grad());
  backward_->replay(0);  // nothing random in the backward pass
  return {loss, logits_};
}

}  // namespace fer
