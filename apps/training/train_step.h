// One training step, three ways: the strategies behind train() (trainer.h), so that its loop over
// epochs, metrics, checkpoints and resumption is written once.
//
//   EagerTrainStep       the batch loader's images -> the whole model -> loss -> backward. Autograd
//                        records every op of the forward pass and replays it backwards.
//   GraphedTrainStep     the same for the first step (cuDNN picks its algorithms); then the
//                        forward and backward passes are recorded as CUDA graphs (graphed_step.h)
//                        and every later step copies its batch in and replays them (--cuda-graph).
//   CachedHeadTrainStep  the frozen backbone's features of the batch, from the feature cache
//                        (feature_cache.h) -> the head only -> loss -> backward (--cache-features).
//
// A step of the loop, whatever the strategy:
//
//   step.start_epoch(epoch, first)       once per epoch (first > 0: resuming inside it)
//   while (step.next_batch()):           the epoch's next batch: step.batch().labels, indices
//     out = step.forward_backward(loss)  every trainable parameter's .grad written
//     optimizer.step()
//     step.after_update()
//   step.validate(val)                   after the epoch
//
// Every strategy draws the same epoch orders and batches (BatchLoader::epoch_order), so the
// cached and the graphed runs train on the same faces in the same order as the eager one; the
// tests check that they compute the same updates.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "apps/training/evaluate.h"
#include "apps/training/feature_cache.h"
#include "apps/training/graphed_step.h"
#include "data/batch_mix.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "engine/optim.h"
#include "models/registry.h"

namespace fer {

// The loss of a batch from the model's logits (cross-entropy with the run's options).
using LossFn = std::function<Tensor(const Tensor& logits)>;

struct StepOutput {
  Tensor logits;  // [B, classes] (graphed: the graph's buffer, overwritten by the next step)
  Tensor loss;    // the value of the loss function
};

class TrainStep {
 public:
  virtual ~TrainStep() = default;
  // Starts epoch `epoch` (0-based) at its batch `first_step`: the batches before it were trained
  // before the run was interrupted.
  virtual void start_epoch(int64_t epoch, int64_t first_step) = 0;
  // Fetches the epoch's next batch; false when the epoch has no more.
  virtual bool next_batch() = 0;
  // The fetched batch: labels [B] on the host, dataset indices (and, eager, the images).
  const data::Batch& batch() const { return batch_; }
  // What forward_backward will feed the model for it (a distillation teacher sees the same).
  const Tensor& inputs() const { return inputs_; }
  // Mixup / cutmix (data/batch_mix.h) of the fetched batch's images, before forward_backward.
  virtual void mix_batch(const data::BatchMix& mix);
  // Forward pass, loss_fn(logits) and backward pass for the fetched batch; leaves the gradient of
  // the loss in every trainable parameter's .grad, for the optimizer.
  virtual StepOutput forward_backward(const LossFn& loss_fn) = 0;
  // Called after the optimizer has updated the parameters from those gradients.
  virtual void after_update() {}
  // Predictions for the validation set with the current weights (the model in eval mode for the
  // pass, its mode restored afterwards).
  virtual Predictions validate(const data::Dataset& val) = 0;

 protected:
  data::Batch batch_;
  Tensor inputs_;  // what forward_backward feeds the model: images, or cached features
};

class EagerTrainStep : public TrainStep {
 public:
  // The loader supplies the epochs' batches; images are preprocessed with `preprocess` for
  // validation as the loader preprocesses them for training.
  EagerTrainStep(Module& model, Optimizer& optimizer, data::BatchLoader& loader, Device device,
                 const data::PreprocessOptions& preprocess);
  void start_epoch(int64_t epoch, int64_t first_step) override;
  bool next_batch() override;
  void mix_batch(const data::BatchMix& mix) override;
  StepOutput forward_backward(const LossFn& loss_fn) override;
  Predictions validate(const data::Dataset& val) override;

 protected:
  // The model's input for a batch of host images: on the device.
  virtual Tensor input_of(const Tensor& images) const { return images.to(device_); }
  Module& model_;
  Optimizer& optimizer_;
  data::BatchLoader& loader_;
  Device device_;
  data::PreprocessOptions preprocess_;
};

class GraphedTrainStep : public EagerTrainStep {
 public:
  // Says on stderr when the graphs have been recorded; `progress`: a live progress line is on
  // stderr, so the message starts a new line.
  GraphedTrainStep(Module& model, Optimizer& optimizer, data::BatchLoader& loader, Device device,
                   const data::PreprocessOptions& preprocess, bool progress);
  StepOutput forward_backward(const LossFn& loss_fn) override;
  // After the first (eager) step: records the graphs. From then on the backward graph owns the
  // parameters' gradients, so nothing zeroes them any more.
  void after_update() override;

 private:
  // Once recorded, a replay copies the host batch into the graph's input itself.
  Tensor input_of(const Tensor& images) const override {
    return graphed_ ? images : EagerTrainStep::input_of(images);
  }
  bool progress_;
  std::unique_ptr<GraphedStep> graphed_;
};

class CachedHeadTrainStep : public TrainStep {
 public:
  // `cache` holds the features of `train` (and of the validation set) for `model`'s frozen
  // backbone; the loader only supplies each epoch's order of the training images.
  CachedHeadTrainStep(Classifier& model, Optimizer& optimizer, const data::BatchLoader& loader,
                      FeatureCache cache, const data::Dataset& train, int64_t batch_size,
                      Device device);
  void start_epoch(int64_t epoch, int64_t first_step) override;
  bool next_batch() override;
  StepOutput forward_backward(const LossFn& loss_fn) override;
  Predictions validate(const data::Dataset& val) override;

 private:
  Classifier& model_;
  Optimizer& optimizer_;
  const data::BatchLoader& loader_;
  FeatureCache cache_;
  std::vector<float> train_labels_;
  int64_t batch_size_;
  Device device_;
  std::vector<int64_t> order_;           // the epoch's item order, cut into batches
  const FeatureTable* table_ = nullptr;  // the epoch's pass of the cache
  int64_t next_ = 0;                     // the next batch of the epoch
};

}  // namespace fer
