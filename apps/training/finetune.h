// Transfer learning: which part of a Classifier trains, in which mode, at which learning rate.
//
// Every model of models/registry.h is a Classifier{features, classifier}: `features` is a
// Sequential (for the ImageNet backbones: the input adapter, then the backbone's blocks; for the
// FER CNNs: the conv layers), `classifier` is the head. The recipe of the Keras notebooks this
// project replaces, and of torchvision fine-tuning, is two runs of fer_train:
//
//   phase 1  --freeze-backbone             the backbone is a fixed function; only the head trains
//   phase 2  --init phase1/best.safetensors --unfreeze-top N --lr smaller [--backbone-lr-mult F]
//                                          the last N backbone blocks train too
//
// Blocks. The unit of freezing is a block of `features`: a child that holds parameters, together
// with the parameterless children after it (activations, pooling, dropout). Two exceptions keep
// blocks meaningful on plain layer lists: a BatchNorm joins the block before it (it normalises
// that block's output), and parameterless children before the first parameterised one (the input
// adapter) belong to the first block. So fer_vgg_small's features are 8 blocks (conv+BN+ReLU[+pool])
// and fer_seed_cnn's 4; a backbone whose children are its stages has one block per stage.
//
// Frozen blocks (FinetuneOptions: freeze_backbone, or unfreeze_top N > 0 which freezes all but the
// last N blocks):
//   - their parameters have requires_grad = false, so no gradient is computed for them (and no
//     backward pass runs through the frozen prefix at all) and the optimizer never receives them;
//   - they run in eval mode even while the model trains (set_train_mode): batchnorm normalises with
//     its running statistics and does not update them, dropout is the identity. This is Keras's
//     `base_model(x, training=False)` with `trainable = False`, and it makes a fully frozen
//     `features` a deterministic function of the image, which is what the feature cache relies on.
//
// Frozen batchnorm (FinetuneOptions::freeze_bn): every BatchNorm of features, trainable blocks'
// too, normalises with its running statistics and leaves them alone, while its scale and shift
// (and the convolutions) still train. This is what Keras's transfer-learning guide prescribes when
// the top blocks are unfrozen: a small batch of faces gives statistics far from the ImageNet ones
// the layer was trained with, and normalising by them changes the function the fine-tuning starts
// from. It matters most for weights whose batchnorm was folded into the convolutions (TensorFlow
// Lite's: mean 0, variance 1, the bias as shift), where batch statistics would rescale every
// channel to unit variance and undo the pretrained scales.
//
// Learning rates (parameter groups of engine/optim.h): the head trains at lr; a trainable block
// at lr * backbone_lr_mult * layer_decay^k, where k = 0 for the topmost (last) block of features,
// 1 for the one before it, and so on ("discriminative" or layer-wise decayed learning rates). With
// layer_decay = 1 the trainable blocks share one group "features"; otherwise each has its own
// group "features.block<i>". A schedule rescales all groups together (Optimizer::set_lr keeps the
// ratios). When every rate equals lr the optimizer gets the single unnamed group of all trainable
// parameters in model order, so checkpoints of plain runs keep their layout.
//
// The plan is also written into checkpoints' metadata ("finetune.*") so that --resume can refuse
// to continue a run under a different split (the optimizer's groups would not line up).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "models/registry.h"

namespace fer {

struct FinetuneOptions {
  bool freeze_backbone = false;  // freeze every block of features
  int64_t unfreeze_top = 0;      // > 0: only the last N blocks of features train (implies freezing)
  float backbone_lr_mult = 1.0f; // trainable blocks' lr = lr * mult * layer_decay^k
  float layer_decay = 1.0f;
  bool freeze_bn = false;        // every batchnorm of features in eval mode (running statistics)
  bool freezes() const { return freeze_backbone || unfreeze_top > 0; }
  void validate() const;  // throws fer::Error naming the flag
};

struct FinetuneBlock {
  std::vector<size_t> children;  // indices into features' children
  std::string name;              // "features.3-5" (the dotted names of its children)
  std::string what;              // "Conv2d(...) + BatchNorm(...) + ..." (first layers' describe())
  int64_t params = 0;
  bool trainable = true;
  float lr_scale = 1.0f;         // of the trainable: multiplier of the head's lr
};

struct FinetunePlan {
  std::vector<FinetuneBlock> blocks;  // features, in order
  int64_t head_params = 0;
  bool freeze_bn = false;             // FinetuneOptions::freeze_bn
  int64_t trainable_params = 0, total_params = 0;
  bool backbone_frozen() const;       // no block trainable
  int64_t trainable_blocks() const;
  std::string describe() const;       // a few lines for the start of training
  Metadata to_metadata() const;
  // Throws fer::Error (naming `file`) when the metadata describes another plan. Checkpoints
  // written before plans existed (no "finetune.*" keys) match a plan where everything trains
  // at one rate.
  void check_matches(const Metadata& meta, const std::string& file) const;
};

// The Classifier inside `model` (throws naming the model's describe() when it is not one).
Classifier& as_classifier(Module& model);

// The plan for `model` (throws when unfreeze_top exceeds the block count, naming both).
FinetunePlan plan_finetune(Module& model, const FinetuneOptions& opts);

// Sets requires_grad of every parameter: frozen blocks false, the rest (and the head) true.
void apply_freezing(Module& model, const FinetunePlan& plan);

// model.train(on), then frozen blocks (and, with freeze_bn, every batchnorm of features) back to
// eval mode (see above). Use it instead of
// Module::train for a model with a plan.
void set_train_mode(Module& model, const FinetunePlan& plan, bool on = true);

// The optimizer's parameter groups: trainable parameters only, lrs as described above.
std::vector<ParamGroup> param_groups(Module& model, const FinetunePlan& plan, float lr);

}  // namespace fer
