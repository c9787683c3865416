// The teacher of knowledge distillation (fer_train --teacher a,b): one or several trained
// checkpoints whose averaged soft labels softmax(logits / T) the student learns from besides the
// true labels (apps/training/losses.h). The teachers see exactly the student's input batch (after
// augmentation and mixing), so every member must read faces as the student does: the same
// preprocessing, input size, channels and classes, checked when loading.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "apps/training/checkpoint.h"

namespace fer {

class Teacher {
 public:
  Teacher(const std::vector<std::string>& checkpoints, const ModelSpec& student, Device device);
  // The members' mean of softmax(logits / T) for a batch of model inputs [N, C, H, W]; [N, classes]
  // on `device`, without gradient.
  Tensor soft_labels(const Tensor& inputs, float temperature);
  size_t size() const { return members_.size(); }

 private:
  std::vector<std::shared_ptr<Module>> members_;
  Device device_;
};

}  // namespace fer
