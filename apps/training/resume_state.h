// What OUT/last.safetensors records of a training run in progress besides the weights and the
// optimizer's state, so that --resume takes exactly the steps an uninterrupted run would have
// taken: the position in the run (epoch, step, RNG state, the running sums of the epoch's metrics,
// the best accuracy so far), and the settings a resumed run must share with the one it continues.
#pragma once
#include <cstdint>
#include <string>

#include "apps/training/trainer.h"
#include "engine/optim.h"

namespace fer {

// The position and running sums saved in a checkpoint's metadata ("train.*").
struct RunPosition {
  int64_t epoch = 0;          // 0-based epoch in progress (or next to start)
  int64_t step_in_epoch = 0;  // batches of it already trained
  int64_t global_step = 0;
  double best_val_acc = -1;
  int64_t best_epoch = 0, bad_epochs = 0;
  double loss_sum = 0;        // over the epoch's trained batches, weighted by batch size
  int64_t correct = 0, seen = 0;
  float lr = 0;
  uint64_t rng = 0;           // the default generator's state (dropout); 0: nothing to restore
  // Weight averages (weight_average.h): the EMA's best validation accuracy so far, and how many
  // updates / snapshots each average holds (0 in runs from before they existed).
  double best_ema_val_acc = -1;
  int64_t best_ema_epoch = 0, ema_count = 0, swa_count = 0;
};

Metadata position_metadata(const RunPosition& p);
// Throws fer::Error naming the key when a value is missing, not a number or out of range (counts
// are whole numbers in [0, 2^53], the rest finite).
RunPosition position_from(const Metadata& m);

// The feature-cache settings ("cache.*"): a cached run trains on other augmentations than an
// uncached one, so --resume continues a run only under the same ones.
Metadata cache_metadata(const TrainOptions& o);
// Throws fer::Error naming `file` when its settings differ from o's. Checkpoints from before the
// cache existed were uncached.
void check_cache_matches(const TrainOptions& o, const Metadata& meta, const std::string& file);

}  // namespace fer
