// Classification metrics against hand-computed numbers and scikit-learn's documented outputs.
#include <doctest/doctest.h>

#include "tests/support/errors.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/metrics.h"

using namespace fer;
using fer::testing::throws_naming;
using namespace fer::metrics;

namespace {

void check_vec(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("index " << i);
    if (std::isinf(expected[i]))
      CHECK(got[i] == expected[i]);
    else
      CHECK(got[i] == doctest::Approx(expected[i]));
  }
}

// The hand-computed example: 3 classes, 10 samples, class "c" is never predicted.
//   y_true = 0 0 0 1 1 1 1 2 2 2
//   y_pred = 0 0 1 1 1 1 0 0 1 1
const std::vector<int> kTrue{0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
const std::vector<int> kPred{0, 0, 1, 1, 1, 1, 0, 0, 1, 1};
const std::vector<std::string> kNames{"a", "b", "c"};

}  // namespace

// ---- Confusion matrix --------------------------------------------------------------------------

TEST_CASE("confusion_matrix: rows are true classes, columns predicted") {
  const ConfusionMatrix cm = confusion_matrix(kTrue, kPred, 3);
  // true a: predicted a, a, b           -> [2, 1, 0]
  // true b: predicted b, b, b, a        -> [1, 3, 0]
  // true c: predicted a, b, b           -> [1, 2, 0]
  CHECK(cm.num_classes == 3);
  CHECK(cm.counts == std::vector<std::vector<int64_t>>{{2, 1, 0}, {1, 3, 0}, {1, 2, 0}});
  CHECK(cm(1, 0) == 1);
  CHECK(cm.total() == 10);
  CHECK(cm.correct() == 5);
  CHECK(cm.support(0) == 3);
  CHECK(cm.support(1) == 4);
  CHECK(cm.support(2) == 3);
  CHECK(cm.predicted_count(0) == 4);
  CHECK(cm.predicted_count(1) == 6);
  CHECK(cm.predicted_count(2) == 0);
}

TEST_CASE("confusion_matrix: errors name the bad input") {
  CHECK(throws_naming([] { confusion_matrix({0, 1}, {0}, 2); }, "y_true has 2 labels but y_pred has 1"));
  CHECK(throws_naming([] { confusion_matrix({0, 1, 3}, {0, 1, 1}, 3); }, "y_true[2] = 3"));
  CHECK(throws_naming([] { confusion_matrix({0, 1, 1}, {0, -1, 1}, 3); }, "y_pred[1] = -1"));
  CHECK(throws_naming([] { confusion_matrix({}, {}, 0); }, "num_classes = 0"));
  const ConfusionMatrix cm = confusion_matrix({0}, {0}, 2);
  CHECK(throws_naming([&] { (void)cm(2, 0); }, "[2][0]"));
  CHECK(confusion_matrix({}, {}, 2).total() == 0);
}

// ---- Classification report ---------------------------------------------------------------------

