// The training loop behind fer_train: epochs of shuffled, augmented batches through the model,
// the optimizer and its schedule, validation after every epoch, metrics appended to
// OUT/train_log.jsonl and OUT/train_log.csv, OUT/last.safetensors after every epoch and
// OUT/best.safetensors whenever validation accuracy improves, early stopping, and resumption.
//
// Recipe options: mixup / cutmix of the batches (data/batch_mix.h, mixed labels in the loss),
// distillation from teacher checkpoints (teacher.h, losses.h), and weight averages
// (weight_average.h): an EMA validated every epoch beside the raw weights (its best kept as
// OUT/best_ema.safetensors, its val columns in the logs), and SWA over the last epochs, written as
// OUT/swa.safetensors after a batchnorm refresh at the end of the run.
//
// Nothing is lost: --save-every writes OUT/last.safetensors inside epochs too; a kill -9 then
// loses at most that much; temporary files a killed save left behind are removed at the next
// start; the logs list an epoch only once its checkpoints are written; and SIGINT/SIGTERM stop
// the loop after the current step and save
// OUT/last.safetensors with the exact position (epoch, step within it, RNG state, optimizer
// moments, schedule state, running sums of the epoch's metrics), so `--resume` continues the
// same run step for step: with the same seed and thread count the curve is identical to an
// uninterrupted run.
//
// Transfer learning (apps/training/finetune.h): `finetune` freezes all or the first blocks of the
// model's features (no gradients, eval mode) and gives the optimizer only the trainable
// parameters, in groups with their own learning rates; the plan is checked on --resume. With
// `cache_features` (only when the whole of features is frozen) the frozen features of every
// training image (K augmented copies with cache_aug_passes = K) and every validation image are
// computed once before the first epoch (apps/training/feature_cache.h) and the head trains on them:
// the same epoch orders, batches, logs and checkpoints (of the full model: backbone + head) as an
// uncached run, at a fraction of the time per epoch.
//
// How a step runs (eager, replayed from CUDA graphs, or the head alone on cached features) is a
// strategy of train_step.h; this loop is the same for all three.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/training/checkpoint.h"
#include "apps/training/feature_cache.h"
#include "apps/training/finetune.h"
#include "data/augment.h"
#include "data/batch_mix.h"
#include "data/dataset.h"

namespace fer {

struct EpochRecord;

// Where a run is, as the live progress line shows it: what TrainOptions::on_progress receives after
// every step, and once more after each epoch's validation, logs and checkpoints (with epoch_end).
struct TrainProgress {
  int64_t epoch = 0, epochs = 0;  // 1-based
  int64_t step = 0, steps = 0;    // steps done in this epoch, of steps per epoch
  int64_t global_step = 0;
  double loss = 0, acc = 0;       // running means over the epoch's steps so far
  double lr = 0, images_per_s = 0, eta_seconds = 0;
  const EpochRecord* epoch_end = nullptr;  // set after an epoch: its record (validation included)
};

struct TrainOptions {
  ModelSpec spec;
  int64_t epochs = 40;
  int64_t batch_size = 64;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  float lr = 0.01f, momentum = 0.9f, weight_decay = 5e-4f;
  bool nesterov = true;
  std::string schedule = "cosine";  // none | step | cosine | onecycle | plateau
  int64_t warmup_epochs = 0;
  int64_t step_size = 10;           // StepLR: epochs per decay
  float gamma = 0.1f;               // StepLR decay
  float plateau_factor = 0.5f;
  int64_t plateau_patience = 3;
  float label_smoothing = 0.0f;
  bool class_weights = false;       // balanced class weights in the loss
  bool balanced_sampler = false;    // class-balanced sampling
  float clip_grad = 0.0f;           // max gradient norm, 0 = off
  int64_t patience = 0;             // early stopping after this many epochs without improvement
  data::AugmentOptions augment;
  data::MixOptions mix;             // mixup / cutmix of each batch (data/batch_mix.h)
  float ema_decay = 0.0f;           // EMA of the weights (weight_average.h), 0 = off
  int64_t swa_epochs = 0;           // SWA over the last N epochs, 0 = off
  std::vector<std::string> teachers;  // distillation from these checkpoints' mean soft labels
  float kd_temperature = 4.0f;      // softmax temperature of the soft labels
  float kd_weight = 0.5f;           // loss = (1 - w) CE + w T^2 KL
  FinetuneOptions finetune;         // frozen blocks and per-block learning rates
  bool cache_features = false;      // train the head on cached frozen features
  int64_t cache_aug_passes = 0;     // K augmented copies per training image (0: one clean pass)
  CacheDtype cache_dtype = CacheDtype::F32;
  int workers = 2;
  uint64_t seed = 1;
  std::string out_dir = "runs/fer";
  bool resume = false;
  // What defines the run (fer_train: its flags that change the trajectory, as text), stored in
  // OUT/last.safetensors as settings.*: --resume refuses a checkpoint written with other settings,
  // listing the differences, unless resume_force; `fresh` deletes OUT's checkpoints and logs first.
  Metadata settings;
  bool resume_force = false;
  bool fresh = false;
  std::string init_from;            // start from these weights (fresh optimizer and schedule)
  Device device = Device::CPU;
  bool cuda_graph = false;          // replay the training step from CUDA graphs (graphed_step.h)
  int64_t max_steps_per_epoch = 0;  // 0 = the whole epoch (tests and smoke runs use a few)
  // OUT/last.safetensors also in the middle of epochs: every N steps and/or every M minutes
  // (0 = only at the end of each epoch), so a crash loses minutes, not an epoch.
  int64_t save_every_steps = 0;
  double save_every_minutes = 0;
  bool progress = true;             // the live progress line on stderr
  // Called on the training thread after every step and every epoch (library callers: the Python
  // module's progress callback). It may call request_stop(): the run then stops after the current
  // step and saves, as on Ctrl-C. Not a setting of the run (never stored in checkpoints).
  std::function<void(const TrainProgress&)> on_progress;
  int64_t stop_at_step = 0;         // act as if Ctrl-C came after this global step (tests)
  int64_t crash_at_step = 0;        // throw after this global step, saving nothing, as a kill -9 would (tests)
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0,
         images_per_s = 0;
  double ema_val_loss = 0, ema_val_acc = 0;  // with an EMA of the weights
};

struct TrainResult {
  std::vector<EpochRecord> history;  // epochs run in this call
  double cache_seconds = 0;          // feature extraction wall time (cache_features)
  double best_val_acc = 0;
  int64_t best_epoch = 0;
  double best_ema_val_acc = 0;       // the EMA's best (OUT/best_ema.safetensors)
  int64_t best_ema_epoch = 0;
  double swa_val_acc = 0, swa_val_loss = 0;  // the SWA average after its batchnorm refresh
  std::string swa_path;              // OUT/swa.safetensors when written
  bool interrupted = false;
  bool already_complete = false;     // --resume found the run finished: nothing was trained
  bool early_stopped = false;
  std::string best_path, last_path;
};

TrainResult train(const TrainOptions& opts, std::shared_ptr<const data::Dataset> train_set,
                  std::shared_ptr<const data::Dataset> val_set);

// Installs SIGINT/SIGTERM handlers that ask train() to stop after the current step and save.
void install_stop_handlers();
void request_stop();  // what the handlers call (and tests)

}  // namespace fer
