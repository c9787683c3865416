// Inference over a whole data set: class probabilities for every face, with optional test-time
// augmentation (TTA). Used by fer_train (validation each epoch) and fer_eval (reports).
//   none     one pass
//   flip     average of the face and its mirror image
//   tencrop  average over the 4 corner crops and the centre crop (each resized back to the
//            model's input) and their mirrors, as torchvision's TenCrop
// A model trained on crops of the face (PreprocessOptions::crop) sees the centre crop (none, flip)
// or the ten crops of that size themselves, unresized (tencrop), as Khaireddin and Chen evaluate.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/preprocess.h"
#include "layers/module.h"

namespace fer {

enum class Tta { None, Flip, TenCrop };
Tta parse_tta(const std::string& name);  // "none" | "flip" | "tencrop"

struct Predictions {
  int64_t num_classes = 0;
  std::vector<float> probs;  // N x num_classes, rows sum to 1
  std::vector<int> labels;   // true labels
  std::vector<int> predicted;
  double loss = 0;           // mean cross-entropy of the probabilities
  double accuracy = 0;
};

// Fills predicted (the most probable class), loss (mean cross-entropy) and accuracy from probs and
// labels.
void score(Predictions& predictions);

// Puts the model in eval mode for the pass (and restores its mode afterwards). `progress`, when
// given, is called after every batch with the faces done and their total.
using BatchProgress = std::function<void(int64_t done, int64_t total)>;
Predictions predict_dataset(Module& model, const data::Dataset& data,
                            const data::PreprocessOptions& preprocess, Device device,
                            int64_t batch_size = 256, Tta tta = Tta::None,
                            const BatchProgress& progress = {});

// An ensemble: the mean of several models' probabilities on the same faces, scored again.
Predictions average_predictions(const std::vector<Predictions>& members);

// The model's probabilities for a batch of preprocessed faces [N, 1, H, W] (on any device),
// averaged over the TTA views; returns [N, C] on the CPU. `crop` > 0: the model reads crop x crop
// windows of the faces (see above).
Tensor predict_batch(Module& model, const Tensor& faces, Tta tta, int64_t crop = 0);

}  // namespace fer