TEST_CASE("classification_report: hand-computed example with a class never predicted") {
  const Report r = classification_report(confusion_matrix(kTrue, kPred, 3), kNames);
  REQUIRE(r.classes.size() == 3);
  // a: tp = 2, fp = 4 - 2 = 2, fn = 3 - 2 = 1
  //    precision = 2/4 = 0.5, recall = 2/3, f1 = 2*2 / (2*2 + 2 + 1) = 4/7
  CHECK(r.classes[0].name == "a");
  CHECK(r.classes[0].precision == doctest::Approx(0.5));
  CHECK(r.classes[0].recall == doctest::Approx(2.0 / 3));
  CHECK(r.classes[0].f1 == doctest::Approx(4.0 / 7));
  CHECK(r.classes[0].support == 3);
  // b: tp = 3, fp = 6 - 3 = 3, fn = 4 - 3 = 1
  //    precision = 3/6 = 0.5, recall = 3/4, f1 = 6 / (6 + 3 + 1) = 0.6
  CHECK(r.classes[1].precision == doctest::Approx(0.5));
  CHECK(r.classes[1].recall == doctest::Approx(0.75));
  CHECK(r.classes[1].f1 == doctest::Approx(0.6));
  CHECK(r.classes[1].support == 4);
  // c: never predicted: tp = fp = 0 -> precision 0/0 -> 0 (zero_division = 0); recall 0/3 = 0; f1 0
  CHECK(r.classes[2].precision == 0.0);
  CHECK(r.classes[2].recall == 0.0);
  CHECK(r.classes[2].f1 == 0.0);
  CHECK(r.classes[2].support == 3);
  // accuracy = (2 + 3 + 0) / 10
  CHECK(r.accuracy == doctest::Approx(0.5));
  CHECK(r.total == 10);
  // macro: plain means over the 3 classes
  //   precision (0.5 + 0.5 + 0) / 3 = 1/3
  //   recall    (2/3 + 3/4 + 0) / 3 = 17/36
  //   f1        (4/7 + 3/5 + 0) / 3 = 41/105
  CHECK(r.macro_avg.name == "macro avg");
  CHECK(r.macro_avg.precision == doctest::Approx(1.0 / 3));
  CHECK(r.macro_avg.recall == doctest::Approx(17.0 / 36));
  CHECK(r.macro_avg.f1 == doctest::Approx(41.0 / 105));
  CHECK(r.macro_avg.support == 10);
  // weighted by support 3, 4, 3:
  //   precision (0.5*3 + 0.5*4 + 0*3) / 10 = 0.35
  //   recall    (2/3*3 + 3/4*4 + 0*3) / 10 = 0.5  (= accuracy, always)
  //   f1        (4/7*3 + 0.6*4 + 0*3) / 10 = (12/7 + 2.4) / 10
  CHECK(r.weighted_avg.name == "weighted avg");
  CHECK(r.weighted_avg.precision == doctest::Approx(0.35));
  CHECK(r.weighted_avg.recall == doctest::Approx(0.5));
  CHECK(r.weighted_avg.f1 == doctest::Approx((12.0 / 7 + 2.4) / 10));
  CHECK(r.weighted_avg.support == 10);

  // The vector overload gives the same.
  const Report r2 = classification_report(kTrue, kPred, kNames);
  CHECK(r2.macro_avg.f1 == doctest::Approx(r.macro_avg.f1));
}

TEST_CASE("classification_report: a class absent from both y_true and y_pred counts in the macro mean") {
  // Labels 0 and 1 only, 3 classes: class 2 has precision = recall = f1 = 0, support 0.
  const Report r = classification_report({0, 0, 1, 1}, {0, 0, 1, 1}, {"x", "y", "z"});
  CHECK(r.accuracy == doctest::Approx(1.0));
  CHECK(r.classes[2].support == 0);
  CHECK(r.classes[2].f1 == 0.0);
  CHECK(r.macro_avg.f1 == doctest::Approx(2.0 / 3));  // (1 + 1 + 0) / 3
  CHECK(r.weighted_avg.f1 == doctest::Approx(1.0));   // weights 2/4, 2/4, 0
}

TEST_CASE("classification_report: errors") {
  const ConfusionMatrix cm = confusion_matrix(kTrue, kPred, 3);
  CHECK(throws_naming([&] { classification_report(cm, {"a", "b"}); }, "2 class names for 3 classes"));
  CHECK(throws_naming([&] { classification_report(cm, {"a", "b", "a"}); }, "\"a\" repeats"));
  CHECK(throws_naming([] { classification_report(confusion_matrix({}, {}, 2), {"a", "b"}); }, "no samples"));
  ConfusionMatrix bad = cm;
  bad.counts[1].pop_back();
  CHECK(throws_naming([&] { classification_report(bad, kNames); }, "row 1 has 2 columns"));
  bad = cm;
  bad.counts[0][2] = -1;
  CHECK(throws_naming([&] { classification_report(bad, kNames); }, "[0][2] = -1 is negative"));
}

