#include "engine/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "engine/error.h"
#include "engine/optim.h"  // metadata helpers

namespace fer {

namespace {

// From a (at p = 0) to b (at p = 1) along half a cosine (PyTorch's _annealing_cos).
double cos_anneal(double a, double b, double p) {
  return b + (a - b) / 2.0 * (std::cos(std::numbers::pi * p) + 1.0);
}

}  // namespace

// ---- StepLR ------------------------------------------------------------------------------------

StepLR::StepLR(float base_lr, int64_t step_size, float gamma)
    : base_lr_(base_lr), step_size_(step_size), gamma_(gamma) {
  FER_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
}

float StepLR::lr_at(int64_t epoch) const {
  FER_CHECK(epoch >= 0, "StepLR::lr_at: negative epoch ", epoch);
  const int64_t decays = epoch / step_size_;
  return static_cast<float>(base_lr_ * std::pow(static_cast<double>(gamma_), decays));
}

// ---- CosineLR ----------------------------------------------------------------------------------

CosineLR::CosineLR(float base_lr, int64_t total, float min_lr, int64_t warmup)
    : base_lr_(base_lr), total_(total), min_lr_(min_lr), warmup_(warmup) {
  FER_CHECK(warmup >= 0 && total > warmup, "CosineLR: need total > warmup >= 0, got total ", total,
            ", warmup ", warmup);
}

float CosineLR::lr_at(int64_t step) const {
  FER_CHECK(step >= 0, "CosineLR::lr_at: negative step ", step);
  if (step < warmup_)
    return static_cast<float>(static_cast<double>(base_lr_) * (step + 1) / (warmup_ + 1));
  if (step >= total_) return min_lr_;
  const double progress = static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_);
  return static_cast<float>(cos_anneal(base_lr_, min_lr_, progress));
}

// ---- OneCycleLR --------------------------------------------------------------------------------

OneCycleLR::OneCycleLR(float max_lr, int64_t total_steps, float pct_start, float div_factor,
                       float final_div_factor)
    : max_lr_(max_lr),
      initial_lr_(static_cast<double>(max_lr) / div_factor),
      min_lr_(initial_lr_ / final_div_factor),
      total_steps_(total_steps),
      phase1_end_(static_cast<double>(pct_start) * static_cast<double>(total_steps) - 1.0) {
  FER_CHECK(total_steps > 0, "OneCycleLR: total_steps must be positive, got ", total_steps);
  FER_CHECK(pct_start >= 0.0f && pct_start <= 1.0f, "OneCycleLR: pct_start must be in [0, 1], got ",
            pct_start);
  FER_CHECK(div_factor > 0.0f && final_div_factor > 0.0f,
            "OneCycleLR: div_factor and final_div_factor must be positive");
  // Both phases must have a positive length, or a division by zero follows (PyTorch misbehaves).
  FER_CHECK(phase1_end_ > 0.0 && phase1_end_ < static_cast<double>(total_steps - 1),
            "OneCycleLR: pct_start * total_steps - 1 = ", phase1_end_,
            " must lie strictly between 0 and total_steps - 1 = ", total_steps - 1);
}

float OneCycleLR::lr_at(int64_t step) const {
  FER_CHECK(step >= 0 && step <= total_steps_, "OneCycleLR::lr_at: step ", step,
            " outside [0, total_steps = ", total_steps_, "]");
  const double t = static_cast<double>(step);
  if (t <= phase1_end_) return static_cast<float>(cos_anneal(initial_lr_, max_lr_, t / phase1_end_));
  const double phase2_end = static_cast<double>(total_steps_ - 1);
  const double p = (t - phase1_end_) / (phase2_end - phase1_end_);
  return static_cast<float>(cos_anneal(max_lr_, min_lr_, p));
}

// ---- ReduceLROnPlateau -------------------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(const std::string& mode, float factor, int64_t patience,
                                     float threshold, int64_t cooldown, float min_lr, float eps)
    : maximize_(mode == "max"),
      factor_(factor),
      threshold_(threshold),
      min_lr_(min_lr),
      eps_(eps),
      patience_(patience),
      cooldown_(cooldown) {
  FER_CHECK(mode == "min" || mode == "max", "ReduceLROnPlateau: mode must be 'min' or 'max', got '",
            mode, "'");
  FER_CHECK(factor < 1.0f && factor >= 0.0f, "ReduceLROnPlateau: factor must be in [0, 1), got ",
            factor);
  FER_CHECK(patience >= 0 && cooldown >= 0 && threshold >= 0.0f && min_lr >= 0.0f,
            "ReduceLROnPlateau: patience, cooldown, threshold and min_lr must be non-negative");
  best_ = maximize_ ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double metric) const {
  return maximize_ ? metric > best_ * (1.0 + threshold_) : metric < best_ * (1.0 - threshold_);
}

float ReduceLROnPlateau::step(float metric, float current_lr) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (in_cooldown()) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs during cooldown do not count
  }
  if (num_bad_epochs_ <= patience_) return current_lr;

  cooldown_counter_ = cooldown_;
  num_bad_epochs_ = 0;
  const double old_lr = current_lr;
  const double new_lr = std::max(old_lr * factor_, min_lr_);
  return old_lr - new_lr > eps_ ? static_cast<float>(new_lr) : current_lr;
}

std::map<std::string, std::string> ReduceLROnPlateau::to_metadata(const std::string& prefix) const {
  return {{prefix + "best", metadata_str(best_)},
          {prefix + "num_bad_epochs", std::to_string(num_bad_epochs_)},
          {prefix + "cooldown_counter", std::to_string(cooldown_counter_)},
          {prefix + "last_epoch", std::to_string(last_epoch_)}};
}

void ReduceLROnPlateau::from_metadata(const std::map<std::string, std::string>& in,
                                      const std::string& prefix) {
  const double best = metadata_double(in, prefix + "best");
  const int64_t bad = metadata_int(in, prefix + "num_bad_epochs");
  const int64_t cooldown = metadata_int(in, prefix + "cooldown_counter");
  const int64_t epoch = metadata_int(in, prefix + "last_epoch");
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_epoch_ = epoch;
}

}  // namespace fer
