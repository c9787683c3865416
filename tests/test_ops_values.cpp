// Known-value tests: each op's output on a small input, against values worked out by hand or
// printed by PyTorch 1.13 (the expression is in the comment), and the error messages that bad
// shapes must produce.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

using namespace fer;

namespace {
Tensor iota(const Shape& shape, float start = 0.0f) {
  std::vector<float> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_vector(shape, v);
}
void check_values(const Tensor& t, const std::vector<float>& expected, float tol = 1e-4f) {
  const std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK_MESSAGE(got[i] == doctest::Approx(expected[i]).epsilon(tol), "element ", i);
}
}  // namespace

TEST_CASE("conv2d known values") {
  Tensor x = iota({1, 1, 3, 3}, 1.0f);  // [[1,2,3],[4,5,6],[7,8,9]]
  // A 2x2 difference kernel: y = x[i,j] - x[i+1,j+1] = -4 everywhere.
  Tensor diff = Tensor::from_vector({1, 1, 2, 2}, {1, 0, 0, -1});
  check_values(conv2d(x, diff, Tensor(), {}), {-4, -4, -4, -4});
  // A 3x3 box of ones with zero padding 1 sums each neighbourhood; bias 0.5 is added.
  Conv2dOptions same;
  same.pad_h = same.pad_w = 1;
  Tensor box = Tensor::ones({1, 1, 3, 3}), bias = Tensor::from_vector({1}, {0.5f});
  check_values(conv2d(x, box, bias, same), {12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5});
  Conv2dOptions strided = same;
  strided.stride_h = strided.stride_w = 2;
  check_values(conv2d(x, box, Tensor(), strided), {12, 16, 24, 28});
  // Depthwise: two channels, each with its own 1x1 scale.
  Tensor x2 = concat({x, scale(x, 10.0f)}, 1);
  Conv2dOptions dw;
  dw.groups = 2;
  Tensor w2 = Tensor::from_vector({2, 1, 1, 1}, {2.0f, -1.0f});
  Tensor y2 = conv2d(x2, w2, Tensor(), dw);
  CHECK(y2.shape() == Shape{1, 2, 3, 3});
  CHECK(y2.to_vector()[0] == 2.0f);
  CHECK(y2.to_vector()[9] == -10.0f);
}

TEST_CASE("pooling known values") {
  Tensor x = iota({1, 1, 4, 4});
  check_values(max_pool2d(x, {}), {5, 7, 13, 15});
  check_values(avg_pool2d(x, {}), {2.5, 4.5, 10.5, 12.5});
  Tensor x5 = iota({1, 1, 5, 5});
  Pool2dOptions p;
  p.kernel_h = p.kernel_w = 3;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  // F.avg_pool2d(torch.arange(25.).reshape(1,1,5,5), 3, 2, 1)  (padded zeros counted)
  check_values(avg_pool2d(x5, p), {1.3333333f, 3, 2.6666667f, 7, 12, 9, 8, 13, 9.3333333f});
  Pool2dOptions c = p;
  c.pad_h = c.pad_w = 0;
  c.ceil_mode = true;
  // F.max_pool2d(..., 3, 2, 0, ceil_mode=True)
  check_values(max_pool2d(x5, c), {12, 14, 22, 24});
  check_values(global_avg_pool(x), {7.5});
}

TEST_CASE("max pooling passes the gradient to the first maximum of each window, in window order") {
  // Four 2x2 windows with ties: 3 first at (0,1); 5 only at (1,1); 2 everywhere; 4 at (1,0) and (1,1).
  Tensor x = Tensor::from_vector({1, 1, 4, 4}, {1, 3, 5, 0,  //
                                                3, 3, 0, 0,  //
                                                2, 2, 1, 2,  //
                                                2, 2, 4, 4});
  x.set_requires_grad(true);
  Tensor y = max_pool2d(x, {});
  check_values(y, {3, 5, 2, 4});
  sum(y).backward();
  check_values(x.grad(), {0, 1, 1, 0,  //
                          0, 0, 0, 0,  //
                          1, 0, 0, 0,  //
                          0, 0, 1, 0});
}

