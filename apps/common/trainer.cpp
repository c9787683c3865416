#include "apps/common/trainer.h"

#include "apps/common/progress.h"

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/common/evaluate.h"
#include "apps/common/graphed_step.h"
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

Metadata cache_metadata(const TrainOptions& o) {
  return {{"cache.features", o.cache_features ? "1" : "0"},
          {"cache.aug_passes", std::to_string(o.cache_aug_passes)}};
}

// --resume continues a run exactly only under the same feature cache (the cached run trains on
// other augmentations). Checkpoints from before the cache existed were uncached.
void check_cache_matches(const TrainOptions& o, const Metadata& meta, const std::string& file) {
  for (const auto& [key, value] : cache_metadata(o)) {
    auto it = meta.find(key);
    const std::string theirs = it == meta.end() ? "0" : it->second;
    FER_CHECK(theirs == value, file, " was written with ", key, " = ", theirs, ", this run has ",
              value, ": resume with the same --cache-features / --cache-aug-passes flags");
  }
}

// The process's peak resident memory (Linux: VmHWM of /proc/self/status), or "unknown".
std::string peak_memory() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      const long long kb = std::atoll(line.c_str() + 6);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f MiB", kb / 1024.0);
      return buf;
    }
  return "unknown";
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

// The position and running sums saved in a checkpoint's metadata.
struct Position {
  int64_t epoch = 0;          // 0-based epoch in progress (or next to start)
  int64_t step_in_epoch = 0;  // batches of it already trained
  int64_t global_step = 0;
  double best_val_acc = -1;
  int64_t best_epoch = 0, bad_epochs = 0;
  double loss_sum = 0;        // over the epoch's trained batches, weighted by batch size
  int64_t correct = 0, seen = 0;
  float lr = 0;
  uint64_t rng = 0;
};

Metadata position_metadata(const Position& p) {
  return {{"train.epoch", std::to_string(p.epoch)},
          {"train.step_in_epoch", std::to_string(p.step_in_epoch)},
          {"train.global_step", std::to_string(p.global_step)},
          {"train.best_val_acc", metadata_str(p.best_val_acc)},
          {"train.best_epoch", std::to_string(p.best_epoch)},
          {"train.bad_epochs", std::to_string(p.bad_epochs)},
          {"train.loss_sum", metadata_str(p.loss_sum)},
          {"train.correct", std::to_string(p.correct)},
          {"train.seen", std::to_string(p.seen)},
          {"train.lr", metadata_str(p.lr)},
          {"train.rng", std::to_string(p.rng)}};
}

Position position_from(const Metadata& m) {
  Position p;
  p.epoch = metadata_int(m, "train.epoch");
  p.step_in_epoch = metadata_int(m, "train.step_in_epoch");
  p.global_step = metadata_int(m, "train.global_step");
  p.best_val_acc = metadata_double(m, "train.best_val_acc");
  p.best_epoch = metadata_int(m, "train.best_epoch");
  p.bad_epochs = metadata_int(m, "train.bad_epochs");
  p.loss_sum = metadata_double(m, "train.loss_sum");
  p.correct = metadata_int(m, "train.correct");
  p.seen = metadata_int(m, "train.seen");
  p.lr = static_cast<float>(metadata_double(m, "train.lr"));
  p.rng = std::stoull(metadata_get(m, "train.rng"));
  return p;
}

void append_logs(const std::string& dir, const EpochRecord& r) {
  const std::string csv = dir + "/train_log.csv";
  const bool fresh = !std::filesystem::exists(csv);
  std::ofstream c(csv, std::ios::app);
  if (fresh) c << "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s\n";
  c << r.epoch << ',' << r.train_loss << ',' << r.train_acc << ',' << r.val_loss << ','
    << r.val_acc << ',' << r.lr << ',' << r.seconds << ',' << r.images_per_s << '\n';
  std::ofstream j(dir + "/train_log.jsonl", std::ios::app);
  j << "{\"epoch\": " << r.epoch << ", \"train_loss\": " << r.train_loss << ", \"train_acc\": "
    << r.train_acc << ", \"val_loss\": " << r.val_loss << ", \"val_acc\": " << r.val_acc
    << ", \"lr\": " << r.lr << ", \"seconds\": " << r.seconds << ", \"images_per_s\": "
    << r.images_per_s << "}\n";
  FER_CHECK(c.good() && j.good(), "cannot append to the training logs in ", dir);
}
}  // namespace

