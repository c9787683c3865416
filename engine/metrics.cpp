// Classification metrics; see metrics.h for the definitions.
#include "engine/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <set>

#include "engine/error.h"

namespace fer::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double safe_div(double num, double den) { return den == 0 ? 0.0 : num / den; }

void check_matrix(const ConfusionMatrix& cm, const char* who) {
  FER_CHECK(cm.num_classes >= 1, who, ": the confusion matrix has num_classes = ", cm.num_classes);
  FER_CHECK(cm.counts.size() == static_cast<size_t>(cm.num_classes), who, ": the confusion matrix has ",
            cm.counts.size(), " rows for ", cm.num_classes, " classes");
  for (int t = 0; t < cm.num_classes; ++t) {
    FER_CHECK(cm.counts[t].size() == static_cast<size_t>(cm.num_classes), who, ": confusion matrix row ",
              t, " has ", cm.counts[t].size(), " columns for ", cm.num_classes, " classes");
    for (int p = 0; p < cm.num_classes; ++p)
      FER_CHECK(cm.counts[t][p] >= 0, who, ": confusion matrix entry [", t, "][", p, "] = ",
                cm.counts[t][p], " is negative");
  }
}

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

// ---- ConfusionMatrix ---------------------------------------------------------------------------

int64_t ConfusionMatrix::operator()(int t, int p) const {
  FER_CHECK(t >= 0 && t < num_classes && p >= 0 && p < num_classes, "ConfusionMatrix: entry [", t,
            "][", p, "] is outside a ", num_classes, " x ", num_classes, " matrix");
  return counts[t][p];
}

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (const auto& row : counts) s = std::accumulate(row.begin(), row.end(), s);
  return s;
}

int64_t ConfusionMatrix::support(int c) const {
  FER_CHECK(c >= 0 && c < num_classes, "ConfusionMatrix::support: class ", c, " is outside [0, ",
            num_classes, ")");
  return std::accumulate(counts[c].begin(), counts[c].end(), int64_t{0});
}

int64_t ConfusionMatrix::predicted_count(int c) const {
  FER_CHECK(c >= 0 && c < num_classes, "ConfusionMatrix::predicted_count: class ", c,
            " is outside [0, ", num_classes, ")");
  int64_t s = 0;
  for (const auto& row : counts) s += row[c];
  return s;
}

int64_t ConfusionMatrix::correct() const {
  int64_t s = 0;
  for (int c = 0; c < num_classes; ++c) s += counts[c][c];
  return s;
}

ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                 int num_classes) {
  FER_CHECK(num_classes >= 1, "confusion_matrix: num_classes = ", num_classes, " (need >= 1)");
  FER_CHECK(y_true.size() == y_pred.size(), "confusion_matrix: y_true has ", y_true.size(),
            " labels but y_pred has ", y_pred.size());
  ConfusionMatrix cm;
  cm.num_classes = num_classes;
  cm.counts.assign(num_classes, std::vector<int64_t>(num_classes, 0));
  for (size_t i = 0; i < y_true.size(); ++i) {
    FER_CHECK(y_true[i] >= 0 && y_true[i] < num_classes, "confusion_matrix: y_true[", i, "] = ",
              y_true[i], " is outside [0, ", num_classes, ")");
    FER_CHECK(y_pred[i] >= 0 && y_pred[i] < num_classes, "confusion_matrix: y_pred[", i, "] = ",
              y_pred[i], " is outside [0, ", num_classes, ")");
    ++cm.counts[y_true[i]][y_pred[i]];
  }
  return cm;
}

// ---- Report ------------------------------------------------------------------------------------