// Many images of small planes: the kernels sum a channel's planes several images per call (up to
// 4096 values, here 117 planes of 35 and a remainder of 33), so every image must count once.
// Against sums in double: the output, the running mean and the three gradients.
TEST_CASE("batch_norm over many small planes, against double sums") {
  const int64_t N = 150, C = 2, HW = 35;
  Generator gen(7);
  Tensor x = Tensor::uniform({N, C, 5, 7}, -1.0f, 3.0f, gen), dy = Tensor::uniform({N, C, 5, 7}, -1.0f, 1.0f, gen);
  Tensor gamma = Tensor::from_vector({C}, {1.5f, 0.5f}), beta = Tensor::from_vector({C}, {0.25f, -1.0f});
  Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
  x.set_requires_grad(true);
  gamma.set_requires_grad(true);
  beta.set_requires_grad(true);
  Tensor y = batch_norm(x, gamma, beta, rm, rv, true, 0.1f, 1e-5f);
  sum(mul(y, dy)).backward();
  const std::vector<float> xv = x.to_vector(), dyv = dy.to_vector(), yv = y.to_vector(), dx = x.grad().to_vector();
  const std::vector<float> g = gamma.to_vector(), dg = gamma.grad().to_vector(), db = beta.grad().to_vector();
  const std::vector<float> b = beta.to_vector(), rmv = rm.to_vector();
  const double M = static_cast<double>(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    auto at = [&](int64_t n, int64_t i) { return static_cast<size_t>((n * C + c) * HW + i); };
    double mean = 0.0, var = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) mean += xv[at(n, i)];
    mean /= M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) var += (xv[at(n, i)] - mean) * (xv[at(n, i)] - mean);
    var /= M;
    const double invstd = 1.0 / std::sqrt(var + 1e-5);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const double xhat = (xv[at(n, i)] - mean) * invstd;
        CHECK(yv[at(n, i)] == doctest::Approx(g[c] * xhat + b[c]).epsilon(1e-4));
        sum_dy += dyv[at(n, i)];
        sum_dy_xhat += dyv[at(n, i)] * xhat;
      }
    CHECK(rmv[c] == doctest::Approx(0.1 * mean).epsilon(1e-5));
    CHECK(db[c] == doctest::Approx(sum_dy).epsilon(1e-4));
    CHECK(dg[c] == doctest::Approx(sum_dy_xhat).epsilon(1e-4));
    for (int64_t n = 0; n < N; n += 37)  // dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat))
      for (int64_t i = 0; i < HW; ++i) {
        const double xhat = (xv[at(n, i)] - mean) * invstd;
        const double want = g[c] * invstd * (dyv[at(n, i)] - sum_dy / M - xhat * sum_dy_xhat / M);
        CHECK(dx[at(n, i)] == doctest::Approx(want).epsilon(1e-3).scale(1e-3));
      }
  }
  // Evaluation, with the running statistics just updated: y = gamma (x - rm) / sqrt(rv + eps) + beta.
  NoGradGuard no_grad;
  const std::vector<float> ye = batch_norm(x, gamma, beta, rm, rv, false, 0.1f, 1e-5f).to_vector(), rvv = rv.to_vector();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) {
        const size_t k = static_cast<size_t>((n * C + c) * HW + i);
        CHECK(ye[k] == doctest::Approx(g[c] * (xv[k] - rmv[c]) / std::sqrt(rvv[c] + 1e-5) + b[c]).epsilon(1e-4));
      }
}

TEST_CASE("batch_norm known values, running statistics, eval mode") {
  Tensor x = Tensor::from_vector({4, 1}, {1, 2, 3, 4});
  Tensor g = Tensor::ones({1}), b = Tensor::zeros({1});
  Tensor rm = Tensor::zeros({1}), rv = Tensor::ones({1});
  // mean 2.5, biased var 1.25: y = (x - 2.5) / sqrt(1.25 + 1e-5)
  const float s = 1.0f / std::sqrt(1.25f + 1e-5f);
  check_values(batch_norm(x, g, b, rm, rv, true, 0.1f, 1e-5f), {-1.5f * s, -0.5f * s, 0.5f * s, 1.5f * s});
  CHECK(rm.item() == doctest::Approx(0.25));             // 0.9 * 0 + 0.1 * 2.5
  CHECK(rv.item() == doctest::Approx(0.9 + 0.1 * 5.0 / 3.0));  // unbiased var 5/3
  // Eval: normalise with the running statistics.
  Tensor gamma = Tensor::from_vector({1}, {2.0f}), beta = Tensor::from_vector({1}, {1.0f});
  Tensor m = Tensor::from_vector({1}, {1.0f}), v = Tensor::from_vector({1}, {4.0f});
  check_values(batch_norm(x, gamma, beta, m, v, false, 0.1f, 0.0f), {1.0f, 2.0f, 3.0f, 4.0f});
  CHECK(m.item() == 1.0f);  // eval never touches the buffers
}

