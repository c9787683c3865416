// Finite-difference gradient checks for every op of engine/ops.h, for every differentiable input.
//
// The op-case registry (tests/support/op_cases.h) drives the same check over every registered
// case in test_op_cases.cpp. The checks here stay for what its uniform random inputs cannot give:
// activations on values kept away from their kinks, max pooling on distinct values, every
// cross-entropy option, gradients that meet in a small graph.
#include "tests/support/gradcheck.h"

using namespace fer;
using namespace fer::testing;

TEST_CASE("elementwise: add, mul, scale, sum, mean") {
  Tensor a = random_input({2, 3, 4}, 1), b = random_input({2, 3, 4}, 2);
  gradcheck("add", [](auto& in) { return add(in[0], in[1]); }, {a, b});
  gradcheck("mul", [](auto& in) { return mul(in[0], in[1]); }, {a, b});
  gradcheck("scale", [](auto& in) { return scale(in[0], -2.5f); }, {a});
  gradcheck("sum", [](auto& in) { return sum(in[0]); }, {a});
  gradcheck("mean", [](auto& in) { return mean(in[0]); }, {a});
}

TEST_CASE("activations") {
  // Values kept away from the kinks (0 and 6) where finite differences are undefined.
  Generator gen(3);
  std::vector<float> v(60);
  for (size_t i = 0; i < v.size(); ++i) {
    float x = gen.uniform(0.1f, 7.5f);
    v[i] = (i % 2 ? x : -x);
    if (std::abs(v[i] - 6.0f) < 0.1f) v[i] = 5.0f;
  }
  Tensor x = Tensor::from_vector({3, 20}, v);
  x.set_requires_grad(true);
  for (Activation act : {Activation::ReLU, Activation::ReLU6, Activation::LeakyReLU,
                         Activation::Sigmoid, Activation::Tanh}) {
    gradcheck("activation " + std::to_string(static_cast<int>(act)),
              [act](auto& in) { return activation(in[0], act, 0.1f); }, {x});
  }
}

TEST_CASE("matmul and linear") {
  Tensor a = random_input({3, 4}, 4), b = random_input({4, 5}, 5);
  gradcheck("matmul", [](auto& in) { return matmul(in[0], in[1]); }, {a, b});
  Tensor x = random_input({3, 6}, 6), w = random_input({4, 6}, 7), bias = random_input({4}, 8);
  gradcheck("linear", [](auto& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias});
  gradcheck("linear without bias", [](auto& in) { return linear(in[0], in[1], Tensor()); }, {x, w});
}

TEST_CASE("conv2d: stride, padding, dilation, groups, depthwise, pointwise") {
  struct Case {
    const char* name;
    Shape x, w;
    Conv2dOptions o;
  };
  const std::vector<Case> cases = {
      {"3x3 pad 1", {2, 3, 6, 5}, {4, 3, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
      {"3x3 stride 2", {2, 2, 7, 7}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}},
      {"5x3 asymmetric, no pad", {1, 2, 7, 6}, {2, 2, 5, 3}, {1, 1, 0, 0, 1, 1, 1}},
      {"dilation 2", {1, 2, 7, 7}, {2, 2, 3, 3}, {1, 1, 2, 2, 2, 2, 1}},
      {"groups 2", {2, 4, 5, 5}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}},
      {"depthwise", {2, 3, 5, 5}, {3, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 3}},
      {"depthwise stride 2", {1, 4, 6, 6}, {4, 1, 3, 3}, {2, 2, 1, 1, 1, 1, 4}},
      {"pointwise 1x1", {2, 3, 4, 4}, {5, 3, 1, 1}, {1, 1, 0, 0, 1, 1, 1}},
      {"1x1 stride 2", {1, 3, 5, 5}, {2, 3, 1, 1}, {2, 2, 0, 0, 1, 1, 1}},
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    Tensor x = random_input(c.x, seed++), w = random_input(c.w, seed++),
           b = random_input({c.w[0]}, seed++);
    const Conv2dOptions o = c.o;
    gradcheck(std::string("conv2d ") + c.name,
              [o](auto& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
  }
}

TEST_CASE("conv2d with a batch larger than the thread count (threaded weight gradient)") {
  Tensor x = random_input({5, 2, 5, 5}, 30), w = random_input({3, 2, 3, 3}, 31),
         b = random_input({3}, 32);
  Conv2dOptions o;
  o.pad_h = o.pad_w = 1;
  gradcheck("conv2d batch 5", [o](auto& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b});
}

TEST_CASE("pooling") {
  // Distinct values so the max is unique in every window.
  std::vector<float> v(2 * 3 * 7 * 6);
  Generator gen(40);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.05f;
  for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[gen.below(i + 1)]);
  Tensor x = Tensor::from_vector({2, 3, 7, 6}, v);
  x.set_requires_grad(true);
  Pool2dOptions p2;  // 2x2 stride 2
  Pool2dOptions p3;
  p3.kernel_h = p3.kernel_w = 3;
  p3.stride_h = p3.stride_w = 2;
  p3.pad_h = p3.pad_w = 1;
  Pool2dOptions p3ceil = p3;
  p3ceil.pad_h = p3ceil.pad_w = 0;
  p3ceil.ceil_mode = true;
  GradcheckOptions fine;
  fine.eps = 1e-3f;  // smaller than the gaps between values, so no window changes its argmax
  for (auto [name, o] : {std::pair{"2x2", p2}, std::pair{"3x3 s2 p1", p3}, std::pair{"3x3 ceil", p3ceil}}) {
    Pool2dOptions opts = o;
    gradcheck(std::string("max_pool2d ") + name, [opts](auto& in) { return max_pool2d(in[0], opts); }, {x}, fine);
    gradcheck(std::string("avg_pool2d ") + name, [opts](auto& in) { return avg_pool2d(in[0], opts); }, {x});
  }
  gradcheck("global_avg_pool", [](auto& in) { return global_avg_pool(in[0]); }, {x});
}

TEST_CASE("batch_norm: train and eval, 4-d and 2-d") {
  for (Shape shape : {Shape{3, 4, 3, 2}, Shape{6, 5}}) {
    const int64_t C = shape[1];
    Tensor x = random_input(shape, 50), gamma = random_input({C}, 51), beta = random_input({C}, 52);
    Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
    gradcheck("batch_norm train " + shape_str(shape),
              [&](auto& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true, 0.1f, 1e-5f); },
              {x, gamma, beta});
    Tensor rm2 = random_input({C}, 53, false), rv2 = Tensor::full({C}, 0.7f);
    gradcheck("batch_norm eval " + shape_str(shape),
              [&](auto& in) { return batch_norm(in[0], in[1], in[2], rm2, rv2, false, 0.1f, 1e-5f); },
              {x, gamma, beta});
  }
}

