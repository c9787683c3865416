// Inference helpers of the apps: ensembles of predictions scored against hand-computed numbers.
#include <doctest/doctest.h>

#include "tests/support/errors.h"

#include <cmath>
#include <vector>

#include "apps/training/evaluate.h"

using namespace fer;
using fer::testing::throws_naming;

namespace {
Predictions member(std::vector<float> probs, std::vector<int> labels) {
  Predictions p;
  p.num_classes = 3;
  p.probs = std::move(probs);
  p.labels = std::move(labels);
  return p;
}
}  // namespace

TEST_CASE("average_predictions: mean probabilities, then argmax, accuracy and loss of the mean") {
  // Two faces, labels 0 and 2. Member a gets face 0 right and face 1 wrong; b the opposite, but
  // their mean is right on both.
  const Predictions a = member({0.6f, 0.3f, 0.1f, /**/ 0.1f, 0.5f, 0.4f}, {0, 2});
  const Predictions b = member({0.2f, 0.5f, 0.3f, /**/ 0.1f, 0.1f, 0.8f}, {0, 2});
  const Predictions m = average_predictions({a, b});
  REQUIRE(m.probs.size() == 6);
  CHECK(m.probs[0] == doctest::Approx(0.4));
  CHECK(m.probs[1] == doctest::Approx(0.4));
  CHECK(m.probs[5] == doctest::Approx(0.6));
  // Face 0 ties 0.4/0.4: the first maximum (class 0) wins, as numpy's argmax.
  CHECK(m.predicted == std::vector<int>{0, 2});
  CHECK(m.accuracy == doctest::Approx(1.0));
  CHECK(m.loss == doctest::Approx(-(std::log(0.4) + std::log(0.6)) / 2).epsilon(1e-6));
}

TEST_CASE("average_predictions: a single member is scored as it is") {
  const Predictions m = average_predictions({member({0.1f, 0.2f, 0.7f, 0.5f, 0.25f, 0.25f}, {2, 1})});
  CHECK(m.predicted == std::vector<int>{2, 0});
  CHECK(m.accuracy == doctest::Approx(0.5));
}

TEST_CASE("average_predictions: members of other faces or no members are errors") {
  const Predictions a = member({0.6f, 0.3f, 0.1f}, {0});
  const Predictions b = member({0.6f, 0.3f, 0.1f}, {1});
  CHECK(throws_naming([&] { average_predictions({a, b}); }, "member 1"));
  CHECK(throws_naming([&] { average_predictions({}); }, "no predictions"));
}