TEST_CASE("softmax, cross_entropy with class weights and label smoothing") {
  Tensor logits = Tensor::from_vector({2, 3}, {1, 2, 3, 1, 1, 1});
  check_values(softmax(logits), {0.09003057f, 0.24472847f, 0.66524096f, 1 / 3.f, 1 / 3.f, 1 / 3.f});
  Tensor target = Tensor::from_vector({2}, {2, 0});
  // -log p: row 0 class 2: 0.40760596, row 1: log 3 = 1.09861229; mean = 0.75310913
  CHECK(cross_entropy(logits, target).item() == doctest::Approx(0.75310913));
  // F.cross_entropy(x, t, weight=torch.tensor([1.,2,3]), label_smoothing=0.1) = 0.6309660077
  CrossEntropyOptions o;
  o.class_weights = Tensor::from_vector({3}, {1, 2, 3});
  o.label_smoothing = 0.1f;
  CHECK(cross_entropy(logits, target, o).item() == doctest::Approx(0.6309660077));
}

TEST_CASE("dropout: zero fraction, scaling, eval identity, seeded") {
  Tensor x = Tensor::ones({100, 100});
  manual_seed(1);
  const std::vector<float> y = dropout(x, 0.3f, true).to_vector();
  int zeros = 0;
  for (float v : y) {
    CHECK((v == 0.0f || v == doctest::Approx(1.0f / 0.7f)));
    zeros += v == 0.0f;
  }
  CHECK(zeros > 2700);
  CHECK(zeros < 3300);
  manual_seed(1);
  CHECK(dropout(x, 0.3f, true).to_vector() == y);
  CHECK(dropout(x, 0.3f, false).same(x));
}

TEST_CASE("resize_bilinear matches PyTorch (align_corners=False)") {
  // F.interpolate(torch.arange(4.).reshape(1,1,2,2), size=(4,4), mode='bilinear')
  check_values(resize_bilinear(iota({1, 1, 2, 2}), 4, 4),
               {0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3});
  check_values(resize_bilinear(iota({1, 1, 4, 4}), 3, 3),
               {0.8333333f, 2.1666667f, 3.5f, 6.1666667f, 7.5f, 8.8333333f, 11.5f, 12.833333f, 14.166667f});
}

TEST_CASE("pad2d and concat place values where they belong") {
  Tensor x = iota({1, 1, 2, 2}, 1.0f);
  check_values(pad2d(x, 1, 0, 0, 1), {0, 0, 0, 1, 2, 0, 3, 4, 0});
  Tensor a = iota({2, 1, 1, 2}), b = iota({2, 2, 1, 2}, 10.0f);
  Tensor c = concat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 3, 1, 2});
  check_values(c, {0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17});
}

TEST_CASE("bad shapes give errors naming the op and the shapes") {
  Tensor x = Tensor::zeros({2, 3, 8, 8});
  Tensor w = Tensor::zeros({4, 2, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {}),
                       doctest::Contains("conv2d: input [2, 3, 8, 8] has 3 channels but weight [4, 2, 3, 3]"),
                       fer::Error);
  Tensor small = Tensor::zeros({1, 1, 2, 2});
  CHECK_THROWS_WITH_AS(conv2d(small, Tensor::zeros({1, 1, 5, 5}), Tensor(), {}),
                       doctest::Contains("smaller than the kernel"), fer::Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({5, 10}), Tensor::zeros({3, 12}), Tensor()),
                       doctest::Contains("linear: input [5, 10] does not match weight [3, 12]"),
                       fer::Error);
  CHECK_THROWS_WITH_AS(add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})),
                       doctest::Contains("add: shapes [2, 3] and [3, 2] differ"), fer::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(Tensor::zeros({2, 7}), Tensor::from_vector({2}, {1, 7})),
                       doctest::Contains("target class 7 out of range for 7 classes"), fer::Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({4, 4}), {}), doctest::Contains("expected NCHW"),
                       fer::Error);
  CHECK_THROWS_AS(Tensor::zeros({2, 3}).reshape({4, 2}), fer::Error);
  CHECK_THROWS_AS(concat({Tensor::zeros({1, 2, 3, 3}), Tensor::zeros({1, 2, 4, 3})}, 1), fer::Error);
}