TEST_CASE("format_report: the table of the hand-computed example (digits = 4)") {
  const std::string expected =
      "              precision    recall  f1-score   support\n"
      "\n"
      "           a     0.5000    0.6667    0.5714         3\n"
      "           b     0.5000    0.7500    0.6000         4\n"
      "           c     0.0000    0.0000    0.0000         3\n"
      "\n"
      "    accuracy                         0.5000        10\n"
      "   macro avg     0.3333    0.4722    0.3905        10\n"
      "weighted avg     0.3500    0.5000    0.4114        10\n";
  CHECK(format_report(classification_report(kTrue, kPred, kNames)) == expected);
}

TEST_CASE("format_report: matches scikit-learn's documented example (digits = 2)") {
  // sklearn.metrics.classification_report docs: y_true = [0, 1, 2, 2, 2], y_pred = [0, 0, 2, 2, 1].
  const std::string expected =
      "              precision    recall  f1-score   support\n"
      "\n"
      "     class 0       0.50      1.00      0.67         1\n"
      "     class 1       0.00      0.00      0.00         1\n"
      "     class 2       1.00      0.67      0.80         3\n"
      "\n"
      "    accuracy                           0.60         5\n"
      "   macro avg       0.50      0.56      0.49         5\n"
      "weighted avg       0.70      0.60      0.61         5\n";
  const Report r = classification_report({0, 1, 2, 2, 2}, {0, 0, 2, 2, 1}, {"class 0", "class 1", "class 2"});
  CHECK(format_report(r, 2) == expected);
}

TEST_CASE("format_report: long class names widen the name column") {
  const Report r = classification_report({0, 1}, {0, 1}, {"a very long class name", "b"});
  const std::string s = format_report(r);
  CHECK(s.find("a very long class name     1.0000") != std::string::npos);
  CHECK(s.find("          weighted avg     1.0000") != std::string::npos);
}

// ---- ROC ---------------------------------------------------------------------------------------

TEST_CASE("roc_curve: scikit-learn's documented example") {
  // scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1]. In decreasing score order:
  //   0.8 (pos) -> tp 1, fp 0;  0.4 (neg) -> 1, 1;  0.35 (pos) -> 2, 1;  0.1 (neg) -> 2, 2
  // fpr = fp / 2, tpr = tp / 2, after the starting point (0, 0) at threshold +inf.
  const RocCurve r = roc_curve({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1});
  check_vec(r.fpr, {0, 0, 0.5, 0.5, 1});
  check_vec(r.tpr, {0, 0.5, 0.5, 1, 1});
  check_vec(r.thresholds, {std::numeric_limits<double>::infinity(), 0.8f, 0.4f, 0.35f, 0.1f});
  // Trapezoids: 0 + 0.5 * (0.5 + 0.5)/2 + 0 + 0.5 * (1 + 1)/2 = 0.25 + 0.5
  CHECK(r.auc == doctest::Approx(0.75));
  CHECK(r.defined);
  CHECK(r.positives == 2);
  CHECK(r.negatives == 2);
}

