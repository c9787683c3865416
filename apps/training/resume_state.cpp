#include "apps/training/resume_state.h"

#include "engine/error.h"

namespace fer {

Metadata position_metadata(const RunPosition& p) {
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
          {"train.rng", std::to_string(p.rng)},
          {"train.best_ema_val_acc", metadata_str(p.best_ema_val_acc)},
          {"train.best_ema_epoch", std::to_string(p.best_ema_epoch)},
          {"train.ema_count", std::to_string(p.ema_count)},
          {"train.swa_count", std::to_string(p.swa_count)}};
}

RunPosition position_from(const Metadata& m) {
  RunPosition p;
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
  if (m.count("train.ema_count")) {  // written since the weight averages exist
    p.best_ema_val_acc = metadata_double(m, "train.best_ema_val_acc");
    p.best_ema_epoch = metadata_int(m, "train.best_ema_epoch");
    p.ema_count = metadata_int(m, "train.ema_count");
    p.swa_count = metadata_int(m, "train.swa_count");
  }
  return p;
}

Metadata cache_metadata(const TrainOptions& o) {
  return {{"cache.features", o.cache_features ? "1" : "0"},
          {"cache.aug_passes", std::to_string(o.cache_aug_passes)}};
}

void check_cache_matches(const TrainOptions& o, const Metadata& meta, const std::string& file) {
  for (const auto& [key, value] : cache_metadata(o)) {
    auto it = meta.find(key);
    const std::string theirs = it == meta.end() ? "0" : it->second;
    FER_CHECK(theirs == value, file, " was written with ", key, " = ", theirs, ", this run has ",
              value, ": resume with the same --cache-features / --cache-aug-passes flags");
  }
}

}  // namespace fer
