#include "apps/training/resume_state.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

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

namespace {
// A count of the run (epochs, steps, images, updates): a whole number in [0, 2^53], so that the
// arithmetic done with it later (epoch + 1, a batch's first image = step x batch size) cannot
// overflow, and a damaged or crafted checkpoint is an error naming the key rather than negative
// positions in an epoch.
int64_t count(const Metadata& m, const std::string& key) {
  const int64_t v = metadata_int(m, key);
  FER_CHECK(v >= 0 && v <= (int64_t{1} << 53), "checkpoint metadata: '", key,
            "' must be a count in [0, 2^53], got '", m.at(key), "'");
  return v;
}
double finite(const Metadata& m, const std::string& key) {
  const double v = metadata_double(m, key);
  FER_CHECK(std::isfinite(v), "checkpoint metadata: '", key, "' must be a finite number, got '", m.at(key), "'");
  return v;
}
// The generator's state: an unsigned 64-bit number in decimal (std::stoull would take "-1" and
// throw std::invalid_argument, not fer::Error, on "x").
uint64_t generator_state(const Metadata& m, const std::string& key) {
  const std::string& s = metadata_get(m, key);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  FER_CHECK(!s.empty() && std::isdigit(static_cast<unsigned char>(s[0])) && *end == '\0' && errno == 0,
            "checkpoint metadata: '", key, "' is not an unsigned 64-bit integer: '", s, "'");
  return v;
}
}  // namespace

RunPosition position_from(const Metadata& m) {
  RunPosition p;
  p.epoch = count(m, "train.epoch");
  p.step_in_epoch = count(m, "train.step_in_epoch");
  p.global_step = count(m, "train.global_step");
  p.best_val_acc = finite(m, "train.best_val_acc");
  p.best_epoch = count(m, "train.best_epoch");
  p.bad_epochs = count(m, "train.bad_epochs");
  p.loss_sum = finite(m, "train.loss_sum");
  p.correct = count(m, "train.correct");
  p.seen = count(m, "train.seen");
  FER_CHECK(p.correct <= p.seen, "checkpoint metadata: 'train.correct' (", p.correct,
            ") is more than 'train.seen' (", p.seen, ")");
  p.lr = static_cast<float>(finite(m, "train.lr"));
  p.rng = generator_state(m, "train.rng");
  if (m.count("train.ema_count")) {  // written since the weight averages exist
    p.best_ema_val_acc = finite(m, "train.best_ema_val_acc");
    p.best_ema_epoch = count(m, "train.best_ema_epoch");
    p.ema_count = count(m, "train.ema_count");
    p.swa_count = count(m, "train.swa_count");
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
