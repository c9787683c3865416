// The training loop of trainer.h. Each call of train() is one TrainingRun: the constructor builds
// the model, the optimizer and the schedule; restore() resumes or initialises the weights; the
// epochs' steps go through a TrainStep strategy (train_step.h: eager, CUDA graphs, or the head on
// cached features); after every epoch come validation, the logs and the checkpoints.
#include "apps/training/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "apps/training/evaluate.h"
#include "apps/training/losses.h"
#include "apps/training/progress.h"
#include "apps/training/resume_state.h"
#include "apps/training/teacher.h"
#include "apps/training/train_step.h"
#include "apps/training/weight_average.h"
#include "data/class_balance.h"
#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/lr_schedule.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"

namespace fer {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }

std::unique_ptr<Optimizer> make_optimizer(const TrainOptions& o, std::vector<ParamGroup> groups) {
  if (o.optimizer == "sgd") return std::make_unique<SGD>(std::move(groups), o.lr, o.momentum, 0.0f, o.weight_decay, o.nesterov);
  if (o.optimizer == "adam") return std::make_unique<Adam>(std::move(groups), o.lr, 0.9f, 0.999f, 1e-8f, o.weight_decay);
  if (o.optimizer == "adamw") return std::make_unique<AdamW>(std::move(groups), o.lr, 0.9f, 0.999f, 1e-8f, o.weight_decay);
  fail("unknown optimizer '", o.optimizer, "' (expected sgd, adam or adamw)");
}

// Per-step schedules are indexed by the global step; "step" and "plateau" act per epoch.
std::unique_ptr<LrScheduler> make_schedule(const TrainOptions& o, int64_t steps_per_epoch) {
  const int64_t total = o.epochs * steps_per_epoch;
  if (o.schedule == "none" || o.schedule == "plateau") return nullptr;
  if (o.schedule == "step") return std::make_unique<StepLR>(o.lr, o.step_size * steps_per_epoch, o.gamma);
  if (o.schedule == "cosine") {
    // A warm-up as long as the whole run would leave no decay: keep at least one epoch of it.
    const int64_t warmup = std::min(o.warmup_epochs, o.epochs - 1);
    if (warmup < o.warmup_epochs)
      std::fprintf(stderr, "note: %lld warm-up epochs in a %lld-epoch run: warming up for %lld\n",
                   static_cast<long long>(o.warmup_epochs), static_cast<long long>(o.epochs),
                   static_cast<long long>(warmup));
    return std::make_unique<CosineLR>(o.lr, total, 0.0f, warmup * steps_per_epoch);
  }
  if (o.schedule == "onecycle") return std::make_unique<OneCycleLR>(o.lr, total);
  fail("unknown schedule '", o.schedule, "' (expected none, step, cosine, onecycle or plateau)");
}

// With an EMA of the weights, its validation loss and accuracy are two more columns.
// Temporary files of checkpoint saves that a kill interrupted (save_safetensors writes
// NAME.tmp.<pid> and renames it): nothing can still be writing them when a run starts in OUT.
void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(".safetensors.tmp.") == std::string::npos) continue;
    std::filesystem::remove(e.path(), ec);
    std::fprintf(stderr, "removed %s, left by an interrupted save\n", e.path().c_str());
  }
}

// --fresh: the checkpoints and logs of whatever run used OUT before.
void remove_previous_run(const std::string& dir) {
  int removed = 0;
  for (const char* name : {"last.safetensors", "best.safetensors", "best_ema.safetensors", "swa.safetensors",
                           "train_log.csv", "train_log.jsonl"})
    removed += std::filesystem::remove(std::filesystem::path(dir) / name) ? 1 : 0;
  if (removed > 0)
    std::fprintf(stderr, "--fresh: removed the previous run's checkpoints and logs from %s\n", dir.c_str());
}