Report classification_report(const ConfusionMatrix& cm, const std::vector<std::string>& class_names) {
  check_matrix(cm, "classification_report");
  FER_CHECK(class_names.size() == static_cast<size_t>(cm.num_classes), "classification_report: ",
            class_names.size(), " class names for ", cm.num_classes, " classes");
  std::set<std::string> seen;
  for (const std::string& n : class_names)
    FER_CHECK(seen.insert(n).second, "classification_report: the class name \"", n, "\" repeats");
  const int64_t total = cm.total();
  FER_CHECK(total > 0, "classification_report: the confusion matrix holds no samples");

  Report r;
  r.total = total;
  r.accuracy = static_cast<double>(cm.correct()) / static_cast<double>(total);
  r.macro_avg.name = "macro avg";
  r.weighted_avg.name = "weighted avg";
  r.macro_avg.support = r.weighted_avg.support = total;
  const int C = cm.num_classes;
  for (int c = 0; c < C; ++c) {
    const double tp = static_cast<double>(cm.counts[c][c]);
    const double fp = static_cast<double>(cm.predicted_count(c)) - tp;
    const double fn = static_cast<double>(cm.support(c)) - tp;
    ClassReport k;
    k.name = class_names[c];
    k.precision = safe_div(tp, tp + fp);
    k.recall = safe_div(tp, tp + fn);
    k.f1 = safe_div(2 * tp, 2 * tp + fp + fn);
    k.support = cm.support(c);
    const double w = static_cast<double>(k.support) / static_cast<double>(total);
    r.macro_avg.precision += k.precision / C;
    r.macro_avg.recall += k.recall / C;
    r.macro_avg.f1 += k.f1 / C;
    r.weighted_avg.precision += k.precision * w;
    r.weighted_avg.recall += k.recall * w;
    r.weighted_avg.f1 += k.f1 * w;
    r.classes.push_back(std::move(k));
  }
  return r;
}

Report classification_report(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                             const std::vector<std::string>& class_names) {
  return classification_report(
      confusion_matrix(y_true, y_pred, static_cast<int>(class_names.size())), class_names);
}

std::string format_report(const Report& report, int digits) {
  FER_CHECK(digits >= 0 && digits <= 12, "format_report: digits = ", digits, " (need 0..12)");
  size_t width = std::string("weighted avg").size();
  for (const ClassReport& k : report.classes) width = std::max(width, k.name.size());
  width = std::max(width, static_cast<size_t>(digits));
  const int w = static_cast<int>(width);

  std::string out;
  char buf[512];
  auto name_cell = [&](const std::string& s) {
    // Right-aligned to `width`, then one space (sklearn's "{:>{width}s} ").
    out += std::string(width > s.size() ? width - s.size() : 0, ' ') + s + " ";
  };
  auto row = [&](const ClassReport& k) {
    name_cell(k.name);
    std::snprintf(buf, sizeof buf, " %9.*f %9.*f %9.*f %9lld\n", digits, k.precision, digits,
                  k.recall, digits, k.f1, static_cast<long long>(k.support));
    out += buf;
  };
  std::snprintf(buf, sizeof buf, "%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall",
                "f1-score", "support");
  out += buf;
  for (const ClassReport& k : report.classes) row(k);
  out += "\n";
  name_cell("accuracy");
  std::snprintf(buf, sizeof buf, " %9s %9s %9.*f %9lld\n", "", "", digits, report.accuracy,
                static_cast<long long>(report.total));
  out += buf;
  row(report.macro_avg);
  row(report.weighted_avg);
  return out;
}

// ---- ROC ---------------------------------------------------------------------------------------

double trapezoid_auc(const std::vector<double>& x, const std::vector<double>& y) {
  FER_CHECK(x.size() == y.size(), "trapezoid_auc: ", x.size(), " x values but ", y.size(), " y values");
  double area = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    FER_CHECK(x[i] >= x[i - 1], "trapezoid_auc: x is not non-decreasing at index ", i, " (",
              x[i - 1], " then ", x[i], ")");
    area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  }
  return area;
}

RocCurve roc_curve(const std::vector<float>& scores, const std::vector<int>& is_positive) {
  FER_CHECK(scores.size() == is_positive.size(), "roc_curve: ", scores.size(), " scores but ",
            is_positive.size(), " labels");
  for (size_t i = 0; i < scores.size(); ++i) {
    FER_CHECK(std::isfinite(scores[i]), "roc_curve: scores[", i, "] = ", scores[i], " is not finite");
    FER_CHECK(is_positive[i] == 0 || is_positive[i] == 1, "roc_curve: is_positive[", i, "] = ",
              is_positive[i], " (need 0 or 1)");
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });

  RocCurve r;
  std::vector<double> tps{0}, fps{0};
  r.thresholds.push_back(std::numeric_limits<double>::infinity());
  int64_t tp = 0, fp = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (is_positive[i]) ++tp; else ++fp;
    // One point per distinct score: emit after the last sample of a run of equal scores.
    if (k + 1 == order.size() || scores[order[k + 1]] != scores[i]) {
      tps.push_back(static_cast<double>(tp));
      fps.push_back(static_cast<double>(fp));
      r.thresholds.push_back(static_cast<double>(scores[i]));
    }
  }
  r.positives = tp;
  r.negatives = fp;
  r.defined = tp > 0 && fp > 0;
  r.fpr.resize(fps.size());
  r.tpr.resize(tps.size());
  for (size_t k = 0; k < fps.size(); ++k) {
    r.fpr[k] = fp > 0 ? fps[k] / static_cast<double>(fp) : kNaN;
    r.tpr[k] = tp > 0 ? tps[k] / static_cast<double>(tp) : kNaN;
  }
  r.auc = r.defined ? trapezoid_auc(r.fpr, r.tpr) : kNaN;
  return r;
}

