// Finite-difference gradient checking for any op or layer, in the spirit of torch.autograd's
// gradcheck: the analytic gradient of L = sum(f(inputs) * probe), with a fixed random probe so
// that every output element matters differently, is compared with central differences
//   dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
// for every element of every input that requires grad. Inputs are perturbed in place, so a
// layer's own parameter tensors can be passed as inputs and the check covers them too.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace fer::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  float eps = 1e-2f;
  float tol = 2e-2f;   // |analytic - numeric| <= tol * max(1, |numeric|)
  uint64_t seed = 7;   // reseeds the default generator before every evaluation (dropout masks)
};

inline double probe_loss(const Fn& f, const std::vector<Tensor>& inputs, const Tensor& probe,
                         uint64_t seed) {
  manual_seed(seed);
  NoGradGuard no_grad;
  const std::vector<float> out = f(inputs).to_vector(), p = probe.to_vector();
  double total = 0;
  for (size_t i = 0; i < out.size(); ++i) total += static_cast<double>(out[i]) * p[i];
  return total;
}

// Returns the largest relative error seen; CHECKs every element against the tolerance.
inline double gradcheck(const std::string& name, const Fn& f, std::vector<Tensor> inputs,
                        const GradcheckOptions& o = {}) {
  for (Tensor& t : inputs) t.zero_grad();
  manual_seed(o.seed);
  Tensor out = f(inputs);
  Generator probe_gen(1234);
  Tensor probe = Tensor::uniform(out.shape(), -1.0f, 1.0f, probe_gen);
  Tensor loss = sum(mul(out, probe));
  loss.backward();

  double worst = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE_MESSAGE(x.grad().defined(), name, ": input ", k, " got no gradient");
    const std::vector<float> analytic = x.grad().to_vector();
    float* data = x.data();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float saved = data[i];
      data[i] = saved + o.eps;
      const double plus = probe_loss(f, inputs, probe, o.seed);
      data[i] = saved - o.eps;
      const double minus = probe_loss(f, inputs, probe, o.seed);
      data[i] = saved;
      const double numeric = (plus - minus) / (2.0 * o.eps);
      const double err = std::abs(analytic[i] - numeric) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, err);
      if (err > o.tol) {
        FAIL_CHECK(name, ": d/d input", k, "[", i, "] analytic ", analytic[i], " numeric ",
                   numeric);
        return worst;
      }
    }
  }
  CHECK_MESSAGE(worst <= o.tol, name);
  return worst;
}

// A tensor of values spread in [-1, 1] that requires grad.
inline Tensor random_input(const Shape& shape, uint64_t seed, bool requires_grad = true) {
  Generator gen(seed);
  Tensor t = Tensor::uniform(shape, -1.0f, 1.0f, gen);
  t.set_requires_grad(requires_grad);
  return t;
}

}  // namespace fer::testing