// The differences between the settings a checkpoint was written with and this run's, as
// "--name A (now B)" items; empty when they agree. Checkpoints from before settings were stored
// have none, and are not compared.
std::string settings_differences(const Metadata& stored, const Metadata& now) {
  constexpr const char* kPrefix = "settings.";
  bool any_stored = false;
  std::map<std::string, std::pair<std::string, std::string>> all;  // name -> (then, now)
  for (const auto& [k, v] : stored)
    if (k.rfind(kPrefix, 0) == 0) all[k.substr(9)].first = v, any_stored = true;
  if (!any_stored) return "";
  for (const auto& [k, v] : now) all[k].second = v;
  std::string out;
  for (const auto& [name, values] : all)
    if (values.first != values.second)
      out += (out.empty() ? "" : ", ") + std::string("--") + name + " " +
             (values.first.empty() ? "(unset)" : values.first) + " (now " +
             (values.second.empty() ? "unset" : values.second) + ")";
  return out;
}

void append_logs(const std::string& dir, const EpochRecord& r, bool ema) {
  const std::string csv = dir + "/train_log.csv";
  const bool fresh = !std::filesystem::exists(csv);
  std::ofstream c(csv, std::ios::app);
  if (fresh)
    c << "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s"
      << (ema ? ",ema_val_loss,ema_val_acc" : "") << "\n";
  c << r.epoch << ',' << r.train_loss << ',' << r.train_acc << ',' << r.val_loss << ','
    << r.val_acc << ',' << r.lr << ',' << r.seconds << ',' << r.images_per_s;
  if (ema) c << ',' << r.ema_val_loss << ',' << r.ema_val_acc;
  c << '\n';
  std::ofstream j(dir + "/train_log.jsonl", std::ios::app);
  j << "{\"epoch\": " << r.epoch << ", \"train_loss\": " << r.train_loss << ", \"train_acc\": "
    << r.train_acc << ", \"val_loss\": " << r.val_loss << ", \"val_acc\": " << r.val_acc
    << ", \"lr\": " << r.lr << ", \"seconds\": " << r.seconds << ", \"images_per_s\": "
    << r.images_per_s;
  if (ema) j << ", \"ema_val_loss\": " << r.ema_val_loss << ", \"ema_val_acc\": " << r.ema_val_acc;
  j << "}\n";
  FER_CHECK(c.good() && j.good(), "cannot append to the training logs in ", dir);
}

class TrainingRun {
 public:
  TrainingRun(const TrainOptions& o, std::shared_ptr<const data::Dataset> train_set,
              std::shared_ptr<const data::Dataset> val_set);
  // --resume: continue from OUT/last.safetensors when it exists; otherwise start from --init's
  // weights when given.
  void restore();
  // Chooses the step strategy, once the weights are final (the feature cache depends on them);
  // false when a stop came during feature extraction.
  bool prepare_steps();
  int64_t first_epoch() const { return pos_.epoch; }
  // Trains epoch `epoch` from the position reached; false when asked to stop (OUT/last.safetensors
  // then holds the exact position).
  bool train_epoch(int64_t epoch);
  // Validation, logs, checkpoints, the plateau schedule; false when early stopping ends the run.
  bool finish_epoch(int64_t epoch);
  // After the last epoch: the SWA average's batchnorm refresh, validation and checkpoint.
  void finish_swa();
  TrainResult& result() { return result_; }

 private:
  // The loss of the batch just fetched, mixed and taught as the options say.
  LossFn batch_loss(const data::BatchMix& mix);
  void validate_ema(EpochRecord& r);
  bool save_due();  // --save-every: a mid-epoch OUT/last.safetensors now
  void start_averages();  // the EMA and SWA start from the weights restored
  void save_last(const RunPosition& p);
  // The live line on a terminal (rewritten in place); in a log (stderr not a terminal), the same
  // line as plain text every 30 s, so `nohup ... > log` shows progress without carriage returns.
  void print_progress(int64_t epoch);
  // The position, running metrics, rate and ETA that the line shows and on_progress receives.
  TrainProgress progress(int64_t epoch) const;
  bool terminal_ = ::isatty(::fileno(stderr)) == 1;
  Clock::time_point last_progress_line_ = Clock::now();