TEST_CASE("roc_curve: perfect, reversed and tied scores") {
  const RocCurve perfect = roc_curve({0.9f, 0.8f, 0.2f, 0.1f}, {1, 1, 0, 0});
  CHECK(perfect.auc == doctest::Approx(1.0));
  check_vec(perfect.fpr, {0, 0, 0, 0.5, 1});
  check_vec(perfect.tpr, {0, 0.5, 1, 1, 1});

  const RocCurve reversed = roc_curve({0.9f, 0.8f, 0.2f, 0.1f}, {0, 0, 1, 1});
  CHECK(reversed.auc == doctest::Approx(0.0));

  // All scores equal: one point after (0, 0), straight to (1, 1): AUC 0.5.
  const RocCurve flat = roc_curve({0.5f, 0.5f, 0.5f, 0.5f}, {1, 0, 1, 0});
  check_vec(flat.fpr, {0, 1});
  check_vec(flat.tpr, {0, 1});
  check_vec(flat.thresholds, {std::numeric_limits<double>::infinity(), 0.5});
  CHECK(flat.auc == doctest::Approx(0.5));

  // A tie between a positive and a negative: 0.9 (pos) -> (0, 0.5); the 0.5 group (pos + neg)
  // -> (0.5, 1); 0.1 (neg) -> (1, 1). AUC = 0.5 * (0.5 + 1)/2 + 0.5 * 1 = 0.875, which is the
  // Mann-Whitney statistic counting the tie as one half: (2 + 1 + 0.5) / 4.
  const RocCurve tie = roc_curve({0.9f, 0.5f, 0.5f, 0.1f}, {1, 1, 0, 0});
  check_vec(tie.fpr, {0, 0, 0.5, 1});
  check_vec(tie.tpr, {0, 0.5, 1, 1});
  CHECK(tie.auc == doctest::Approx(0.875));
  // The order of tied samples does not matter.
  CHECK(roc_curve({0.9f, 0.5f, 0.5f, 0.1f}, {1, 0, 1, 0}).auc == doctest::Approx(0.875));
}

TEST_CASE("roc_curve: undefined without positives or without negatives") {
  const RocCurve no_neg = roc_curve({0.2f, 0.7f}, {1, 1});
  CHECK_FALSE(no_neg.defined);
  CHECK(std::isnan(no_neg.auc));
  CHECK(std::isnan(no_neg.fpr[1]));
  CHECK(no_neg.tpr.back() == doctest::Approx(1.0));
  const RocCurve no_pos = roc_curve({0.2f, 0.7f}, {0, 0});
  CHECK_FALSE(no_pos.defined);
  CHECK(std::isnan(no_pos.auc));
  CHECK(std::isnan(no_pos.tpr[1]));
  const RocCurve empty = roc_curve({}, {});
  CHECK_FALSE(empty.defined);
  CHECK(empty.fpr.size() == 1);
}

TEST_CASE("roc_curve: errors name the index") {
  CHECK(throws_naming([] { roc_curve({0.1f, 0.2f}, {1}); }, "2 scores but 1 labels"));
  CHECK(throws_naming([] { roc_curve({0.1f, 0.2f, 0.3f}, {1, 2, 0}); }, "is_positive[1] = 2"));
  CHECK(throws_naming([] { roc_curve({0.1f, std::nanf(""), 0.3f}, {1, 0, 0}); }, "scores[1]"));
  CHECK(throws_naming([] { roc_curve({0.1f, INFINITY}, {1, 0}); }, "scores[1]"));
  CHECK(throws_naming([] { trapezoid_auc({0, 1, 0.5}, {0, 1, 1}); }, "index 2"));
}

