// Expected calibration error and temperature scaling; see calibration.h.
#include "engine/calibration.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace fer::metrics {

namespace {
void check_sizes(const std::vector<float>& probs, const std::vector<int>& labels, int64_t C) {
  FER_CHECK(C > 0 && probs.size() == labels.size() * static_cast<size_t>(C), "calibration: ",
            probs.size(), " probabilities for ", labels.size(), " labels of ", C, " classes");
  for (size_t i = 0; i < labels.size(); ++i)
    FER_CHECK(labels[i] >= 0 && labels[i] < C, "calibration: label ", labels[i], " at index ", i,
              " outside [0, ", C, ")");
}

// log p_T,c for one row: (log p_c) / T - log sum_k exp((log p_k) / T), with log 0 kept finite.
void tempered_log_probs(const float* p, int64_t C, double T, std::vector<double>& out) {
  out.resize(static_cast<size_t>(C));
  double mx = -1e300;
  for (int64_t c = 0; c < C; ++c) {
    out[c] = std::log(std::max(static_cast<double>(p[c]), 1e-30)) / T;
    mx = std::max(mx, out[c]);
  }
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(out[c] - mx);
  const double lse = mx + std::log(s);
  for (int64_t c = 0; c < C; ++c) out[c] -= lse;
}
}  // namespace

Calibration calibration(const std::vector<float>& probs, const std::vector<int>& labels,
                        int64_t num_classes, int bins) {
  check_sizes(probs, labels, num_classes);
  FER_CHECK(bins > 0, "calibration: bins must be positive, got ", bins);
  Calibration out;
  out.bins.resize(static_cast<size_t>(bins));
  std::vector<double> conf_sum(static_cast<size_t>(bins), 0.0), correct(static_cast<size_t>(bins), 0.0);
  const size_t N = labels.size();
  for (size_t i = 0; i < N; ++i) {
    const float* row = probs.data() + i * static_cast<size_t>(num_classes);
    const int64_t pred = std::max_element(row, row + num_classes) - row;
    const double conf = row[pred];
    // (b/B, (b+1)/B]: ceil(conf B) - 1, with confidence 0 in the first bin.
    const int b = std::clamp(static_cast<int>(std::ceil(conf * bins)) - 1, 0, bins - 1);
    ++out.bins[static_cast<size_t>(b)].count;
    conf_sum[static_cast<size_t>(b)] += conf;
    correct[static_cast<size_t>(b)] += pred == labels[i];
  }
  for (size_t b = 0; b < out.bins.size(); ++b) {
    CalibrationBin& bin = out.bins[b];
    if (bin.count == 0) continue;
    bin.confidence = conf_sum[b] / static_cast<double>(bin.count);
    bin.accuracy = correct[b] / static_cast<double>(bin.count);
    out.ece += static_cast<double>(bin.count) / static_cast<double>(N) * std::abs(bin.accuracy - bin.confidence);
  }
  return out;
}

void apply_temperature(std::vector<float>& probs, int64_t num_classes, double temperature) {
  FER_CHECK(temperature > 0 && std::isfinite(temperature), "temperature must be positive, got ", temperature);
  FER_CHECK(num_classes > 0 && probs.size() % static_cast<size_t>(num_classes) == 0,
            "apply_temperature: ", probs.size(), " values are not rows of ", num_classes);
  if (temperature == 1.0) return;
  std::vector<double> lp;
  for (size_t r = 0; r < probs.size(); r += static_cast<size_t>(num_classes)) {
    tempered_log_probs(probs.data() + r, num_classes, temperature, lp);
    for (int64_t c = 0; c < num_classes; ++c) probs[r + static_cast<size_t>(c)] = static_cast<float>(std::exp(lp[c]));
  }
}

double temperature_nll(const std::vector<float>& probs, const std::vector<int>& labels,
                       int64_t num_classes, double temperature) {
  check_sizes(probs, labels, num_classes);
  std::vector<double> lp;
  double nll = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    tempered_log_probs(probs.data() + i * static_cast<size_t>(num_classes), num_classes, temperature, lp);
    nll -= lp[static_cast<size_t>(labels[i])];
  }
  return labels.empty() ? 0.0 : nll / static_cast<double>(labels.size());
}

double fit_temperature(const std::vector<float>& probs, const std::vector<int>& labels,
                       int64_t num_classes) {
  check_sizes(probs, labels, num_classes);
  FER_CHECK(!labels.empty(), "fit_temperature: no samples");
  auto nll = [&](double log_t) { return temperature_nll(probs, labels, num_classes, std::exp(log_t)); };
  const double phi = (std::sqrt(5.0) - 1.0) / 2.0;  // golden ratio - 1
  double a = std::log(0.05), b = std::log(20.0);
  double x1 = b - phi * (b - a), x2 = a + phi * (b - a), f1 = nll(x1), f2 = nll(x2);
  while (b - a > 1e-5) {
    if (f1 < f2) {
      b = x2, x2 = x1, f2 = f1;
      x1 = b - phi * (b - a), f1 = nll(x1);
    } else {
      a = x1, x1 = x2, f1 = f2;
      x2 = a + phi * (b - a), f2 = nll(x2);
    }
  }
  return std::exp(0.5 * (a + b));
}

}  // namespace fer::metrics