  const TrainOptions& o_;
  std::shared_ptr<const data::Dataset> train_set_, val_set_;
  TrainResult result_;
  std::shared_ptr<Module> model_;
  FinetunePlan plan_;
  std::unique_ptr<data::BatchLoader> loader_;
  int64_t steps_per_epoch_ = 0;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LrScheduler> schedule_;  // null: the lr changes per epoch, or never
  ReduceLROnPlateau plateau_;
  CrossEntropyOptions loss_opts_;
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<Teacher> teacher_;
  WeightAverage ema_, swa_;
  RunPosition pos_;
  Clock::time_point epoch_start_, last_save_;
  int64_t first_step_ = 0;  // the epoch's first step in this process (> 0 after a resume)
};

TrainingRun::TrainingRun(const TrainOptions& o, std::shared_ptr<const data::Dataset> train_set,
                         std::shared_ptr<const data::Dataset> val_set)
    : o_(o),
      train_set_(std::move(train_set)),
      val_set_(std::move(val_set)),
      plateau_("max", o.plateau_factor, o.plateau_patience) {
  FER_CHECK(train_set_ && train_set_->size() > 0, "train: the training set is empty");
  FER_CHECK(o.epochs > 0 && o.batch_size > 0, "train: epochs and batch size must be positive");
  FER_CHECK(o.cache_aug_passes == 0 || o.cache_features,
            "--cache-aug-passes needs --cache-features");
  o.mix.validate();
  FER_CHECK(!o.cache_features || (!o.mix.any() && o.teachers.empty() && o.spec.preprocess.crop == 0),
            "--mixup, --cutmix, --teacher and --crop-size need the images: not available with --cache-features");
  FER_CHECK(o.ema_decay >= 0 && o.ema_decay < 1, "--ema: decay must be in [0, 1), got ", o.ema_decay);
  FER_CHECK(o.swa_epochs >= 0 && o.swa_epochs <= o.epochs, "--swa-epochs: must be in [0, --epochs = ",
            o.epochs, "], got ", o.swa_epochs);
  FER_CHECK(o.kd_weight >= 0 && o.kd_weight <= 1, "--kd-weight: must be in [0, 1], got ", o.kd_weight);
  FER_CHECK(o.save_every_steps >= 0 && o.save_every_minutes >= 0, "--save-every: must not be negative");
  std::filesystem::create_directories(o.out_dir);
  if (o.fresh) remove_previous_run(o.out_dir);
  remove_stale_temporaries(o.out_dir);
  last_save_ = Clock::now();
  result_.best_path = o.out_dir + "/best.safetensors";
  result_.last_path = o.out_dir + "/last.safetensors";
  g_stop.store(false);

  // ---- Model and what trains ----------------------------------------------------------------
  manual_seed(o.seed);
  model_ = create_model(o.spec.name, o.spec.config);
  model_->to(o.device);
  plan_ = plan_finetune(*model_, o.finetune);
  apply_freezing(*model_, plan_);
  FER_CHECK(o.swa_epochs == 0 || !o.finetune.freezes(),
            "--swa-epochs: the batchnorm refresh would re-estimate frozen blocks' statistics; "
            "use SWA without frozen blocks");
  FER_CHECK(!o.cache_features || plan_.backbone_frozen(),
            "--cache-features needs the whole backbone frozen (--freeze-backbone without "
            "--unfreeze-top); ", plan_.trainable_blocks(), " blocks of features train in this run");

  // ---- Data: every step a full batch, so batchnorm never sees a tiny last one ----------------
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.balanced = o.balanced_sampler;
  lo.workers = o.workers;
  lo.seed = o.seed;
  lo.preprocess = o.spec.preprocess;
  lo.augment = o.augment;
  loader_ = std::make_unique<data::BatchLoader>(train_set_, lo);  // threads start with an epoch
  steps_per_epoch_ = loader_->batches_per_epoch();
  if (o.max_steps_per_epoch > 0) steps_per_epoch_ = std::min(steps_per_epoch_, o.max_steps_per_epoch);
  FER_CHECK(steps_per_epoch_ > 0, "train: ", train_set_->size(), " images make no batch of ", o.batch_size);

  // ---- Optimizer, schedule, loss -------------------------------------------------------------
  optimizer_ = make_optimizer(o, param_groups(*model_, plan_, o.lr));
  schedule_ = make_schedule(o, steps_per_epoch_);
  loss_opts_.label_smoothing = o.label_smoothing;
  if (o.class_weights) {
    const std::vector<float> w = data::balanced_class_weights(*train_set_);
    loss_opts_.class_weights = Tensor::from_vector({static_cast<int64_t>(w.size())}, w, o.device);
  }
  if (!o.teachers.empty()) {
    teacher_ = std::make_unique<Teacher>(o.teachers, o.spec, o.device);
    std::fprintf(stderr, "distillation from %zu teacher(s), T = %g, weight %g\n", teacher_->size(),
                 o.kd_temperature, o.kd_weight);
  }
  pos_.lr = o.lr;
}