std::vector<RocCurve> roc_one_vs_rest(const std::vector<std::vector<float>>& probs,
                                      const std::vector<int>& y_true, int num_classes) {
  FER_CHECK(num_classes >= 1, "roc_one_vs_rest: num_classes = ", num_classes, " (need >= 1)");
  FER_CHECK(probs.size() == y_true.size(), "roc_one_vs_rest: ", probs.size(), " score rows but ",
            y_true.size(), " labels");
  for (size_t i = 0; i < probs.size(); ++i) {
    FER_CHECK(probs[i].size() == static_cast<size_t>(num_classes), "roc_one_vs_rest: probs[", i,
              "] has ", probs[i].size(), " scores for ", num_classes, " classes");
    FER_CHECK(y_true[i] >= 0 && y_true[i] < num_classes, "roc_one_vs_rest: y_true[", i, "] = ",
              y_true[i], " is outside [0, ", num_classes, ")");
  }
  std::vector<RocCurve> curves;
  curves.reserve(num_classes);
  std::vector<float> s(probs.size());
  std::vector<int> pos(probs.size());
  for (int c = 0; c < num_classes; ++c) {
    for (size_t i = 0; i < probs.size(); ++i) {
      s[i] = probs[i][c];
      pos[i] = y_true[i] == c ? 1 : 0;
    }
    try {
      curves.push_back(roc_curve(s, pos));
    } catch (const Error& e) {
      fail("roc_one_vs_rest: class ", c, ": ", e.what());
    }
  }
  return curves;
}

double macro_auc(const std::vector<RocCurve>& curves) {
  double sum = 0;
  int n = 0;
  for (const RocCurve& c : curves)
    if (c.defined) {
      sum += c.auc;
      ++n;
    }
  return n > 0 ? sum / n : kNaN;
}

// ---- JSON --------------------------------------------------------------------------------------

nlohmann::json to_json(const Report& report, const ConfusionMatrix& cm,
                       const std::vector<RocCurve>& roc) {
  check_matrix(cm, "metrics::to_json");
  FER_CHECK(report.classes.size() == static_cast<size_t>(cm.num_classes), "metrics::to_json: the report has ",
            report.classes.size(), " classes but the confusion matrix ", cm.num_classes);
  FER_CHECK(roc.empty() || roc.size() == report.classes.size(), "metrics::to_json: ", roc.size(),
            " ROC curves for ", report.classes.size(), " classes (pass none or one per class)");
  auto avg = [](const ClassReport& k) {
    return nlohmann::json{{"precision", k.precision}, {"recall", k.recall}, {"f1", k.f1},
                          {"support", k.support}};
  };
  nlohmann::json j;
  j["accuracy"] = report.accuracy;
  j["total"] = report.total;
  nlohmann::json names = nlohmann::json::array();
  nlohmann::json classes = nlohmann::json::object();
  for (size_t c = 0; c < report.classes.size(); ++c) {
    const ClassReport& k = report.classes[c];
    nlohmann::json e = avg(k);
    e["roc_auc"] = roc.empty() ? nlohmann::json(nullptr) : number_or_null(roc[c].auc);
    FER_CHECK(!classes.contains(k.name), "metrics::to_json: the class name \"", k.name, "\" repeats");
    classes[k.name] = std::move(e);
    names.push_back(k.name);
  }
  j["class_names"] = std::move(names);
  j["classes"] = std::move(classes);
  j["macro_avg"] = avg(report.macro_avg);
  j["weighted_avg"] = avg(report.weighted_avg);
  j["confusion_matrix"] = cm.counts;
  j["roc_auc_macro"] = roc.empty() ? nlohmann::json(nullptr) : number_or_null(macro_auc(roc));
  return j;
}

}  // namespace fer::metrics
