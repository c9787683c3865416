// Classification metrics, computed as scikit-learn computes them: the confusion matrix, the
// per-class precision / recall / F1 report (sklearn.metrics.classification_report), and ROC
// curves with their areas (sklearn.metrics.roc_curve / roc_auc_score, one-vs-rest for multiclass).
// Nothing here knows about facial expressions: labels are 0..C-1, names are supplied by the caller.
//
// Definitions, for class c with tp = cm[c][c], fp = (column c sum) - tp, fn = (row c sum) - tp:
//
//   precision = tp / (tp + fp)              (0 when the class is never predicted)
//   recall    = tp / (tp + fn)              (0 when the class never occurs; support = tp + fn)
//   f1        = 2 tp / (2 tp + fp + fn)     (= 2 p r / (p + r); 0 when p + r = 0 or undefined)
//   accuracy  = trace / total
//   macro avg    = unweighted mean over all C classes (classes with no support included, as
//                  sklearn does when given labels=range(C)); macro f1 is the mean of the f1s
//   weighted avg = mean weighted by support
//
// That is sklearn with zero_division=0. ROC curves follow roc_curve(drop_intermediate=False):
// scores sorted in decreasing order, one point per distinct score (ties grouped), preceded by the
// point (0, 0) at threshold +infinity; the AUC is the trapezoidal area under (fpr, tpr).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fer::metrics {

// counts[t][p]: how many samples of true class t were predicted as class p.
struct ConfusionMatrix {
  int num_classes = 0;
  std::vector<std::vector<int64_t>> counts;

  int64_t operator()(int true_class, int predicted_class) const;
  int64_t total() const;
  int64_t support(int c) const;          // row sum: samples whose true class is c
  int64_t predicted_count(int c) const;  // column sum: samples predicted as c
  int64_t correct() const;               // the trace
};

// Throws fer::Error when the lengths differ, num_classes < 1, or a label lies outside
// [0, num_classes); the message names the offending vector and index.
ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                 int num_classes);

struct ClassReport {
  std::string name;
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

struct Report {
  std::vector<ClassReport> classes;  // in label order
  double accuracy = 0;
  ClassReport macro_avg;     // name "macro avg", support = total
  ClassReport weighted_avg;  // name "weighted avg", support = total
  int64_t total = 0;         // number of samples
};

// Throws fer::Error when class_names.size() != cm.num_classes, a name repeats, the matrix is not
// num_classes x num_classes with non-negative counts, or it holds no samples.
Report classification_report(const ConfusionMatrix& cm, const std::vector<std::string>& class_names);
Report classification_report(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                             const std::vector<std::string>& class_names);

// The table sklearn's classification_report(digits=4) prints:
//
//                 precision    recall  f1-score   support
//
//          angry     0.5000    0.6667    0.5714         3
//          ...
//
//       accuracy                         0.6000        10
//      macro avg     0.4500    0.4444    0.4381        10
//   weighted avg     0.5500    0.6000    0.5619        10
std::string format_report(const Report& report, int digits = 4);

struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;  // thresholds[0] = +infinity, then decreasing scores
  double auc = 0;                            // NaN when !defined
  bool defined = false;      // false when there are no positives or no negatives; the undefined
                             // axis (fpr or tpr) is then NaN throughout, as in sklearn
  int64_t positives = 0, negatives = 0;
};

// is_positive[i] must be 0 or 1; scores must be finite. Throws fer::Error naming the index.
RocCurve roc_curve(const std::vector<float>& scores, const std::vector<int>& is_positive);

// One curve per class c: scores probs[i][c], positives y_true[i] == c. probs is N x C.
std::vector<RocCurve> roc_one_vs_rest(const std::vector<std::vector<float>>& probs,
                                      const std::vector<int>& y_true, int num_classes);

// Mean AUC over the curves whose AUC is defined (sklearn's roc_auc_score(average="macro",
// multi_class="ovr") when every class is present); NaN when none is.
double macro_auc(const std::vector<RocCurve>& curves);

// Trapezoidal area under y(x); x must be monotonic (non-decreasing) and the sizes equal.
double trapezoid_auc(const std::vector<double>& x, const std::vector<double>& y);

// {
//   "accuracy": 0.6, "total": 10,
//   "class_names": ["a", "b", "c"],                      (label order; "classes" is keyed by name)
//   "classes": {"a": {"precision", "recall", "f1", "support", "roc_auc"}, ...},
//   "macro_avg": {"precision", "recall", "f1", "support"}, "weighted_avg": {...},
//   "confusion_matrix": [[...], ...],                     (rows = true, columns = predicted)
//   "roc_auc_macro": 0.87
// }
// roc may be empty (no scores available): every roc_auc is then null. An undefined AUC is null.
nlohmann::json to_json(const Report& report, const ConfusionMatrix& cm,
                       const std::vector<RocCurve>& roc);

}  // namespace fer::metrics