void TrainingRun::restore() {
  const std::string& last = result_.last_path;
  if (o_.resume && std::filesystem::exists(last)) {
    LoadedCheckpoint ck = load_checkpoint(last, o_.device);
    FER_CHECK(ck.spec.name == o_.spec.name, "--resume: ", last, " holds a '", ck.spec.name,
              "' model, not '", o_.spec.name, "'");
    if (const std::string diff = settings_differences(ck.file.metadata, o_.settings); !diff.empty()) {
      FER_CHECK(o_.resume_force, "--resume: ", last, " was written by a run with other settings: ", diff,
                ". Continue it with this command's settings with --resume-force, start a new run in ",
                o_.out_dir, " with --fresh, or choose another --out");
      std::fprintf(stderr, "--resume-force: continuing %s with changed settings: %s\n", last.c_str(), diff.c_str());
    }
    plan_.check_matches(ck.file.metadata, last);
    check_cache_matches(o_, ck.file.metadata, last);
    model_->load_state_dict(ck.model->state_dict());
    optimizer_->load_state_dict(ck.file.tensors, ck.file.metadata);
    if (o_.schedule == "plateau") plateau_.from_metadata(ck.file.metadata);
    pos_ = position_from(ck.file.metadata);
    result_.best_val_acc = std::max(0.0, pos_.best_val_acc);
    result_.best_epoch = pos_.best_epoch;
    start_averages();
    if (ema_.defined() && !ema_.from_tensors(ck.file.tensors, "ema.", pos_.ema_count))
      std::fprintf(stderr, "note: %s holds no EMA of the weights: the EMA starts now\n", last.c_str());
    if (swa_.defined()) swa_.from_tensors(ck.file.tensors, "swa.", pos_.swa_count);
    std::fprintf(stderr, "resuming %s at epoch %lld, step %lld\n", last.c_str(),
                 static_cast<long long>(pos_.epoch + 1), static_cast<long long>(pos_.step_in_epoch));
    return;
  }
  if (o_.resume) std::fprintf(stderr, "--resume: no %s yet, starting a new run\n", last.c_str());
  if (!o_.init_from.empty()) {
    LoadedCheckpoint init = load_checkpoint(o_.init_from, o_.device);
    FER_CHECK(init.spec.name == o_.spec.name, "--init: ", o_.init_from, " holds a '",
              init.spec.name, "' model, not '", o_.spec.name, "'");
    model_->load_state_dict(init.model->state_dict());
    std::fprintf(stderr, "starting from the weights of %s\n", o_.init_from.c_str());
  }
  start_averages();
}

void TrainingRun::start_averages() {
  if (o_.ema_decay > 0) ema_ = WeightAverage(*model_);
  if (o_.swa_epochs > 0) swa_ = WeightAverage(*model_);
}

