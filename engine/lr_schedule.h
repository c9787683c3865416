// Learning-rate schedules, in the manner of torch.optim.lr_scheduler.
//
// An LrScheduler is a pure function of a counter: lr_at(t) is the learning rate for the (t+1)-th
// update (or epoch) when t updates (or epochs) have already been made, t = 0, 1, 2, ... It is what
// PyTorch's scheduler.get_last_lr() returns after t calls to scheduler.step(). Whether t counts
// optimizer steps or epochs is the caller's choice (OneCycleLR is meant per step, StepLR per
// epoch). A schedule holds no state, so resuming needs only the counter:
//
//     for (int64_t t = 0; t < total; ++t) { optimizer.set_lr(schedule.lr_at(t)); ...; optimizer.step(); }
//
// Formulas (base = base_lr, pi = 3.14159...):
//
//   StepLR(base, step_size, gamma)       lr(t) = base * gamma^floor(t / step_size)
//
//   CosineLR(base, total, min_lr, warmup)
//     t <  warmup:           lr = base * (t + 1) / (warmup + 1)      (never 0; reaches base at t = warmup)
//     warmup <= t < total:   lr = min_lr + (base - min_lr) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2
//     t >= total:            lr = min_lr
//     (with warmup = 0 this is PyTorch's CosineAnnealingLR with T_max = total, eta_min = min_lr)
//
//   OneCycleLR(max_lr, total_steps, pct_start, div_factor, final_div_factor)
//     PyTorch's OneCycleLR with anneal_strategy='cos', three_phase=False (learning rate only; no
//     momentum cycling, i.e. cycle_momentum=False):
//     initial = max_lr / div_factor,  min = initial / final_div_factor,  e1 = pct_start * total - 1
//     cos_anneal(a, b, p) = b + (a - b) * (1 + cos(pi * p)) / 2
//     t <= e1:   lr = cos_anneal(initial, max_lr, t / e1)
//     t >  e1:   lr = cos_anneal(max_lr, min, (t - e1) / (total - 1 - e1))
//     So lr(0) = initial, lr(e1) = max_lr (the peak is at step pct_start*total - 1, as in
//     PyTorch), lr(total - 1) = min. t > total_steps throws (PyTorch raises there too).
//
//   ReduceLROnPlateau(mode, factor, patience, threshold, cooldown, min_lr, eps)
//     Not a function of t but of the metric history; step(metric, lr) is called once per epoch
//     and returns the lr to use next. PyTorch's algorithm with threshold_mode='rel':
//       better(a) = mode "min" ? a < best * (1 - threshold) : a > best * (1 + threshold)
//       if better(metric): best = metric, num_bad_epochs = 0  else num_bad_epochs += 1
//       if cooldown_counter > 0: cooldown_counter -= 1, num_bad_epochs = 0
//       if num_bad_epochs > patience:
//         new = max(lr * factor, min_lr); if lr - new > eps: lr = new
//         cooldown_counter = cooldown, num_bad_epochs = 0
//     min_lr applies to the optimizer's nominal lr (Optimizer::lr); set_lr keeps group ratios.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace fer {

class LrScheduler {
 public:
  virtual ~LrScheduler() = default;
  // The learning rate for the update (or epoch) that follows t completed ones (t >= 0).
  virtual float lr_at(int64_t t) const = 0;
  float operator()(int64_t t) const { return lr_at(t); }
};

class StepLR : public LrScheduler {
 public:
  StepLR(float base_lr, int64_t step_size, float gamma = 0.1f);
  float lr_at(int64_t epoch) const override;

 private:
  float base_lr_;
  int64_t step_size_;
  float gamma_;
};

class CosineLR : public LrScheduler {
 public:
  CosineLR(float base_lr, int64_t total, float min_lr = 0.0f, int64_t warmup = 0);
  float lr_at(int64_t step) const override;

 private:
  float base_lr_;
  int64_t total_;
  float min_lr_;
  int64_t warmup_;
};

class OneCycleLR : public LrScheduler {
 public:
  OneCycleLR(float max_lr, int64_t total_steps, float pct_start = 0.3f, float div_factor = 25.0f,
             float final_div_factor = 1e4f);
  float lr_at(int64_t step) const override;
  float initial_lr() const { return static_cast<float>(initial_lr_); }
  float min_lr() const { return static_cast<float>(min_lr_); }

 private:
  double max_lr_, initial_lr_, min_lr_;
  int64_t total_steps_;
  double phase1_end_;  // pct_start * total_steps - 1: the step at which lr = max_lr
};

class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(const std::string& mode = "min", float factor = 0.1f,
                             int64_t patience = 10, float threshold = 1e-4f, int64_t cooldown = 0,
                             float min_lr = 0.0f, float eps = 1e-8f);
  // Records one epoch's metric and returns the learning rate to use from now on (current_lr or
  // the reduced one).
  float step(float metric, float current_lr);

  // State, for checkpoints: best metric so far (+-inf before the first step), bad epochs since
  // the last improvement or reduction, epochs of cooldown left, and epochs seen.
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  int64_t last_epoch() const { return last_epoch_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }

  // The state above as strings (keys "<prefix>best", ...); from_metadata throws fer::Error naming
  // a missing or unparsable key. Hyper-parameters are constructor arguments and are not saved.
  std::map<std::string, std::string> to_metadata(const std::string& prefix = "plateau.") const;
  void from_metadata(const std::map<std::string, std::string>& in,
                     const std::string& prefix = "plateau.");

 private:
  bool is_better(double metric) const;

  bool maximize_;
  double factor_, threshold_, min_lr_, eps_;
  int64_t patience_, cooldown_;
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

}  // namespace fer