void request_stop() { g_stop.store(true); }

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

TrainResult train(const TrainOptions& o, std::shared_ptr<const data::Dataset> train_set,
                  std::shared_ptr<const data::Dataset> val_set) {
  FER_CHECK(train_set && train_set->size() > 0, "train: the training set is empty");
  FER_CHECK(o.epochs > 0 && o.batch_size > 0, "train: epochs and batch size must be positive");
  FER_CHECK(o.cache_aug_passes == 0 || o.cache_features,
            "--cache-aug-passes needs --cache-features");
  std::filesystem::create_directories(o.out_dir);
  TrainResult result;
  result.best_path = o.out_dir + "/best.safetensors";
  result.last_path = o.out_dir + "/last.safetensors";
  g_stop.store(false);

  // ---- Model, what trains, data, optimizer, schedule ---------------------------------------
  manual_seed(o.seed);
  std::shared_ptr<Module> model = create_model(o.spec.name, o.spec.config);
  model->to(o.device);
  const FinetunePlan plan = plan_finetune(*model, o.finetune);
  apply_freezing(*model, plan);
  Classifier& classifier = as_classifier(*model);
  FER_CHECK(!o.cache_features || plan.backbone_frozen(),
            "--cache-features needs the whole backbone frozen (--freeze-backbone without "
            "--unfreeze-top); ", plan.trainable_blocks(), " blocks of features train in this run");
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = true;
  lo.drop_last = true;  // equal batches: batchnorm statistics never see a tiny last batch
  lo.balanced = o.balanced_sampler;
  lo.workers = o.workers;
  lo.seed = o.seed;
  lo.preprocess = o.spec.preprocess;
  lo.augment = o.augment;
  // With the cache the loader only supplies each epoch's order (no threads are started).
  data::BatchLoader loader(train_set, lo);
  int64_t steps_per_epoch = loader.batches_per_epoch();
  if (o.max_steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, o.max_steps_per_epoch);
  FER_CHECK(steps_per_epoch > 0, "train: ", train_set->size(), " images make no batch of ", o.batch_size);

  auto optimizer = make_optimizer(o, param_groups(*model, plan, o.lr));
  auto schedule = make_schedule(o, steps_per_epoch);
  ReduceLROnPlateau plateau("max", o.plateau_factor, o.plateau_patience);
  CrossEntropyOptions loss_opts;
  loss_opts.label_smoothing = o.label_smoothing;
  if (o.class_weights) {
    const std::vector<float> w = data::balanced_class_weights(*train_set);
    loss_opts.class_weights = Tensor::from_vector({static_cast<int64_t>(w.size())}, w, o.device);
  }

  // ---- Resume ------------------------------------------------------------------------------
  Position pos;
  pos.lr = o.lr;
  if (o.resume && std::filesystem::exists(result.last_path)) {
    LoadedCheckpoint ck = load_checkpoint(result.last_path, o.device);
    FER_CHECK(ck.spec.name == o.spec.name, "--resume: ", result.last_path, " holds a '",
              ck.spec.name, "' model, not '", o.spec.name, "'");
    plan.check_matches(ck.file.metadata, result.last_path);
    check_cache_matches(o, ck.file.metadata, result.last_path);
    model->load_state_dict(ck.model->state_dict());
    optimizer->load_state_dict(ck.file.tensors, ck.file.metadata);
    if (o.schedule == "plateau") plateau.from_metadata(ck.file.metadata);
    pos = position_from(ck.file.metadata);
    result.best_val_acc = std::max(0.0, pos.best_val_acc);
    result.best_epoch = pos.best_epoch;
    std::fprintf(stderr, "resuming %s at epoch %lld, step %lld\n", result.last_path.c_str(),
                 static_cast<long long>(pos.epoch + 1), static_cast<long long>(pos.step_in_epoch));
  } else {
    if (o.resume)
      std::fprintf(stderr, "--resume: no %s yet, starting a new run\n", result.last_path.c_str());
    if (!o.init_from.empty()) {
      LoadedCheckpoint init = load_checkpoint(o.init_from, o.device);
      FER_CHECK(init.spec.name == o.spec.name, "--init: ", o.init_from, " holds a '",
                init.spec.name, "' model, not '", o.spec.name, "'");
      model->load_state_dict(init.model->state_dict());
      std::fprintf(stderr, "starting from the weights of %s\n", o.init_from.c_str());
    }
  }

  // ---- Feature cache (after the weights are final: --init / --resume) -----------------------
  FeatureCache cache;
  if (o.cache_features) {
    FeatureCacheOptions co;
    co.dtype = o.cache_dtype;
    co.aug_passes = o.cache_aug_passes;
    co.preprocess = o.spec.preprocess;
    co.augment = o.augment;
    co.seed = o.seed;
    co.workers = o.workers;
    co.device = o.device;
    co.progress = o.progress;
    co.stop = &g_stop;
    cache = build_feature_cache(classifier, train_set, val_set, co);
    if (cache.interrupted) {
      std::fprintf(stderr, "\ninterrupted during feature extraction: nothing was trained and %s "
                   "was not touched\n", result.last_path.c_str());
      result.interrupted = true;
      return result;
    }
    result.cache_seconds = cache.seconds;
    std::fprintf(stderr, "feature cache: %s, extracted in %s (%.0f img/s); process peak memory %s\n",
                 cache.describe().c_str(), format_duration(cache.seconds).c_str(),
                 (static_cast<double>(cache.train_passes.size() * train_set->size()) +
                  static_cast<double>(cache.val.rows())) / std::max(cache.seconds, 1e-9),
                 peak_memory().c_str());
    if (const int64_t lost = cache.lost_values(); lost > 0)
      std::fprintf(stderr, "warning: %lld cached features were outside float16's range (became 0 or "
                   "infinite): use --cache-dtype float32\n", static_cast<long long>(lost));
    if (o.cache_aug_passes == 0 && o.augment.any())
      std::fprintf(stderr, "note: --cache-aug-passes 0: the head trains on un-augmented features "
                   "(the augmentation flags apply to the cached passes only)\n");
  }
  std::vector<float> train_labels(train_set->labels.begin(), train_set->labels.end());

  auto save_last = [&](const Position& p) {
    Position q = p;
    q.rng = default_generator().state();
    Metadata meta = position_metadata(q);
    for (const auto& [k, v] : optimizer->metadata()) meta[k] = v;
    if (o.schedule == "plateau")
      for (const auto& [k, v] : plateau.to_metadata()) meta[k] = v;
    for (const auto& [k, v] : plan.to_metadata()) meta[k] = v;
    for (const auto& [k, v] : cache_metadata(o)) meta[k] = v;
    save_checkpoint(result.last_path, *model, o.spec, optimizer->state_dict(), meta);
  };

  // ---- Epochs --------------------------------------------------------------------------------
  // CUDA graphs replay fixed shapes: every batch has batch_size images (drop_last above).
  const bool use_graphs = o.cuda_graph && !o.cache_features;
  std::unique_ptr<GraphedStep> graphed;
  for (int64_t epoch = pos.epoch; epoch < o.epochs; ++epoch) {
    set_train_mode(*model, plan);
    std::vector<int64_t> order;          // cached: the epoch's item order, cut into batches
    const FeatureTable* table = nullptr;  // cached: this epoch's pass
    if (o.cache_features) {
      order = loader.epoch_order(epoch);
      table = &cache.train_for_epoch(epoch);
    } else {
      loader.start_epoch(epoch);
    }
    const auto epoch_start = Clock::now();
    if (epoch != pos.epoch) {  // a fresh epoch (not the one we resumed into)
      pos.step_in_epoch = 0;
      pos.loss_sum = 0;
      pos.correct = pos.seen = 0;
    }
    if (pos.rng) default_generator().seed(pos.rng), pos.rng = 0;
    data::Batch batch;
    if (!o.cache_features)
      for (int64_t s = 0; s < pos.step_in_epoch; ++s) loader.next(batch);  // skip what was trained
    const int64_t first_step = pos.step_in_epoch;

    // The next batch: images for the whole model, or cached features for the head.
    auto next_batch = [&](Tensor& x) -> bool {
      if (!o.cache_features) {
        if (!loader.next(batch)) return false;
        // Graph replays copy the host batch into their recorded input themselves.
        x = graphed ? batch.images : batch.images.to(o.device);
        return true;
      }
      const size_t first = static_cast<size_t>(pos.step_in_epoch * o.batch_size);
      if (first + static_cast<size_t>(o.batch_size) > order.size()) return false;
      batch.indices.assign(order.begin() + static_cast<std::ptrdiff_t>(first),
                           order.begin() + static_cast<std::ptrdiff_t>(first + o.batch_size));
      std::vector<float> y(batch.indices.size());
      for (size_t i = 0; i < y.size(); ++i) y[i] = train_labels[static_cast<size_t>(batch.indices[i])];
      batch.labels = Tensor::from_vector({static_cast<int64_t>(y.size())}, y);
      x = table->gather(batch.indices, o.device);
      return true;
    };

    Tensor x;
    while (pos.step_in_epoch < steps_per_epoch && next_batch(x)) {
      if (schedule) pos.lr = schedule->lr_at(pos.global_step);
      optimizer->set_lr(pos.lr);
      Tensor y = batch.labels.to(o.device);
      auto loss_of = [&](const Tensor& logits) { return cross_entropy(logits, y, loss_opts); };
      Tensor logits, loss;
      if (graphed) {
        GraphedStep::Output out = graphed->run(x, default_generator().next_u64(), loss_of);
        logits = out.logits, loss = out.loss;
      } else {
        optimizer->zero_grad();
        logits = o.cache_features ? head_forward(classifier, x) : model->forward(x);
        loss = loss_of(logits);
        loss.backward();
      }
      if (o.clip_grad > 0) clip_grad_norm(optimizer->params(), o.clip_grad);
      optimizer->step();
      // --cuda-graph: the first step of the run went eagerly (cuDNN chose its algorithms); the
      // following ones replay it from graphs.
      if (use_graphs && !graphed) {
        graphed = GraphedStep::record(*model, x.shape(), o.device);
        FER_CHECK(graphed != nullptr, "--cuda-graph: the ", device_name(o.device),
                  " backend cannot record graphs");
        std::fprintf(stderr, "%scuda graphs: training step recorded for batches of %s\n",
                     o.progress ? "\n" : "", x.shape_str().c_str());
      }

      // Running metrics of the epoch.
      const std::vector<float> lg = logits.to_vector(), lb = batch.labels.to_vector();
      const int64_t C = logits.size(1);
      for (int64_t i = 0; i < batch.size(); ++i) {
        const float* row = lg.data() + i * C;
        pos.correct += (std::max_element(row, row + C) - row) == static_cast<int64_t>(lb[i]);
      }
      pos.loss_sum += static_cast<double>(loss.item()) * batch.size();
      pos.seen += batch.size();
      ++pos.step_in_epoch;
      ++pos.global_step;

      if (o.progress) {
        const double el = seconds_since(epoch_start);
        const int64_t done = pos.step_in_epoch - first_step;
        const double rate = done * o.batch_size / std::max(el, 1e-9);
        const double per_step = el / std::max<int64_t>(done, 1);
        const double eta = per_step * ((steps_per_epoch - pos.step_in_epoch) +
                                       (o.epochs - epoch - 1) * steps_per_epoch);
        std::fprintf(stderr, "\repoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %s   ",
                     static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                     static_cast<long long>(pos.step_in_epoch), static_cast<long long>(steps_per_epoch),
                     pos.loss_sum / pos.seen, static_cast<double>(pos.correct) / pos.seen, rate,
                     format_duration(eta).c_str());
      }
      if (g_stop.load() || (o.stop_at_step > 0 && pos.global_step == o.stop_at_step)) {
        save_last(pos);
        std::fprintf(stderr, "\ninterrupted: saved %s (epoch %lld, step %lld); continue with --resume\n",
                     result.last_path.c_str(), static_cast<long long>(epoch + 1),
                     static_cast<long long>(pos.step_in_epoch));
        result.interrupted = true;
        return result;
      }
    }
    if (o.progress) std::fprintf(stderr, "\n");

    // ---- End of epoch: validate, log, checkpoint, schedule, early stopping ------------------
    EpochRecord r;
    r.epoch = epoch + 1;
    r.train_loss = pos.loss_sum / std::max<int64_t>(pos.seen, 1);
    r.train_acc = static_cast<double>(pos.correct) / std::max<int64_t>(pos.seen, 1);
    r.lr = pos.lr;
    r.seconds = seconds_since(epoch_start);
    r.images_per_s = (pos.step_in_epoch - first_step) * o.batch_size / std::max(r.seconds, 1e-9);
    if (val_set && val_set->size() > 0) {
      const Predictions p = o.cache_features
                                ? predict_cached(classifier, cache.val, val_set->labels, o.device)
                                : predict_dataset(*model, *val_set, o.spec.preprocess, o.device);
      r.val_loss = p.loss;
      r.val_acc = p.accuracy;
    } else {
      r.val_acc = r.train_acc;  // no validation data: select on training accuracy
      r.val_loss = r.train_loss;
    }
    append_logs(o.out_dir, r);
    result.history.push_back(r);
    std::fprintf(stderr, "epoch %lld: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.5f | %.0f s\n",
                 static_cast<long long>(r.epoch), r.train_loss, r.train_acc, r.val_loss, r.val_acc,
                 r.lr, r.seconds);

    const bool improved = r.val_acc > pos.best_val_acc;
    if (improved) {
      pos.best_val_acc = r.val_acc;
      pos.best_epoch = r.epoch;
      pos.bad_epochs = 0;
      Metadata meta{{"train.epoch", std::to_string(r.epoch)}, {"val_acc", metadata_str(r.val_acc)}};
      for (const auto& [k, v] : plan.to_metadata()) meta[k] = v;
      save_checkpoint(result.best_path, *model, o.spec, {}, meta);
    } else {
      ++pos.bad_epochs;
    }
    if (o.schedule == "plateau") pos.lr = plateau.step(static_cast<float>(r.val_acc), pos.lr);
    Position next = pos;
    next.epoch = epoch + 1;
    next.step_in_epoch = 0;
    next.loss_sum = 0;
    next.correct = next.seen = 0;
    save_last(next);
    pos = next;
    pos.rng = 0;  // the generator already holds this state
    result.best_val_acc = pos.best_val_acc;
    result.best_epoch = pos.best_epoch;
    if (o.patience > 0 && pos.bad_epochs >= o.patience) {
      std::fprintf(stderr, "early stopping: no improvement for %lld epochs (best %.4f at epoch %lld)\n",
                   static_cast<long long>(pos.bad_epochs), pos.best_val_acc,
                   static_cast<long long>(pos.best_epoch));
      result.early_stopped = true;
      break;
    }
  }
  return result;
}

}  // namespace fer