bool TrainingRun::prepare_steps() {
  if (o_.cache_features) {
    FeatureCacheOptions co;
    co.dtype = o_.cache_dtype;
    co.aug_passes = o_.cache_aug_passes;
    co.preprocess = o_.spec.preprocess;
    co.augment = o_.augment;
    co.seed = o_.seed;
    co.workers = o_.workers;
    co.device = o_.device;
    co.progress = o_.progress;
    co.stop = &g_stop;
    Classifier& classifier = as_classifier(*model_);
    FeatureCache cache = build_feature_cache(classifier, train_set_, val_set_, co);
    if (cache.interrupted) {
      std::fprintf(stderr, "\ninterrupted during feature extraction: nothing was trained and %s "
                   "was not touched\n", result_.last_path.c_str());
      result_.interrupted = true;
      return false;
    }
    result_.cache_seconds = cache.seconds;
    report_feature_cache(cache, co);
    step_ = std::make_unique<CachedHeadTrainStep>(classifier, *optimizer_, *loader_, std::move(cache),
                                                  *train_set_, o_.batch_size, o_.device);
  } else if (o_.cuda_graph) {
    step_ = std::make_unique<GraphedTrainStep>(*model_, *optimizer_, *loader_, o_.device,
                                               o_.spec.preprocess, o_.progress);
  } else {
    step_ = std::make_unique<EagerTrainStep>(*model_, *optimizer_, *loader_, o_.device, o_.spec.preprocess);
  }
  return true;
}

bool TrainingRun::train_epoch(int64_t epoch) {
  set_train_mode(*model_, plan_);
  step_->start_epoch(epoch, pos_.step_in_epoch);
  epoch_start_ = Clock::now();
  first_step_ = pos_.step_in_epoch;
  if (pos_.rng) default_generator().seed(pos_.rng), pos_.rng = 0;  // resumed: dropout goes on

  while (pos_.step_in_epoch < steps_per_epoch_ && step_->next_batch()) {
    if (schedule_) pos_.lr = schedule_->lr_at(pos_.global_step);
    optimizer_->set_lr(pos_.lr);
    const data::Batch& batch = step_->batch();
    const data::BatchMix mix = data::draw_batch_mix(
        o_.mix, batch.size(), step_->inputs().size(-2), step_->inputs().size(-1), o_.seed,
        static_cast<uint64_t>(pos_.global_step));
    step_->mix_batch(mix);
    const StepOutput out = step_->forward_backward(batch_loss(mix));
    if (o_.clip_grad > 0) clip_grad_norm(optimizer_->params(), o_.clip_grad);
    optimizer_->step();
    step_->after_update();
    if (ema_.defined()) ema_.update_ema(*model_, o_.ema_decay, pos_.ema_count++);

    // Running metrics of the epoch.
    const std::vector<float> lg = out.logits.to_vector(), lb = batch.labels.to_vector();
    const int64_t C = out.logits.size(1);
    for (int64_t i = 0; i < batch.size(); ++i) {
      const float* row = lg.data() + i * C;
      pos_.correct += (std::max_element(row, row + C) - row) == static_cast<int64_t>(lb[i]);
    }
    pos_.loss_sum += static_cast<double>(out.loss.item()) * batch.size();
    pos_.seen += batch.size();
    ++pos_.step_in_epoch;
    ++pos_.global_step;

    if (o_.progress) print_progress(epoch);
    if (o_.on_progress) o_.on_progress(progress(epoch));
    if (save_due() && pos_.step_in_epoch < steps_per_epoch_) save_last(pos_);  // the epoch's end saves anyway
    if (o_.crash_at_step > 0 && pos_.global_step == o_.crash_at_step)
      fail("train: simulated crash after step ", pos_.global_step);
    if (g_stop.load() || (o_.stop_at_step > 0 && pos_.global_step == o_.stop_at_step)) {
      save_last(pos_);
      std::fprintf(stderr, "\ninterrupted: saved %s (epoch %lld, step %lld); continue with --resume\n",
                   result_.last_path.c_str(), static_cast<long long>(epoch + 1),
                   static_cast<long long>(pos_.step_in_epoch));
      result_.interrupted = true;
      return false;
    }
  }
  if (o_.progress && terminal_) std::fprintf(stderr, "\n");
  return true;
}