TEST_CASE("batch_norm_relu(6): the values and gradients of relu(batch_norm(x)) and relu6(...), bit for bit") {
  // The fused op recomputes the activation's mask from x inside the batchnorm kernels; the
  // composition takes it from the intermediate tensor. Both must give the same bits: output, the
  // three gradients and the running statistics, in training and evaluation, with a negative gamma
  // and beta (more values masked) and a plane of one value (2-d input). ReLU6's gammas are
  // large so that z crosses 6 as well as 0.
  for (BnActivation act : {BnActivation::ReLU, BnActivation::ReLU6}) {
    const bool relu6_case = act == BnActivation::ReLU6;
    for (Shape shape : {Shape{3, 4, 5, 7}, Shape{9, 6}}) {
      for (bool training : {true, false}) {
        const int64_t C = shape[1];
        auto run = [&](bool fused) {
          Tensor x = random_input(shape, 70), beta = random_input({C}, 72);
          std::vector<float> g = random_input({C}, 71, false).to_vector();
          if (relu6_case)  // +-4, 5, 6, ...: |z| reaches past 6 in every channel
            for (size_t i = 0; i < g.size(); ++i) g[i] = (i % 2 ? -1.0f : 1.0f) * (4.0f + static_cast<float>(i));
          Tensor gamma = Tensor::from_vector({C}, g);
          gamma.set_requires_grad(true);
          Tensor rm = random_input({C}, 73, false), rv = Tensor::full({C}, 0.8f);
          Tensor y = !fused      ? batch_norm(x, gamma, beta, rm, rv, training, 0.1f, 1e-5f)
                     : relu6_case ? batch_norm_relu6(x, gamma, beta, rm, rv, training, 0.1f, 1e-5f)
                                  : batch_norm_relu(x, gamma, beta, rm, rv, training, 0.1f, 1e-5f);
          if (!fused) y = relu6_case ? relu6(y) : relu(y);
          sum(mul(y, random_input(shape, 74, false))).backward();
          return std::vector<Tensor>{y.detach(), x.grad(), gamma.grad(), beta.grad(), rm, rv};
        };
        const std::vector<Tensor> composed = run(false), fused = run(true);
        const char* what[] = {"output", "dx", "dgamma", "dbeta", "running_mean", "running_var"};
        for (size_t i = 0; i < composed.size(); ++i) {
          INFO((relu6_case ? "relu6 " : "relu "), shape_str(shape), (training ? " train " : " eval "), what[i]);
          CHECK(composed[i].to_vector() == fused[i].to_vector());
        }
        int masked = 0, clipped = 0;
        for (float v : composed[0].to_vector()) {
          masked += v == 0.0f;
          clipped += v == 6.0f;
        }
        CHECK(masked > 0);  // the mask is exercised
        if (relu6_case) CHECK(clipped > 0);
      }
    }
  }
  // And by finite differences, on values kept away from the kink: each channel holds +-v pairs
  // (|v| in [0.3, 1.5]), so its mean is 0 and every normalised value is at least 0.3 / std from
  // beta's small shift, far beyond what a perturbation of eps moves it.
  const Shape shape{4, 3, 3, 2};
  const int64_t N = 4, C = 3, HW = 6, M = N * HW;
  Generator gen(75);
  std::vector<float> v(N * C * HW);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t m = 0; m < M / 2; ++m) {
      const float magnitude = gen.uniform(0.3f, 1.5f);
      auto at = [&](int64_t k) -> float& { return v[((k / HW) * C + c) * HW + k % HW]; };
      at(m) = magnitude;
      at(m + M / 2) = -magnitude;
    }
  Tensor x = Tensor::from_vector(shape, v);
  x.set_requires_grad(true);
  Tensor gamma = Tensor::from_vector({C}, {0.8f, -1.2f, 1.5f});
  Tensor beta = Tensor::from_vector({C}, {0.05f, -0.05f, 0.0f});
  gamma.set_requires_grad(true);
  beta.set_requires_grad(true);
  Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
  gradcheck("batch_norm_relu train",
            [&](auto& in) { return batch_norm_relu(in[0], in[1], in[2], rm, rv, true, 0.1f, 1e-5f); },
            {x, gamma, beta});
  Tensor rm2 = Tensor::zeros({C}), rv2 = Tensor::full({C}, 0.7f);
  gradcheck("batch_norm_relu eval",
            [&](auto& in) { return batch_norm_relu(in[0], in[1], in[2], rm2, rv2, false, 0.1f, 1e-5f); },
            {x, gamma, beta});
}

