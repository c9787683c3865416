// A training step replayed from CUDA graphs (fer_train --cuda-graph).
//
// At batch 64 on 48x48 faces a step of fer_vgg_small launches a few hundred small kernels, and on
// a fast GPU the host's launch and autograd work rivals the GPU's. GraphedStep records the forward
// pass and the backward pass once each (Backend::capture, kernels/cuda/graph.cu) and replays them
// on every later batch, which is copied into the recorded input tensor. Only the loss runs
// eagerly between the two replays: it is tiny, and it is where label smoothing and class weights
// live. The optimizer update stays outside too (the learning rate changes every step, and the
// fused updates are one launch per parameter).
//
//   eager step(s)          GraphedStep::record            every later step
//   (cuDNN picks its   ->  forward graph: x -> logits  ->  x.copy_(batch); forward->replay(seed)
//    algorithms)           backward graph: dlogits ->      loss(logits) eagerly -> dlogits
//                          every parameter's .grad         backward->replay(); optimizer.step()
//
// After record() the backward graph owns the parameters' gradients and rewrites them on every
// replay: the optimizer must not zero_grad() them again (that would drop the tensors the graph
// writes to). Dropout masks differ per step: each replay takes a seed from the caller.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "layers/module.h"

namespace fer {

class GraphedStep {
 public:
  // Records the training step of `model` (in its current train/eval modes) for batches of shape
  // `input_shape` on `device`, where the model already ran at least one eager step of that shape.
  // Drops the parameters' gradients first: from here on the backward graph writes them. Returns
  // nullptr when the device's backend cannot record graphs (the CPU).
  static std::unique_ptr<GraphedStep> record(Module& model, const Shape& input_shape, Device device);

  struct Output {
    Tensor loss;    // the value of loss_fn (eager, on the device)
    Tensor logits;  // the forward graph's output: overwritten by the next replay
  };
  // One step: copies `images` (any device, the recorded shape) into the recorded input, replays
  // the forward pass with dropout seed `seed`, computes loss_fn(logits) eagerly, and replays the
  // backward pass from its gradient, which leaves every trainable parameter's .grad written.
  Output run(const Tensor& images, uint64_t seed,
             const std::function<Tensor(const Tensor& logits)>& loss_fn);

 private:
  GraphedStep() = default;
  Tensor input_, logits_, dlogits_;  // static buffers the graphs read and write
  std::unique_ptr<DeviceGraph> forward_, backward_;
};

}  // namespace fer