bool TrainingRun::save_due() {
  const bool by_steps = o_.save_every_steps > 0 && pos_.global_step % o_.save_every_steps == 0;
  const bool by_time = o_.save_every_minutes > 0 && seconds_since(last_save_) >= 60.0 * o_.save_every_minutes;
  return by_steps || by_time;
}

LossFn TrainingRun::batch_loss(const data::BatchMix& mix) {
  const Tensor y = step_->batch().labels.to(o_.device);
  const Tensor y_partner = mix.active() ? data::partner_labels(mix, step_->batch().labels).to(o_.device) : Tensor();
  const Tensor soft = teacher_ ? teacher_->soft_labels(step_->inputs(), o_.kd_temperature) : Tensor();
  return [this, y, y_partner, soft, lambda = mix.lambda](const Tensor& logits) {
    Tensor loss = y_partner.defined() ? mixed_cross_entropy(logits, y, y_partner, lambda, loss_opts_)
                                      : cross_entropy(logits, y, loss_opts_);
    if (soft.defined())
      loss = add(scale(loss, 1.0f - o_.kd_weight),
                 scale(distillation_loss(logits, soft, o_.kd_temperature), o_.kd_weight));
    return loss;
  };
}

TrainProgress TrainingRun::progress(int64_t epoch) const {
  TrainProgress p;
  p.epoch = epoch + 1;
  p.epochs = o_.epochs;
  p.step = pos_.step_in_epoch;
  p.steps = steps_per_epoch_;
  p.global_step = pos_.global_step;
  p.loss = pos_.loss_sum / std::max<int64_t>(pos_.seen, 1);
  p.acc = static_cast<double>(pos_.correct) / std::max<int64_t>(pos_.seen, 1);
  p.lr = pos_.lr;
  const double el = seconds_since(epoch_start_);
  const int64_t done = pos_.step_in_epoch - first_step_;
  p.images_per_s = done * o_.batch_size / std::max(el, 1e-9);
  const double per_step = el / std::max<int64_t>(done, 1);
  p.eta_seconds = per_step * ((steps_per_epoch_ - pos_.step_in_epoch) +
                               (o_.epochs - epoch - 1) * steps_per_epoch_);
  return p;
}

void TrainingRun::print_progress(int64_t epoch) {
  if (!terminal_) {
    if (seconds_since(last_progress_line_) < 30.0) return;
    last_progress_line_ = Clock::now();
  }
  const TrainProgress p = progress(epoch);
  std::fprintf(stderr, terminal_ ? "\repoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %s   "
                                 : "epoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %s\n",
               static_cast<long long>(p.epoch), static_cast<long long>(p.epochs),
               static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.acc,
               p.images_per_s, format_duration(p.eta_seconds).c_str());
}

