// Calibrated confidences (engine/calibration.h): the expected calibration error, temperature
// scaling of probabilities, the temperature fit, and the temperature's round trip through a
// checkpoint's metadata.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "apps/training/checkpoint.h"
#include "engine/calibration.h"
#include "engine/random.h"

using namespace fer;

TEST_CASE("ECE by hand: two bins off by known amounts, empty bins ignored") {
  // Four samples of 2 classes: confidences 0.85, 0.85 (one right) and 0.55, 0.55 (both right).
  const std::vector<float> probs{0.85f, 0.15f, 0.15f, 0.85f, 0.55f, 0.45f, 0.45f, 0.55f};
  const std::vector<int> labels{0, 0, 0, 1};
  const metrics::Calibration c = metrics::calibration(probs, labels, 2, 10);
  // Bin (0.8, 0.9]: acc 0.5, conf 0.85; bin (0.5, 0.6]: acc 1, conf 0.55. ECE = 0.5*0.35 + 0.5*0.45.
  CHECK(c.bins[8].count == 2);
  CHECK(c.bins[8].accuracy == doctest::Approx(0.5));
  CHECK(c.bins[5].count == 2);
  CHECK(c.bins[5].confidence == doctest::Approx(0.55));
  CHECK(c.ece == doctest::Approx(0.4));
  CHECK_THROWS(metrics::calibration(probs, {0, 0, 2, 1}, 2));
  CHECK_THROWS(metrics::calibration(probs, {0, 0, 0}, 2));
}

TEST_CASE("temperature scaling keeps the argmax and flattens (T > 1) or sharpens (T < 1)") {
  std::vector<float> p{0.7f, 0.2f, 0.1f};
  std::vector<float> same = p;
  metrics::apply_temperature(same, 3, 1.0);
  CHECK(same == p);
  std::vector<float> flat = p, sharp = p;
  metrics::apply_temperature(flat, 3, 2.0);
  metrics::apply_temperature(sharp, 3, 0.5);
  // p^(1/2) normalised: sqrt(.7), sqrt(.2), sqrt(.1) over their sum.
  const double s = std::sqrt(0.7) + std::sqrt(0.2) + std::sqrt(0.1);
  CHECK(flat[0] == doctest::Approx(std::sqrt(0.7) / s));
  CHECK(flat[2] == doctest::Approx(std::sqrt(0.1) / s));
  CHECK(sharp[0] == doctest::Approx(0.49 / (0.49 + 0.04 + 0.01)));
  CHECK(flat[0] < p[0]);
  CHECK(sharp[0] > p[0]);
  CHECK_THROWS(metrics::apply_temperature(flat, 3, 0.0));
}

TEST_CASE("the fitted temperature recovers the one the labels were drawn with") {
  // Labels drawn from softmax(z / 2), probabilities softmax(z): the model is overconfident by a
  // temperature of 2, which the fit must find, and which must lower the ECE.
  Generator gen(3);
  const int N = 20000, C = 5;
  std::vector<float> probs(static_cast<size_t>(N * C));
  std::vector<int> labels(N);
  for (int i = 0; i < N; ++i) {
    double z[C], p[C], q[C], sp = 0, sq = 0;
    for (int c = 0; c < C; ++c) z[c] = 3.0 * gen.normal();
    for (int c = 0; c < C; ++c) sp += (p[c] = std::exp(z[c])), sq += (q[c] = std::exp(z[c] / 2));
    double u = gen.uniform() * sq;
    labels[i] = C - 1;
    for (int c = 0; c < C; ++c) {
      probs[i * C + c] = static_cast<float>(p[c] / sp);
      if (u < q[c] && labels[i] == C - 1 && u >= 0) labels[i] = c;
      u -= q[c];
    }
  }
  const double t = metrics::fit_temperature(probs, labels, C);
  CHECK(t == doctest::Approx(2.0).epsilon(0.05));
  const double before = metrics::calibration(probs, labels, C).ece;
  CHECK(metrics::temperature_nll(probs, labels, C, t) < metrics::temperature_nll(probs, labels, C, 1.0));
  metrics::apply_temperature(probs, C, t);
  const double after = metrics::calibration(probs, labels, C).ece;
  MESSAGE("ECE " << before << " -> " << after << " at T = " << t);
  CHECK(after < 0.02);
  CHECK(after < before / 3);
}

TEST_CASE("a checkpoint carries its temperature; none means 1; a bad one is named") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("fer_calibration_" + std::to_string(::getpid()) + ".safetensors")).string();
  ModelSpec spec;
  spec.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  save_checkpoint(path, *create_model(spec.name, spec.config), spec);
  CHECK(calibration_temperature(load_safetensors(path).metadata, path) == 1.0);
  store_calibration(path, 1.75, "val (tta none)");
  const SafetensorsFile f = load_safetensors(path);
  CHECK(calibration_temperature(f.metadata, path) == doctest::Approx(1.75));
  CHECK(f.metadata.at("calibration.fitted_on") == "val (tta none)");
  CHECK(load_checkpoint(path).spec.name == spec.name);  // still a loadable checkpoint
  Metadata bad = f.metadata;
  bad["calibration.temperature"] = "-3";
  CHECK_THROWS_WITH(calibration_temperature(bad, path), doctest::Contains(path.c_str()));
  std::filesystem::remove(path);
}
