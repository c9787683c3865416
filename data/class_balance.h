// Counter-measures for FER2013's class imbalance (disgust: ~1.5% of the images, happy: ~25%).
//
// balanced_class_weights: sklearn's compute_class_weight("balanced"):
//     weight[c] = n_samples / (n_classes * count[c])
// (a class with no samples gets weight 0). Feed it to the loss as per-class weights.
//
// balanced_epoch: the indices of one epoch drawn WITH replacement, item i chosen with probability
// proportional to 1 / count[label[i]] - every class equally likely per draw - from a Generator
// seeded by (seed, epoch). The epoch has `length` draws (the data set size by default).
#pragma once
#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace fer::data {

std::vector<float> balanced_class_weights(const std::vector<int64_t>& counts);
std::vector<float> balanced_class_weights(const Dataset& data);

std::vector<int64_t> balanced_epoch(const std::vector<int>& labels, int num_classes, uint64_t seed,
                                    uint64_t epoch, int64_t length = -1);

}  // namespace fer::data