bool TrainingRun::finish_epoch(int64_t epoch) {
  EpochRecord r;
  r.epoch = epoch + 1;
  r.train_loss = pos_.loss_sum / std::max<int64_t>(pos_.seen, 1);
  r.train_acc = static_cast<double>(pos_.correct) / std::max<int64_t>(pos_.seen, 1);
  r.lr = pos_.lr;
  r.seconds = seconds_since(epoch_start_);
  r.images_per_s = (pos_.step_in_epoch - first_step_) * o_.batch_size / std::max(r.seconds, 1e-9);
  if (val_set_ && val_set_->size() > 0) {
    const Predictions p = step_->validate(*val_set_);
    r.val_loss = p.loss;
    r.val_acc = p.accuracy;
  } else {
    r.val_acc = r.train_acc;  // no validation data: select on training accuracy
    r.val_loss = r.train_loss;
  }
  if (ema_.defined()) validate_ema(r);
  if (swa_.defined() && epoch >= o_.epochs - o_.swa_epochs) {
    swa_.add_snapshot(*model_);
    pos_.swa_count = swa_.count();
  }

  if (r.val_acc > pos_.best_val_acc) {
    pos_.best_val_acc = r.val_acc;
    pos_.best_epoch = r.epoch;
    pos_.bad_epochs = 0;
    Metadata meta{{"train.epoch", std::to_string(r.epoch)}, {"val_acc", metadata_str(r.val_acc)}};
    for (const auto& [k, v] : plan_.to_metadata()) meta[k] = v;
    save_checkpoint(result_.best_path, *model_, o_.spec, {}, meta);
  } else {
    ++pos_.bad_epochs;
  }
  if (o_.schedule == "plateau") pos_.lr = plateau_.step(static_cast<float>(r.val_acc), pos_.lr);
  // The position of the next epoch's start, saved: a resume from here starts that epoch.
  RunPosition next = pos_;
  next.epoch = epoch + 1;
  next.step_in_epoch = 0;
  next.loss_sum = 0;
  next.correct = next.seen = 0;
  save_last(next);
  // Logged only now that the epoch's checkpoints are on disk: a failed save (a full disk) stops
  // the run with an error before the log could list an epoch that has none.
  append_logs(o_.out_dir, r, ema_.defined());
  result_.history.push_back(r);
  std::fprintf(stderr, "epoch %lld: train loss %.4f acc %.4f | val loss %.4f acc %.4f | ",
               static_cast<long long>(r.epoch), r.train_loss, r.train_acc, r.val_loss, r.val_acc);
  if (ema_.defined()) std::fprintf(stderr, "ema val loss %.4f acc %.4f | ", r.ema_val_loss, r.ema_val_acc);
  std::fprintf(stderr, "lr %.5f | %.0f s\n", r.lr, r.seconds);
  if (o_.on_progress) {
    TrainProgress p = progress(epoch);
    p.epoch_end = &result_.history.back();
    o_.on_progress(p);
  }
  pos_ = next;
  pos_.rng = 0;  // the generator already holds this state
  result_.best_val_acc = pos_.best_val_acc;
  result_.best_epoch = pos_.best_epoch;
  result_.best_ema_val_acc = std::max(0.0, pos_.best_ema_val_acc);
  result_.best_ema_epoch = pos_.best_ema_epoch;
  if (o_.patience > 0 && pos_.bad_epochs >= o_.patience) {
    std::fprintf(stderr, "early stopping: no improvement for %lld epochs (best %.4f at epoch %lld)\n",
                 static_cast<long long>(pos_.bad_epochs), pos_.best_val_acc,
                 static_cast<long long>(pos_.best_epoch));
    result_.early_stopped = true;
    return false;
  }
  return true;
}

// The EMA's weights validated as the raw ones were; its best is kept as OUT/best_ema.safetensors.
// (Validation sets no gradients and the raw weights come back before the next step.)
void TrainingRun::validate_ema(EpochRecord& r) {
  {
    SwappedWeights swap(*model_, ema_.state());
    if (val_set_ && val_set_->size() > 0) {
      const Predictions p = step_->validate(*val_set_);
      r.ema_val_loss = p.loss;
      r.ema_val_acc = p.accuracy;
    }
  }
  if (r.ema_val_acc <= pos_.best_ema_val_acc) return;
  pos_.best_ema_val_acc = r.ema_val_acc;
  pos_.best_ema_epoch = r.epoch;
  SwappedWeights swap(*model_, ema_.state());
  Metadata meta{{"train.epoch", std::to_string(r.epoch)}, {"val_acc", metadata_str(r.ema_val_acc)},
                {"train.weights", "ema"}, {"train.ema_decay", metadata_str(o_.ema_decay)}};
  for (const auto& [k, v] : plan_.to_metadata()) meta[k] = v;
  save_checkpoint(o_.out_dir + "/best_ema.safetensors", *model_, o_.spec, {}, meta);
}

