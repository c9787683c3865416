// The training losses of fer_train beyond plain cross-entropy, composed from the engine's ops (so
// autograd gives their gradients):
//
//   mixed_cross_entropy   mixup / cutmix (data/batch_mix.h): lam CE(z, y) + (1 - lam) CE(z, y'),
//                         the cross-entropy against the mixed labels lam onehot(y) + (1 - lam)
//                         onehot(y'); label smoothing and class weights apply to both terms.
//   distillation_loss     knowledge distillation (Hinton et al. 2015) from a teacher's soft labels
//                         p = softmax(t / T):  T^2 KL(p || softmax(z / T)), whose gradient is that
//                         of T^2 sum_c -p_c log softmax(z / T)_c averaged over the batch; T^2
//                         keeps the gradient's scale independent of T.
#pragma once
#include "engine/ops.h"

namespace fer {

Tensor mixed_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels,
                           float lambda, const CrossEntropyOptions& o);

// teacher_probs [N, C]: the teacher's softmax at temperature T (a constant, no gradient).
Tensor distillation_loss(const Tensor& logits, const Tensor& teacher_probs, float temperature);

}  // namespace fer