TEST_CASE("roc_one_vs_rest: one curve per class, macro AUC over defined classes") {
  // 3 classes; class 2 never occurs, so its curve is undefined and left out of the macro mean.
  const std::vector<std::vector<float>> probs{
      {0.7f, 0.2f, 0.1f}, {0.6f, 0.3f, 0.1f}, {0.2f, 0.7f, 0.1f}, {0.4f, 0.5f, 0.1f}, {0.5f, 0.3f, 0.2f}};
  const std::vector<int> y{0, 1, 1, 1, 0};
  const std::vector<RocCurve> curves = roc_one_vs_rest(probs, y, 3);
  REQUIRE(curves.size() == 3);
  // Class 0: scores 0.7 0.6 0.2 0.4 0.5, positives {0, 4} = 0.7 0.5, negatives 0.6 0.2 0.4:
  //   0.7 beats all 3, 0.5 beats 0.2 and 0.4 -> 5 of 6 pairs
  CHECK(curves[0].auc == doctest::Approx(5.0 / 6));
  // Class 1: scores 0.2 0.3 0.7 0.5 0.3, positives {1, 2, 3} = 0.3 0.7 0.5, negatives 0.2 0.3:
  //   pairs: 0.3 vs (0.2: 1, 0.3: tie 0.5), 0.7 vs both: 2, 0.5 vs both: 2 -> 5.5 / 6
  CHECK(curves[1].auc == doctest::Approx(5.5 / 6));
  CHECK(curves[1].auc == doctest::Approx(roc_curve({0.2f, 0.3f, 0.7f, 0.5f, 0.3f}, {0, 1, 1, 1, 0}).auc));
  CHECK_FALSE(curves[2].defined);
  CHECK(macro_auc(curves) == doctest::Approx((5.0 / 6 + 5.5 / 6) / 2));
  CHECK(std::isnan(macro_auc({curves[2]})));

  CHECK(throws_naming([&] { roc_one_vs_rest(probs, {0, 1, 1}, 3); }, "5 score rows but 3 labels"));
  CHECK(throws_naming([&] { roc_one_vs_rest({{0.5f, 0.5f}}, {0}, 3); }, "probs[0] has 2 scores"));
  CHECK(throws_naming([&] { roc_one_vs_rest(probs, {0, 1, 1, 3, 0}, 3); }, "y_true[3] = 3"));
  CHECK(throws_naming([&] { roc_one_vs_rest({{0.5f, NAN}}, {0}, 2); }, "class 1"));
}

// ---- JSON --------------------------------------------------------------------------------------

TEST_CASE("to_json: report, confusion matrix and AUCs") {
  const ConfusionMatrix cm = confusion_matrix(kTrue, kPred, 3);
  const Report r = classification_report(cm, kNames);
  std::vector<RocCurve> roc{roc_curve({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1}),
                            roc_curve({0.9f, 0.8f, 0.2f, 0.1f}, {1, 1, 0, 0}), roc_curve({0.5f}, {1})};
  const nlohmann::json j = to_json(r, cm, roc);
  CHECK(j["accuracy"].get<double>() == doctest::Approx(0.5));
  CHECK(j["total"].get<int64_t>() == 10);
  CHECK(j["class_names"] == nlohmann::json({"a", "b", "c"}));
  CHECK(j["classes"]["a"]["precision"].get<double>() == doctest::Approx(0.5));
  CHECK(j["classes"]["a"]["recall"].get<double>() == doctest::Approx(2.0 / 3));
  CHECK(j["classes"]["b"]["f1"].get<double>() == doctest::Approx(0.6));
  CHECK(j["classes"]["c"]["support"].get<int64_t>() == 3);
  CHECK(j["classes"]["a"]["roc_auc"].get<double>() == doctest::Approx(0.75));
  CHECK(j["classes"]["b"]["roc_auc"].get<double>() == doctest::Approx(1.0));
  CHECK(j["classes"]["c"]["roc_auc"].is_null());
  CHECK(j["macro_avg"]["f1"].get<double>() == doctest::Approx(41.0 / 105));
  CHECK(j["weighted_avg"]["precision"].get<double>() == doctest::Approx(0.35));
  CHECK(j["weighted_avg"]["support"].get<int64_t>() == 10);
  CHECK(j["confusion_matrix"] == nlohmann::json({{2, 1, 0}, {1, 3, 0}, {1, 2, 0}}));
  CHECK(j["roc_auc_macro"].get<double>() == doctest::Approx(0.875));
  // Serialises (no NaN or infinity in the document).
  CHECK(nlohmann::json::parse(j.dump()) == j);

  const nlohmann::json no_roc = to_json(r, cm, {});
  CHECK(no_roc["classes"]["a"]["roc_auc"].is_null());
  CHECK(no_roc["roc_auc_macro"].is_null());
  CHECK(throws_naming([&] { to_json(r, cm, {roc[0]}); }, "1 ROC curves for 3 classes"));
}
