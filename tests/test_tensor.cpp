// Tensor storage and views, initialisation, and the autograd tape's contract.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/autograd.h"
#include "engine/init.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu_backend.h"

using namespace fer;

TEST_CASE("views share storage: reshape, flatten, slice_batch") {
  Tensor t = Tensor::from_vector({4, 2, 3}, std::vector<float>(24, 1.0f));
  Tensor r = t.reshape({6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.shares_storage(t));
  Tensor f = t.flatten(1);
  CHECK(f.shape() == Shape{4, 6});
  Tensor s = t.slice_batch(1, 3);
  CHECK(s.shape() == Shape{2, 2, 3});
  s.fill_(5.0f);  // writes through to rows 1 and 2 of t
  const std::vector<float> v = t.to_vector();
  CHECK(v[5] == 1.0f);
  CHECK(v[6] == 5.0f);
  CHECK(v[17] == 5.0f);
  CHECK(v[18] == 1.0f);
  CHECK(t.clone().shares_storage(t) == false);
  CHECK_THROWS_WITH_AS(t.slice_batch(3, 5), doctest::Contains("slice_batch(3, 5)"), fer::Error);
  CHECK_THROWS_WITH_AS(t.reshape({5, -1}), doctest::Contains("cannot view [4, 2, 3]"), fer::Error);
}

TEST_CASE("shapes too large to allocate, and the storage budget") {
  // The element count is multiplied with overflow checks: 2^32 x 2^32 must not wrap to 0.
  CHECK_THROWS_AS(Tensor::empty({int64_t{1} << 32, int64_t{1} << 32}), Error);
  CHECK_THROWS_AS(Tensor::empty({int64_t{1} << 62}), Error);  // 2^64 bytes
  CHECK(Tensor::empty({0, int64_t{1} << 40}).numel() == 0);

  {
    StorageBudget budget(1024, "building a test model");
    Tensor a = Tensor::zeros({100});  // 400 bytes
    CHECK(budget.used() == 400);
    try {
      Tensor::zeros({200});  // 800 more: past 1024
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("building a test model: needs more than 1024 bytes") != std::string::npos);
    }
    {
      StorageBudget inner(1 << 20, "inner");  // budgets nest: the innermost one counts
      Tensor b = Tensor::zeros({1000});
      CHECK(inner.used() == 4000);
    }
    CHECK(budget.used() == 400);
  }
  CHECK_NOTHROW(Tensor::zeros({1000}));  // no budget once it is out of scope
}

TEST_CASE("the CPU allocator reuses freed buffers of 32 MiB and more, and only those") {
  cpu::release_cached_host_memory();
  const int64_t big = (int64_t{40} << 20) / 4;  // 40 MiB of floats
  const void* first = nullptr;
  {
    Tensor a = Tensor::full({big}, 1.0f);
    first = a.data();
    CHECK(reinterpret_cast<uintptr_t>(first) % (2u << 20) == 0);  // huge-page aligned
    CHECK(cpu::cached_host_bytes() == 0);
  }
  CHECK(cpu::cached_host_bytes() == (size_t{40} << 20));
  {
    Tensor b = Tensor::zeros({big - 1000});  // about the same size: the same block, refilled
    CHECK(b.data() == first);
    CHECK(cpu::cached_host_bytes() == 0);
    const std::vector<float> v = b.to_vector();
    CHECK(v.front() == 0.0f);
    CHECK(v.back() == 0.0f);
    Tensor c = Tensor::zeros({big});  // the cached block is in use: a new one
    CHECK(c.data() != first);
  }
  CHECK(cpu::cached_host_bytes() == (size_t{80} << 20));
  {
    Tensor d = Tensor::zeros({big * 2});  // 80 MiB: neither 40 MiB block is large enough
    CHECK(d.data() != first);
    Tensor e = Tensor::zeros({big / 4});  // 10 MiB: below the threshold, glibc's heap
    CHECK(cpu::cached_host_bytes() == (size_t{80} << 20));
  }
  CHECK(cpu::cached_host_bytes() == (size_t{160} << 20));
  cpu::release_cached_host_memory();
  CHECK(cpu::cached_host_bytes() == 0);
}

TEST_CASE("seeded initialisation has the right statistics and repeats") {
  Tensor w = Tensor::empty({256, 128, 3, 3});
  Generator g1(42);
  init::kaiming_normal(w, std::sqrt(2.0f), g1);
  const std::vector<float> v = w.to_vector();
  double s = 0, ss = 0;
  for (float x : v) s += x, ss += double(x) * x;
  const double mean = s / v.size(), std = std::sqrt(ss / v.size() - mean * mean);
  CHECK(std::abs(mean) < 1e-3);
  CHECK(std == doctest::Approx(std::sqrt(2.0 / (128 * 9))).epsilon(0.01));
  Tensor w2 = Tensor::empty({256, 128, 3, 3});
  Generator g2(42);
  init::kaiming_normal(w2, std::sqrt(2.0f), g2);
  CHECK(w2.to_vector() == v);
  Tensor x = Tensor::empty({64, 32});
  Generator g3(1);
  init::xavier_uniform(x, g3);
  const float bound = std::sqrt(6.0f / (64 + 32));
  for (float e : x.to_vector()) CHECK(std::abs(e) <= bound);
}

TEST_CASE("backward accumulates into leaves, across calls, and frees the graph") {
  Tensor a = Tensor::from_vector({2}, {1, 2});
  a.set_requires_grad(true);
  Tensor loss = sum(mul(a, a));  // d/da = 2a
  loss.backward();
  CHECK(a.grad().to_vector() == std::vector<float>{2, 4});
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("second time"), fer::Error);
  sum(scale(a, 3.0f)).backward();  // accumulates: 2a + 3
  CHECK(a.grad().to_vector() == std::vector<float>{5, 7});
  a.zero_grad();
  CHECK(!a.grad().defined());
}

TEST_CASE("no-grad scope, detach and frozen parameters record nothing") {
  Tensor w = Tensor::ones({3});
  w.set_requires_grad(true);
  {
    NoGradGuard no_grad;
    Tensor y = mul(w, w);
    CHECK(!y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_enabled());
  Tensor d = w.detach();
  CHECK(!d.requires_grad());
  CHECK(d.shares_storage(w));
  Tensor frozen = Tensor::ones({3});  // requires_grad false: a frozen parameter
  Tensor y = sum(mul(w, frozen));
  y.backward();
  CHECK(w.grad().defined());
  CHECK(!frozen.grad().defined());
  CHECK_THROWS_WITH_AS(sum(frozen).backward(), doctest::Contains("does not require grad"), fer::Error);
}

TEST_CASE("gradients of a tensor used twice are summed") {
  Tensor x = Tensor::from_vector({1}, {3});
  x.set_requires_grad(true);
  Tensor y = add(mul(x, x), x);  // dy/dx = 2x + 1 = 7
  y.backward();
  CHECK(x.grad().item() == 7.0f);
}

TEST_CASE("devices: the CPU always exists; cuda is refused clearly without a backend") {
  CHECK(parse_device("cpu") == Device::CPU);
  CHECK_THROWS_AS(parse_device("tpu"), fer::Error);
  if (!cuda_available()) {
    MESSAGE("no CUDA backend in this build or no GPU: checking the CPU fallback error only");
    CHECK_THROWS_WITH_AS(Tensor::zeros({2}, Device::CUDA), doctest::Contains("cuda"), fer::Error);
  }
}