TEST_CASE("dropout: train (fixed mask per seed) and eval") {
  Tensor x = random_input({4, 10}, 60);
  gradcheck("dropout train", [](auto& in) { return dropout(in[0], 0.3f, true); }, {x});
  gradcheck("dropout eval", [](auto& in) { return dropout(in[0], 0.3f, false); }, {x});
}

TEST_CASE("softmax, log_softmax, nll_loss, cross_entropy with weights and smoothing") {
  Tensor x = random_input({4, 7}, 70);
  gradcheck("softmax", [](auto& in) { return softmax(in[0]); }, {x});
  gradcheck("log_softmax", [](auto& in) { return log_softmax(in[0]); }, {x});
  Tensor target = Tensor::from_vector({4}, {0, 6, 3, 3});
  CrossEntropyOptions plain, weighted, smooth, both;
  weighted.class_weights = Tensor::from_vector({7}, {1, 5, 1, 0.5f, 2, 1, 1});
  smooth.label_smoothing = 0.1f;
  both = weighted;
  both.label_smoothing = 0.2f;
  for (auto [name, o] : {std::pair{"plain", plain}, std::pair{"weighted", weighted},
                         std::pair{"smoothed", smooth}, std::pair{"weighted+smoothed", both}}) {
    CrossEntropyOptions opts = o;
    gradcheck(std::string("cross_entropy ") + name,
              [&, opts](auto& in) { return cross_entropy(in[0], target, opts); }, {x});
    gradcheck(std::string("nll_loss ") + name,
              [&, opts](auto& in) { return nll_loss(log_softmax(in[0]), target, opts); }, {x});
  }
}

TEST_CASE("concat, resize_bilinear, pad2d, reshape, flatten, slice_batch") {
  Tensor a = random_input({2, 3, 4, 4}, 80), b = random_input({2, 2, 4, 4}, 81),
         c = random_input({2, 1, 4, 4}, 82);
  gradcheck("concat channels", [](auto& in) { return concat({in[0], in[1], in[2]}, 1); }, {a, b, c});
  Tensor d = random_input({3, 4}, 83), e = random_input({2, 4}, 84);
  gradcheck("concat dim 0", [](auto& in) { return concat({in[0], in[1]}, 0); }, {d, e});
  gradcheck("resize up 4->7", [](auto& in) { return resize_bilinear(in[0], 7, 9); }, {a});
  gradcheck("resize down 4->3", [](auto& in) { return resize_bilinear(in[0], 3, 2); }, {a});
  gradcheck("pad2d", [](auto& in) { return pad2d(in[0], 1, 2, 0, 3); }, {a});
  gradcheck("reshape", [](auto& in) { return in[0].reshape({4, -1}); }, {a});
  gradcheck("flatten", [](auto& in) { return in[0].flatten(1); }, {a});
  gradcheck("slice_batch", [](auto& in) { return in[0].slice_batch(1, 2); }, {a});
}

TEST_CASE("a small residual + inception-style graph (gradients that meet)") {
  Tensor x = random_input({2, 2, 5, 5}, 90), w1 = random_input({2, 2, 3, 3}, 91),
         w2 = random_input({3, 2, 1, 1}, 92);
  Conv2dOptions same;
  same.pad_h = same.pad_w = 1;
  gradcheck("residual", [same](auto& in) {
    Tensor h = conv2d(in[0], in[1], Tensor(), same);
    Tensor r = add(tanh(h), in[0]);                        // x reaches r twice
    Tensor branch = conv2d(r, in[2], Tensor(), {});
    return concat({r, branch, mul(r, r)}, 1);              // r used three times
  }, {x, w1, w2});
}
