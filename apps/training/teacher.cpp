// The distillation teacher; see teacher.h.
#include "apps/training/teacher.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace fer {

Teacher::Teacher(const std::vector<std::string>& checkpoints, const ModelSpec& student, Device device)
    : device_(device) {
  FER_CHECK(!checkpoints.empty(), "--teacher: no checkpoint given");
  for (const std::string& path : checkpoints) {
    LoadedCheckpoint ck = load_checkpoint(path, device);
    const ModelConfig &t = ck.spec.config, &s = student.config;
    FER_CHECK(t.num_classes == s.num_classes && t.in_channels == s.in_channels &&
                  t.input_size == s.input_size,
              "--teacher ", path, ": its model reads ", t.in_channels, "x", t.input_size, "x",
              t.input_size, " faces into ", t.num_classes, " classes, the student ", s.in_channels,
              "x", s.input_size, "x", s.input_size, " into ", s.num_classes);
    FER_CHECK(ck.spec.preprocess == student.preprocess, "--teacher ", path,
              ": its preprocessing (equalize, standardize) differs from the student's");
    FER_CHECK(ck.spec.class_names.empty() || student.class_names.empty() ||
                  ck.spec.class_names == student.class_names,
              "--teacher ", path, ": its class names differ from the training set's");
    ck.model->freeze_for_inference();  // inference only: its kernels' transforms kept between batches
    members_.push_back(ck.model);
  }
}

Tensor Teacher::soft_labels(const Tensor& inputs, float temperature) {
  NoGradGuard no_grad;
  const Tensor x = inputs.to(device_);
  Tensor mean;
  for (const auto& member : members_) {
    const Tensor p = softmax(scale(member->forward(x), 1.0f / temperature));
    mean = mean.defined() ? add(mean, p) : p;
  }
  return scale(mean, 1.0f / static_cast<float>(members_.size()));
}

}  // namespace fer
