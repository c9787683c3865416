// The three training-step strategies; see train_step.h.
#include "apps/training/train_step.h"

#include <cstdio>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/error.h"
#include "engine/random.h"

namespace fer {

void TrainStep::mix_batch(const data::BatchMix& mix) {
  FER_CHECK(!mix.active(), "mixup and cutmix need the images: not available with --cache-features");
}

// ---- Eager: the loader's images through the whole model ------------------------------------

EagerTrainStep::EagerTrainStep(Module& model, Optimizer& optimizer, data::BatchLoader& loader,
                               Device device, const data::PreprocessOptions& preprocess)
    : model_(model), optimizer_(optimizer), loader_(loader), device_(device), preprocess_(preprocess) {}

void EagerTrainStep::start_epoch(int64_t epoch, int64_t first_step) {
  loader_.start_epoch(epoch);
  for (int64_t s = 0; s < first_step; ++s) loader_.next(batch_);  // trained before the interruption
}

bool EagerTrainStep::next_batch() {
  if (!loader_.next(batch_)) return false;
  inputs_ = input_of(batch_.images);
  return true;
}

void EagerTrainStep::mix_batch(const data::BatchMix& mix) {
  if (!mix.active()) return;
  batch_.images = data::apply_batch_mix(mix, batch_.images);
  inputs_ = input_of(batch_.images);
}

StepOutput EagerTrainStep::forward_backward(const LossFn& loss_fn) {
  optimizer_.zero_grad();
  Tensor logits = model_.forward(inputs_);
  Tensor loss = loss_fn(logits);
  loss.backward();
  return {logits, loss};
}

Predictions EagerTrainStep::validate(const data::Dataset& val) {
  return predict_dataset(model_, val, preprocess_, device_);
}

// ---- Graphed: the eager step once, then CUDA graph replays -----------------------------------

GraphedTrainStep::GraphedTrainStep(Module& model, Optimizer& optimizer, data::BatchLoader& loader,
                                   Device device, const data::PreprocessOptions& preprocess,
                                   bool progress)
    : EagerTrainStep(model, optimizer, loader, device, preprocess), progress_(progress) {}

StepOutput GraphedTrainStep::forward_backward(const LossFn& loss_fn) {
  if (!graphed_) return EagerTrainStep::forward_backward(loss_fn);
  // Dropout masks differ per step: each replay draws its seed from the default generator.
  const GraphedStep::Output out = graphed_->run(inputs_, default_generator().next_u64(), loss_fn);
  return {out.logits, out.loss};
}

void GraphedTrainStep::after_update() {
  if (graphed_) return;
  // CUDA graphs replay fixed shapes: every later batch has this one's (the loader drops the
  // last, partial batch of an epoch).
  graphed_ = GraphedStep::record(model_, inputs_.shape(), device_);
  FER_CHECK(graphed_ != nullptr, "--cuda-graph: the ", device_name(device_),
            " backend cannot record graphs");
  std::fprintf(stderr, "%scuda graphs: training step recorded for batches of %s\n",
               progress_ ? "\n" : "", inputs_.shape_str().c_str());
}

// ---- Cached head: cached features through the head only --------------------------------------

CachedHeadTrainStep::CachedHeadTrainStep(Classifier& model, Optimizer& optimizer,
                                         const data::BatchLoader& loader, FeatureCache cache,
                                         const data::Dataset& train, int64_t batch_size, Device device)
    : model_(model),
      optimizer_(optimizer),
      loader_(loader),
      cache_(std::move(cache)),
      train_labels_(train.labels.begin(), train.labels.end()),
      batch_size_(batch_size),
      device_(device) {}

void CachedHeadTrainStep::start_epoch(int64_t epoch, int64_t first_step) {
  order_ = loader_.epoch_order(epoch);
  table_ = &cache_.train_for_epoch(epoch);
  next_ = first_step;
}

// Batch b of the epoch is items [b * batch_size, (b + 1) * batch_size) of its order, as the
// loader cuts them (a last, partial batch is dropped, as the loader drops it).
bool CachedHeadTrainStep::next_batch() {
  const size_t first = static_cast<size_t>(next_ * batch_size_);
  if (first + static_cast<size_t>(batch_size_) > order_.size()) return false;
  batch_.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(first),
                        order_.begin() + static_cast<std::ptrdiff_t>(first + batch_size_));
  std::vector<float> y(batch_.indices.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = train_labels_[static_cast<size_t>(batch_.indices[i])];
  batch_.labels = Tensor::from_vector({static_cast<int64_t>(y.size())}, y);
  inputs_ = table_->gather(batch_.indices, device_);
  ++next_;
  return true;
}

StepOutput CachedHeadTrainStep::forward_backward(const LossFn& loss_fn) {
  optimizer_.zero_grad();
  Tensor logits = head_forward(model_, inputs_);
  Tensor loss = loss_fn(logits);
  loss.backward();
  return {logits, loss};
}

Predictions CachedHeadTrainStep::validate(const data::Dataset& val) {
  return predict_cached(model_, cache_.val, val.labels, device_);
}

}  // namespace fer
