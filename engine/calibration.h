// Calibration of a classifier's confidences: does "80% sure" mean right 80% of the time?
//
// Expected calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks"): each
// sample's confidence is its largest probability; the samples are put in `bins` equal-width bins
// of confidence over (0, 1] (bin b holds confidences in (b/B, (b+1)/B]); with acc(b) the share of
// correct predictions and conf(b) the mean confidence in bin b,
//   ECE = sum_b |b| / N * |acc(b) - conf(b)|.
// The reliability diagram plots acc(b) against conf(b).
//
// Temperature scaling (same paper): one scalar T > 0 applied to the logits, p = softmax(z / T),
// fitted on held-out data by minimising the negative log-likelihood. It never changes which class
// is predicted. Here it is applied to log-probabilities (softmax is shift-invariant, so log p is
// the logits up to a constant per sample): p_T,c = p_c^(1/T) / sum_k p_k^(1/T), which also
// calibrates averaged (ensemble, test-time augmented) probabilities.
#pragma once
#include <cstdint>
#include <vector>

namespace fer::metrics {

struct CalibrationBin {
  int64_t count = 0;
  double confidence = 0;  // mean confidence of its samples (0 when empty)
  double accuracy = 0;    // share of them predicted correctly (0 when empty)
};

struct Calibration {
  double ece = 0;
  std::vector<CalibrationBin> bins;
};

// probs: N x C row-major, rows summing to 1; labels in [0, C). Throws fer::Error on bad sizes.
Calibration calibration(const std::vector<float>& probs, const std::vector<int>& labels,
                        int64_t num_classes, int bins = 15);

// p^(1/T), renormalised per row, in place (T = 1 leaves probs unchanged).
void apply_temperature(std::vector<float>& probs, int64_t num_classes, double temperature);

// The temperature minimising the mean negative log-likelihood of the labels under
// apply_temperature(probs, T): a golden-section search over log T in [log 0.05, log 20] (the NLL
// is convex in 1/T). Returns the temperature.
double fit_temperature(const std::vector<float>& probs, const std::vector<int>& labels,
                       int64_t num_classes);

// Mean negative log-likelihood of the labels under apply_temperature(probs, T).
double temperature_nll(const std::vector<float>& probs, const std::vector<int>& labels,
                       int64_t num_classes, double temperature);

}  // namespace fer::metrics