void TrainingRun::finish_swa() {
  if (!swa_.defined() || swa_.count() == 0) return;
  SwappedWeights swap(*model_, swa_.state());
  // Batchnorm statistics of the averaged weights: one pass over the training images as the
  // next epoch would draw them (augmented, unmixed).
  data::BatchLoader& loader = *loader_;
  loader.start_epoch(o_.epochs);
  data::Batch batch;
  const int64_t batches = refresh_batchnorm_statistics(*model_, [&]() {
    return loader.next(batch) ? batch.images.to(o_.device) : Tensor();
  });
  if (val_set_ && val_set_->size() > 0) {
    const Predictions p = step_->validate(*val_set_);
    result_.swa_val_acc = p.accuracy;
    result_.swa_val_loss = p.loss;
  }
  result_.swa_path = o_.out_dir + "/swa.safetensors";
  Metadata meta{{"train.epoch", std::to_string(o_.epochs)}, {"val_acc", metadata_str(result_.swa_val_acc)},
                {"train.weights", "swa"}, {"train.swa_epochs", std::to_string(swa_.count())}};
  save_checkpoint(result_.swa_path, *model_, o_.spec, {}, meta);
  std::fprintf(stderr, "swa: mean of the last %lld epochs' weights, batchnorm refreshed on %lld batches: "
               "val loss %.4f acc %.4f -> %s\n", static_cast<long long>(swa_.count()),
               static_cast<long long>(batches), result_.swa_val_loss, result_.swa_val_acc,
               result_.swa_path.c_str());
}

// OUT/last.safetensors: the model, the optimizer's state, and in the metadata everything a
// resume needs to take the same steps: the position, the RNG, the schedule, the plan, the cache.
void TrainingRun::save_last(const RunPosition& p) {
  RunPosition q = p;
  q.rng = default_generator().state();
  Metadata meta = position_metadata(q);
  for (const auto& [k, v] : optimizer_->metadata()) meta[k] = v;
  if (o_.schedule == "plateau")
    for (const auto& [k, v] : plateau_.to_metadata()) meta[k] = v;
  for (const auto& [k, v] : plan_.to_metadata()) meta[k] = v;
  for (const auto& [k, v] : cache_metadata(o_)) meta[k] = v;
  for (const auto& [k, v] : o_.settings) meta["settings." + k] = v;
  StateDict state = optimizer_->state_dict();
  if (ema_.defined()) state.merge(ema_.to_tensors("ema."));
  if (swa_.defined()) state.merge(swa_.to_tensors("swa."));
  save_checkpoint(result_.last_path, *model_, o_.spec, state, meta);
  last_save_ = Clock::now();
}

}  // namespace

void request_stop() { g_stop.store(true); }

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

TrainResult train(const TrainOptions& o, std::shared_ptr<const data::Dataset> train_set,
                  std::shared_ptr<const data::Dataset> val_set) {
  TrainingRun run(o, std::move(train_set), std::move(val_set));
  run.restore();
  if (o.resume && run.first_epoch() >= o.epochs) {
    TrainResult& r = run.result();
    r.already_complete = true;
    std::fprintf(stderr, "%s: this run is complete (%lld epochs; best val accuracy %.4f at epoch %lld): nothing "
                 "to train. --epochs N --resume-force extends it; --fresh starts over.\n", o.out_dir.c_str(),
                 static_cast<long long>(o.epochs), r.best_val_acc, static_cast<long long>(r.best_epoch));
    return r;
  }
  if (!run.prepare_steps()) return run.result();
  for (int64_t epoch = run.first_epoch(); epoch < o.epochs; ++epoch)
    if (!run.train_epoch(epoch) || !run.finish_epoch(epoch)) break;
  if (!run.result().interrupted) run.finish_swa();  // also after early stopping
  return run.result();
}

}  // namespace fer
