// Optimizers, gradient clipping and learning-rate schedules against hand-computed numbers.
#include <doctest/doctest.h>

#include "tests/support/errors.h"

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/lr_schedule.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "layers/layers.h"

using namespace fer;
using fer::testing::throws_naming;

namespace {

// A leaf parameter [x0, x1] that requires grad.
Tensor param2(float x0, float x1) {
  Tensor p = Tensor::from_vector({2}, {x0, x1});
  p.set_requires_grad(true);
  return p;
}

void set_grad(const Tensor& p, std::vector<float> g) {
  p.set_grad(Tensor::from_vector(p.shape(), g));
}

void check_values(const Tensor& t, std::vector<double> expected, double tol = 1e-6) {
  const std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", expected " << expected[i]);
    CHECK(std::fabs(got[i] - expected[i]) <= tol);
  }
}

}  // namespace

// ---- SGD ---------------------------------------------------------------------------------------
// All SGD cases: p = [1, -2], g = [0.5, 1.0], lr = 0.1.

TEST_CASE("SGD: plain step") {
  Tensor p = param2(1.0f, -2.0f);
  SGD opt({p}, 0.1f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // p - lr*g = [1 - 0.05, -2 - 0.1]
  check_values(p, {0.95, -2.1});
}

TEST_CASE("SGD: weight decay is added to the gradient") {
  Tensor p = param2(1.0f, -2.0f);
  SGD opt({p}, 0.1f, 0.0f, 0.0f, /*weight_decay=*/0.1f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // g' = g + 0.1*p = [0.5 + 0.1, 1.0 - 0.2] = [0.6, 0.8];  p - 0.1*g' = [0.94, -2.08]
  check_values(p, {0.94, -2.08});
}

TEST_CASE("SGD: momentum (first buffer = gradient) over two steps") {
  Tensor p = param2(1.0f, -2.0f);
  SGD opt({p}, 0.1f, /*momentum=*/0.9f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // step 1: buf = g = [0.5, 1]; p = [1 - 0.05, -2 - 0.1] = [0.95, -2.1]
  check_values(p, {0.95, -2.1});
  opt.step();
  // step 2: buf = 0.9*[0.5, 1] + [0.5, 1] = [0.95, 1.9]; p = [0.95 - 0.095, -2.1 - 0.19]
  check_values(p, {0.855, -2.29});
  CHECK(opt.step_count(p) == 2);
}

TEST_CASE("SGD: dampening scales the new gradient after the first step") {
  Tensor p = param2(1.0f, -2.0f);
  SGD opt({p}, 0.1f, 0.9f, /*dampening=*/0.5f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();  // buf = g (no dampening on the first step): p = [0.95, -2.1]
  check_values(p, {0.95, -2.1});
  opt.step();
  // buf = 0.9*[0.5, 1] + 0.5*[0.5, 1] = [0.7, 1.4]; p = [0.95 - 0.07, -2.1 - 0.14]
  check_values(p, {0.88, -2.24});
}

TEST_CASE("SGD: nesterov over two steps") {
  Tensor p = param2(1.0f, -2.0f);
  SGD opt({p}, 0.1f, 0.9f, 0.0f, 0.0f, /*nesterov=*/true);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // buf = g; d = g + 0.9*buf = 1.9*g = [0.95, 1.9]; p = [1 - 0.095, -2 - 0.19]
  check_values(p, {0.905, -2.19});
  opt.step();
  // buf = 0.9*g + g = 1.9*g; d = g + 0.9*1.9*g = 2.71*g = [1.355, 2.71]
  // p = [0.905 - 0.1355, -2.19 - 0.271]
  check_values(p, {0.7695, -2.461});
}

TEST_CASE("SGD: nesterov without momentum is rejected") {
  Tensor p = param2(1.0f, -2.0f);
  CHECK_THROWS_AS(SGD({p}, 0.1f, 0.0f, 0.0f, 0.0f, true), Error);
}

// ---- Adam / AdamW ------------------------------------------------------------------------------
// p = [1, -2], lr = 0.1, betas (0.9, 0.999), eps 1e-8; g1 = [0.5, 1.0], g2 = [-1.0, 2.0].
//
// Step 1 (any weight decay folded into g or not): m = 0.1*g, v = 0.001*g^2, so
//   m_hat = m / (1 - 0.9) = g, v_hat = v / (1 - 0.999) = g^2, and the step is lr*g/|g| = 0.1*sign(g)
//   (up to eps: 0.1*1e-8/0.5 = 2e-9).
// Step 2 (no decay): m = 0.9*[0.05, 0.1] + 0.1*[-1, 2] = [-0.055, 0.29]
//   v = 0.999*[0.00025, 0.001] + 0.001*[1, 4] = [0.00124975, 0.004999]
//   bias corrections 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
//   m_hat = [-0.289473684, 1.526315789], v_hat = [0.625187594, 2.500750375]
//   sqrt(v_hat) = [0.790688051, 1.581376098]
//   step = 0.1 * m_hat / sqrt(v_hat) = [-0.036610352, 0.096518200]
namespace {
double adam_step2(double m1, double v1, double g2) {  // the same arithmetic, one element
  const double m = 0.9 * m1 + 0.1 * g2, v = 0.999 * v1 + 0.001 * g2 * g2;
  return 0.1 * (m / 0.19) / (std::sqrt(v / 0.001999) + 1e-8);
}
}  // namespace

TEST_CASE("Adam: two steps with bias correction") {
  Tensor p = param2(1.0f, -2.0f);
  Adam opt({p}, 0.1f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  check_values(p, {0.9, -2.1}, 1e-6);
  set_grad(p, {-1.0f, 2.0f});
  opt.step();
  // p = [0.9 + 0.036610352, -2.1 - 0.096518200]
  check_values(p, {0.936610354, -2.196518201}, 2e-6);
  CHECK(0.9 - adam_step2(0.05, 0.00025, -1.0) == doctest::Approx(0.936610354).epsilon(1e-8));
  CHECK(-2.1 - adam_step2(0.1, 0.001, 2.0) == doctest::Approx(-2.196518201).epsilon(1e-8));

  // The state is what the formulas say.
  StateDict sd = opt.state_dict();
  check_values(sd.at("optim.0.exp_avg"), {-0.055, 0.29}, 1e-7);
  // (1 - beta2 is 1 - 0.999f = 0.00099998713 in float: a relative 1.3e-5 off the decimal value)
  check_values(sd.at("optim.0.exp_avg_sq"), {0.00124975, 0.004999}, 1e-7);
  CHECK(opt.metadata().at("optim.0.step") == "2");
}

TEST_CASE("Adam: L2 weight decay is folded into the gradient") {
  Tensor p = param2(1.0f, -2.0f);
  Adam opt({p}, 0.1f, 0.9f, 0.999f, 1e-8f, /*weight_decay=*/0.1f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // g' = g + 0.1*p = [0.6, 0.8]: still a step of 0.1*sign(g') -> [0.9, -2.1]
  check_values(p, {0.9, -2.1}, 1e-6);
  set_grad(p, {-1.0f, 2.0f});
  opt.step();
  // g' = [-1 + 0.09, 2 - 0.21] = [-0.91, 1.79]
  // m = 0.9*[0.06, 0.08] + 0.1*[-0.91, 1.79] = [-0.037, 0.251]
  // v = 0.999*[0.00036, 0.00064] + 0.001*[0.8281, 3.2041] = [0.00118774, 0.00384346]
  // step = 0.1*(m/0.19)/sqrt(v/0.001999) = [-0.025263519, 0.095272010]
  check_values(p, {0.925263519, -2.195272010}, 2e-6);
}

TEST_CASE("AdamW: decoupled weight decay over two steps") {
  Tensor p = param2(1.0f, -2.0f);
  AdamW opt({p}, 0.1f, 0.9f, 0.999f, 1e-8f, /*weight_decay=*/0.1f);
  CHECK(std::string(opt.type()) == "AdamW");
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // p *= 1 - 0.1*0.1 = 0.99 -> [0.99, -1.98]; then -0.1*sign(g) -> [0.89, -2.08]
  check_values(p, {0.89, -2.08}, 1e-6);
  set_grad(p, {-1.0f, 2.0f});
  opt.step();
  // p *= 0.99 -> [0.8811, -2.0592]; the Adam step does not see the decay: [-0.036610352,
  // 0.096518200] as for plain Adam -> [0.8811 + 0.036610352, -2.0592 - 0.096518200]
  check_values(p, {0.917710354, -2.155718201}, 2e-6);
}

TEST_CASE("AdamW defaults to weight_decay 1e-2") {
  Tensor p = param2(1.0f, -2.0f);
  AdamW opt({p}, 0.1f);
  set_grad(p, {0.5f, 1.0f});
  opt.step();
  // p *= 1 - 0.1*0.01 = 0.999 -> [0.999, -1.998]; -0.1*sign(g) -> [0.899, -2.098]
  check_values(p, {0.899, -2.098}, 1e-6);
}

// ---- Frozen parameters, groups, zero_grad ------------------------------------------------------

TEST_CASE("frozen parameters and parameters without a gradient are untouched") {
  Tensor frozen = param2(1.0f, 2.0f);
  Tensor no_grad = param2(3.0f, 4.0f);
  Tensor live = param2(5.0f, 6.0f);
  Adam opt({frozen, no_grad, live}, 0.1f);
  set_grad(frozen, {1.0f, 1.0f});
  frozen.set_requires_grad(false);
  set_grad(live, {1.0f, 1.0f});
  opt.step();
  check_values(frozen, {1.0, 2.0}, 0.0);
  check_values(no_grad, {3.0, 4.0}, 0.0);
  check_values(live, {4.9, 5.9}, 1e-6);
  CHECK(opt.step_count(frozen) == 0);
  CHECK(opt.step_count(no_grad) == 0);
  CHECK(opt.step_count(live) == 1);
  // Only the updated parameter (index 2) has state.
  StateDict sd = opt.state_dict();
  CHECK(sd.size() == 2);
  CHECK(sd.count("optim.2.exp_avg") == 1);
  CHECK(sd.count("optim.2.exp_avg_sq") == 1);
}

TEST_CASE("parameter groups keep their own learning rates, and set_lr keeps the ratio") {
  Tensor backbone = param2(1.0f, 1.0f);
  Tensor head = param2(1.0f, 1.0f);
  // Backbone at lr/10; the head inherits the optimizer's lr (negative lr in the group).
  SGD opt({ParamGroup{{backbone}, 0.01f, -1.0f, "backbone"}, ParamGroup{{head}, -1.0f, -1.0f, "head"}},
          0.1f);
  CHECK(opt.groups()[0].lr == doctest::Approx(0.01));
  CHECK(opt.groups()[1].lr == doctest::Approx(0.1));
  set_grad(backbone, {1.0f, -1.0f});
  set_grad(head, {1.0f, -1.0f});
  opt.step();
  check_values(backbone, {0.99, 1.01});  // 1 -+ 0.01
  check_values(head, {0.9, 1.1});        // 1 -+ 0.1

  opt.set_lr(0.05f);  // half the nominal lr: both groups halve
  CHECK(opt.lr() == doctest::Approx(0.05));
  CHECK(opt.groups()[0].lr == doctest::Approx(0.005));
  CHECK(opt.groups()[1].lr == doctest::Approx(0.05));
  opt.step();
  check_values(backbone, {0.985, 1.015});
  check_values(head, {0.85, 1.15});

  opt.zero_grad();
  CHECK_FALSE(backbone.grad().defined());
  CHECK_FALSE(head.grad().defined());
}

TEST_CASE("group weight decay overrides the optimizer's") {
  Tensor a = param2(1.0f, -2.0f);
  Tensor b = param2(1.0f, -2.0f);
  SGD opt({ParamGroup{{a}, -1.0f, 0.0f, "no_decay"}, ParamGroup{{b}}}, 0.1f, 0.0f, 0.0f, 0.1f);
  set_grad(a, {0.5f, 1.0f});
  set_grad(b, {0.5f, 1.0f});
  opt.step();
  check_values(a, {0.95, -2.1});   // no decay
  check_values(b, {0.94, -2.08});  // g + 0.1*p = [0.6, 0.8]
}

TEST_CASE("a parameter listed twice is rejected") {
  Tensor p = param2(1.0f, 2.0f);
  CHECK_THROWS_AS(SGD({p, p}, 0.1f), Error);
}

// ---- Checkpoints -------------------------------------------------------------------------------

namespace {

// A deterministic gradient for parameter i at step t.
void set_step_grads(const std::vector<Tensor>& ps, int t) {
  for (size_t i = 0; i < ps.size(); ++i) {
    std::vector<float> g(ps[i].numel());
    for (size_t j = 0; j < g.size(); ++j)
      g[j] = std::sin(0.7f * static_cast<float>(t + 1) + 1.3f * static_cast<float>(i) +
                      0.37f * static_cast<float>(j));
    ps[i].set_grad(Tensor::from_vector(ps[i].shape(), g));
  }
}

std::vector<Tensor> make_params() {
  std::vector<Tensor> ps = {Tensor::from_vector({2, 3}, {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}),
                            Tensor::from_vector({3}, {1.0f, 2.0f, -3.0f}),
                            Tensor::from_vector({1}, {0.25f})};
  for (Tensor& p : ps) p.set_requires_grad(true);
  return ps;
}

std::vector<Tensor> clone_params(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const Tensor& p : ps) {
    out.push_back(p.clone());
    out.back().set_requires_grad(true);
  }
  return out;
}

// Three uninterrupted steps versus `split` steps, a checkpoint, a fresh optimizer on copies of
// the parameters and 3 - split more steps: the parameters must agree.
template <typename MakeOpt>
void check_resume(MakeOpt make_opt, int split) {
  CAPTURE(split);
  // Reference: three uninterrupted steps.
  std::vector<Tensor> ref = make_params();
  auto ref_opt = make_opt(ref);
  for (int t = 0; t < 3; ++t) {
    set_step_grads(ref, t);
    if (t == 0) ref[2].zero_grad();  // the last parameter gets its first gradient at step 2
    ref_opt->step();
  }

  std::vector<Tensor> a = make_params();
  auto a_opt = make_opt(a);
  for (int t = 0; t < split; ++t) {
    set_step_grads(a, t);
    if (t == 0) a[2].zero_grad();
    a_opt->step();
  }
  StateDict state;
  for (auto& [k, t] : a_opt->state_dict()) state[k] = t.clone();  // as if written to disk
  const Metadata meta = a_opt->metadata();
  if (split == 1) {
    CHECK(meta.count("optim.2.step") == 0);  // not updated yet: no state
    for (const auto& [k, t] : state) CHECK(k.rfind("optim.2.", 0) == std::string::npos);
  }

  std::vector<Tensor> b = clone_params(a);
  auto b_opt = make_opt(b);
  b_opt->set_lr(123.0f);  // overwritten by the checkpoint
  b_opt->load_state_dict(state, meta);
  CHECK(b_opt->lr() == a_opt->lr());
  for (int t = split; t < 3; ++t) {
    set_step_grads(b, t);
    b_opt->step();
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    const std::vector<float> want = ref[i].to_vector(), got = b[i].to_vector();
    for (size_t j = 0; j < want.size(); ++j) CHECK(std::fabs(want[j] - got[j]) <= 1e-7);
  }
  CHECK(b_opt->step_count(b[0]) == 3);
  CHECK(b_opt->step_count(b[2]) == 2);
}

}  // namespace

TEST_CASE("Adam state_dict round trip resumes exactly") {
  auto make = [](const std::vector<Tensor>& ps) {
    return std::make_unique<Adam>(ps, 0.05f, 0.9f, 0.999f, 1e-8f, 0.01f);
  };
  check_resume(make, 1);
  check_resume(make, 2);
}

TEST_CASE("AdamW state_dict round trip resumes exactly") {
  auto make = [](const std::vector<Tensor>& ps) { return std::make_unique<AdamW>(ps, 0.05f); };
  check_resume(make, 1);
  check_resume(make, 2);
}

TEST_CASE("SGD with momentum state_dict round trip resumes exactly") {
  auto make = [](const std::vector<Tensor>& ps) {
    return std::make_unique<SGD>(ps, 0.1f, 0.9f, 0.0f, 1e-3f, true);
  };
  check_resume(make, 1);
  check_resume(make, 2);
}

TEST_CASE("state_dict keys, metadata and load errors") {
  std::vector<Tensor> ps = make_params();
  Adam opt(ps, 0.01f);
  set_step_grads(ps, 0);
  opt.step();
  const StateDict sd = opt.state_dict();
  const Metadata meta = opt.metadata();
  CHECK(sd.count("optim.1.exp_avg") == 1);
  CHECK(sd.at("optim.0.exp_avg_sq").shape() == Shape{2, 3});
  CHECK(meta.at("optim.type") == "Adam");
  CHECK(meta.at("optim.2.step") == "1");
  CHECK(std::stof(meta.at("optim.beta2")) == 0.999f);
  CHECK(opt.state_dict("opt/").count("opt/0.exp_avg") == 1);

  std::vector<Tensor> qs = clone_params(ps);
  Adam other(qs, 0.01f);

  StateDict missing = sd;
  missing.erase("optim.1.exp_avg");
  CHECK(throws_naming([&] { other.load_state_dict(missing, meta); }, "optim.1.exp_avg"));

  StateDict bad_shape = sd;
  bad_shape["optim.0.exp_avg"] = Tensor::zeros({3, 2});
  CHECK(throws_naming([&] { other.load_state_dict(bad_shape, meta); }, "optim.0.exp_avg"));

  Metadata bad_meta = meta;
  bad_meta.erase("optim.1.step");  // parameter 1 then has no state: loads fine (it is lazily made)
  CHECK_NOTHROW(other.load_state_dict(sd, bad_meta));
  CHECK(other.step_count(qs[1]) == 0);
  bad_meta.erase("optim.beta1");
  CHECK(throws_naming([&] { other.load_state_dict(sd, bad_meta); }, "optim.beta1"));

  // A bad value after good ones changes nothing: beta1 is read (and valid) before beta2 fails.
  Metadata bad_beta2 = meta;
  bad_beta2["optim.beta1"] = "0.5";
  bad_beta2["optim.beta2"] = "1.5";
  CHECK(throws_naming([&] { other.load_state_dict(sd, bad_beta2); }, "invalid beta2"));
  CHECK(other.beta1() == 0.9f);
  CHECK(other.beta2() == 0.999f);

  SGD sgd(qs, 0.1f);
  CHECK(throws_naming([&] { sgd.load_state_dict(sd, meta); }, "Adam"));

  // The same for SGD: momentum 0.5 is valid alone, but nesterov with dampening is not.
  SGD nesterov(qs, 0.1f, 0.9f, 0.0f, 0.0f, true);
  Metadata sgd_meta = nesterov.metadata();
  sgd_meta["optim.momentum"] = "0.5";
  sgd_meta["optim.dampening"] = "0.3";
  CHECK(throws_naming([&] { nesterov.load_state_dict(nesterov.state_dict(), sgd_meta); },
                      "nesterov momentum requires"));
  CHECK(nesterov.momentum() == 0.9f);
  CHECK(nesterov.dampening() == 0.0f);
  CHECK(nesterov.nesterov());

  // Step counts go on being incremented: negative or near the end of int64 is refused by name
  // (a crafted checkpoint would otherwise overflow the count on the next update).
  for (const char* step : {"-1", "9223372036854775807"}) {
    Metadata crafted = meta;
    crafted["optim.2.step"] = step;
    INFO("optim.2.step = " << step);
    CHECK(throws_naming([&] { other.load_state_dict(sd, crafted); }, "'optim.2.step' must be a count"));
  }
}

// ---- Gradient clipping -------------------------------------------------------------------------

TEST_CASE("clip_grad_norm: the global norm over all parameters") {
  Tensor a = Tensor::from_vector({1}, {0.0f}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({1}, {0.0f}).set_requires_grad(true);
  Tensor no_grad = Tensor::from_vector({1}, {0.0f}).set_requires_grad(true);
  set_grad(a, {3.0f});
  set_grad(b, {4.0f});

  // Norm sqrt(9 + 16) = 5 <= 10: nothing changes.
  CHECK(clip_grad_norm({a, b, no_grad}, 10.0f) == doctest::Approx(5.0).epsilon(1e-7));
  check_values(a.grad(), {3.0}, 0.0);
  check_values(b.grad(), {4.0}, 0.0);

  // Clipped to 1: scale 1 / (5 + 1e-6) -> [0.6, 0.8]; returns the norm before clipping.
  CHECK(clip_grad_norm({a, b, no_grad}, 1.0f) == doctest::Approx(5.0).epsilon(1e-7));
  check_values(a.grad(), {0.6}, 1e-6);
  check_values(b.grad(), {0.8}, 1e-6);
  CHECK_FALSE(no_grad.grad().defined());
  // The clipped gradients now have norm 1 (just under).
  CHECK(clip_grad_norm({a, b}, 1.0f) == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("clip_grad_norm on one tensor [3, 4]") {
  Tensor p = param2(0.0f, 0.0f);
  set_grad(p, {3.0f, 4.0f});
  CHECK(clip_grad_norm({p}, 1.0f) == doctest::Approx(5.0).epsilon(1e-7));
  check_values(p.grad(), {0.6, 0.8}, 1e-6);
}

// ---- Schedules ---------------------------------------------------------------------------------

TEST_CASE("StepLR") {
  StepLR s(0.1f, /*step_size=*/3, /*gamma=*/0.5f);
  CHECK(s.lr_at(0) == doctest::Approx(0.1));
  CHECK(s.lr_at(2) == doctest::Approx(0.1));
  CHECK(s.lr_at(3) == doctest::Approx(0.05));    // 0.1 * 0.5^1
  CHECK(s.lr_at(5) == doctest::Approx(0.05));
  CHECK(s.lr_at(6) == doctest::Approx(0.025));   // 0.1 * 0.5^2
  CHECK(s.lr_at(9) == doctest::Approx(0.0125));  // 0.1 * 0.5^3
}

TEST_CASE("CosineLR with warmup") {
  CosineLR s(1.0f, /*total=*/10, /*min_lr=*/0.1f, /*warmup=*/2);
  // warmup: base * (t + 1) / (warmup + 1)
  CHECK(s.lr_at(0) == doctest::Approx(1.0 / 3.0));
  CHECK(s.lr_at(1) == doctest::Approx(2.0 / 3.0));
  // cosine over total - warmup = 8 steps from t = 2: min + (base - min) * (1 + cos(pi*(t-2)/8)) / 2
  CHECK(s.lr_at(2) == doctest::Approx(1.0));
  CHECK(s.lr_at(4) == doctest::Approx(0.8681980515));  // 0.1 + 0.9 * (1 + cos(pi/4)) / 2
  CHECK(s.lr_at(6) == doctest::Approx(0.55));          // 0.1 + 0.9 * (1 + cos(pi/2)) / 2
  CHECK(s.lr_at(10) == doctest::Approx(0.1));
  CHECK(s.lr_at(50) == doctest::Approx(0.1));
  // Without warmup it starts at the base lr.
  CosineLR plain(0.5f, 4);
  CHECK(plain.lr_at(0) == doctest::Approx(0.5));
  CHECK(plain.lr_at(2) == doctest::Approx(0.25));  // 0.5 * (1 + cos(pi/2)) / 2
}

TEST_CASE("OneCycleLR as PyTorch (cos, two phases)") {
  OneCycleLR s(1.0f, /*total_steps=*/100);  // pct_start 0.3, div 25, final_div 1e4
  // initial = 1/25 = 0.04; min = 0.04/1e4 = 4e-6; phase 1 ends at 0.3*100 - 1 = 29
  CHECK(s.lr_at(0) == doctest::Approx(0.04).epsilon(1e-6));
  // phase 1: 1 + (0.04 - 1) * (1 + cos(pi * 10/29)) / 2 = 0.2951639485
  CHECK(s.lr_at(10) == doctest::Approx(0.2951639485).epsilon(1e-6));
  CHECK(s.lr_at(29) == doctest::Approx(1.0).epsilon(1e-6));
  // phase 2 from 29 to 99: t = 30 -> p = 1/70: 4e-6 + (1 - 4e-6) * (1 + cos(pi/70)) / 2
  CHECK(s.lr_at(30) == doctest::Approx(0.9994965353).epsilon(1e-6));
  CHECK(s.lr_at(64) == doctest::Approx(0.500002).epsilon(1e-6));  // p = 1/2: (1 + 4e-6) / 2
  CHECK(s.lr_at(99) == doctest::Approx(4e-6).epsilon(1e-4));      // max / 25 / 1e4
  CHECK_THROWS_AS(s.lr_at(101), Error);
}

TEST_CASE("a schedule drives the optimizer's groups") {
  Tensor backbone = param2(0.0f, 0.0f), head = param2(0.0f, 0.0f);
  SGD opt({ParamGroup{{backbone}, 0.01f, -1.0f, "backbone"}, ParamGroup{{head}}}, 0.1f);
  StepLR sched(0.1f, 2, 0.1f);
  opt.set_lr(sched.lr_at(2));  // 0.01
  CHECK(opt.groups()[1].lr == doctest::Approx(0.01));
  CHECK(opt.groups()[0].lr == doctest::Approx(0.001));
}

// ---- ReduceLROnPlateau -------------------------------------------------------------------------

TEST_CASE("ReduceLROnPlateau: patience, rel threshold, cooldown, min_lr") {
  ReduceLROnPlateau plateau("min", /*factor=*/0.5f, /*patience=*/2, /*threshold=*/1e-4f,
                            /*cooldown=*/1, /*min_lr=*/0.2f);
  float lr = 1.0f;
  lr = plateau.step(10.0f, lr);  // epoch 1: first value is the best
  CHECK(plateau.best() == doctest::Approx(10.0));
  CHECK(plateau.num_bad_epochs() == 0);
  lr = plateau.step(10.0f, lr);  // epoch 2: equal is not better: 1 bad
  // epoch 3: 9.9995 is better than 10 but not by the relative threshold (needs < 10*(1-1e-4) =
  // 9.999): 2 bad
  lr = plateau.step(9.9995f, lr);
  CHECK(plateau.num_bad_epochs() == 2);
  CHECK(lr == 1.0f);
  lr = plateau.step(10.0f, lr);  // epoch 4: 3 bad > patience 2: reduce to 0.5, cooldown 1
  CHECK(lr == doctest::Approx(0.5));
  CHECK(plateau.num_bad_epochs() == 0);
  CHECK(plateau.cooldown_counter() == 1);

  lr = plateau.step(11.0f, lr);  // epoch 5: bad, but in cooldown: counter -> 0, bad epochs reset
  CHECK(plateau.num_bad_epochs() == 0);
  CHECK(plateau.cooldown_counter() == 0);
  lr = plateau.step(11.0f, lr);  // epoch 6: 1 bad

  // Checkpoint / resume in the middle.
  const auto meta = plateau.to_metadata();
  ReduceLROnPlateau resumed("min", 0.5f, 2, 1e-4f, 1, 0.2f);
  resumed.from_metadata(meta);
  CHECK(resumed.best() == plateau.best());
  CHECK(resumed.num_bad_epochs() == 1);
  CHECK(resumed.last_epoch() == 6);

  for (ReduceLROnPlateau* r : {&plateau, &resumed}) {
    float l = lr;
    l = r->step(11.0f, l);  // epoch 7: 2 bad (without the cooldown this would be the 3rd: reduce)
    CHECK(l == doctest::Approx(0.5));
    l = r->step(11.0f, l);  // epoch 8: 3 bad: 0.25
    CHECK(l == doctest::Approx(0.25));
    l = r->step(9.0f, l);   // epoch 9: better (cooldown ends too)
    CHECK(r->best() == doctest::Approx(9.0));
    for (int e = 0; e < 2; ++e) l = r->step(9.5f, l);  // epochs 10, 11: 2 bad
    CHECK(l == doctest::Approx(0.25));
    l = r->step(9.5f, l);  // epoch 12: 3 bad: max(0.125, min_lr 0.2) = 0.2
    CHECK(l == doctest::Approx(0.2));
    for (int e = 0; e < 8; ++e) l = r->step(9.5f, l);  // more reductions are clamped at min_lr
    CHECK(l == doctest::Approx(0.2));
  }

  std::map<std::string, std::string> broken = meta;
  broken.erase("plateau.best");
  CHECK(throws_naming([&] { resumed.from_metadata(broken); }, "plateau.best"));
}

TEST_CASE("ReduceLROnPlateau in max mode") {
  ReduceLROnPlateau plateau("max", 0.1f, /*patience=*/0);
  float lr = 0.1f;
  lr = plateau.step(0.5f, lr);  // best 0.5
  lr = plateau.step(0.6f, lr);  // better
  CHECK(lr == doctest::Approx(0.1));
  lr = plateau.step(0.6f, lr);  // not better: 1 bad > patience 0 -> 0.01
  CHECK(lr == doctest::Approx(0.01));
  CHECK_THROWS_AS(ReduceLROnPlateau("median"), Error);
  CHECK_THROWS_AS(ReduceLROnPlateau("min", 1.0f), Error);
}

// ---- Integration: fit a linear model --------------------------------------------------------------

TEST_CASE("SGD fits Linear(2, 1) to y = 3 x1 - 2 x2 + 1") {
  const std::vector<float> xs = {0, 0, 1, 0, 0, 1, 1, 1, 2, -1, -1, 2, 0.5f, -0.5f, -1, -1};
  std::vector<float> ys;
  for (size_t i = 0; i < xs.size(); i += 2) ys.push_back(3 * xs[i] - 2 * xs[i + 1] + 1);
  const int64_t n = static_cast<int64_t>(ys.size());
  const Tensor x = Tensor::from_vector({n, 2}, xs);
  const Tensor y = Tensor::from_vector({n, 1}, ys);

  Linear model(2, 1);
  SGD opt(model.parameters(), 0.05f, 0.9f);
  auto loss_fn = [&] {
    Tensor diff = add(model(x), scale(y, -1.0f));
    return mean(mul(diff, diff));
  };
  float loss = 0.0f;
  for (int it = 0; it < 500; ++it) {
    opt.zero_grad();
    Tensor l = loss_fn();
    l.backward();
    opt.step();
    loss = l.item();
  }
  loss = loss_fn().item();
  INFO("final loss " << loss);
  CHECK(loss < 1e-4f);
  check_values(model.weight, {3.0, -2.0}, 1e-2);
  check_values(model.bias, {1.0}, 1e-2);
}
