// CPU-vs-GPU parity: every case of the op-case registry (tests/support/op_cases.h: every op of
// engine/ops.h and every kernel of engine/backend.h, forward and backward, optimizers, a whole
// fer_vgg_small training step) on the CUDA backend against the CPU backend; the matmul-like cases
// again under TF32; CUDA-graph replay against eager execution.
//
// The registry builds each case's inputs from fixed seeds on the host and copies them to the
// device, so both runs start identical; each result is compared element by element with the
// case's tolerance (op_cases.h gives them and why). TF32 (10-bit mantissas) gets its own, looser
// one here: scaled_atol 5e-3, rtol 5e-3. Adding an op: add its case to the registry; it then runs
// here too.
//
// Without a usable GPU (a CPU-only build, no driver, no device) the GPU tests print one line,
// "SKIPPED: no CUDA GPU (<why>)", and pass. The host checks of the CUDA kernels' index math
// (kernels/cuda/*_math.h, compiled here for the host) run everywhere.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/training/graphed_step.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "kernels/cuda/geometry_math.h"
#include "kernels/cuda/pool2d_math.h"
#include "models/registry.h"
#include "tests/support/errors.h"
#include "tests/support/op_case_checks.h"
#include "tests/support/op_cases.h"

using namespace fer;
using namespace fer::testing;

namespace {

constexpr Tolerance kTf32{1e-6, 5e-3, 5e-3};

// One case on the CPU and on `other`, every result compared with `tol`.
void check_case(const OpCase& c, Device other, const Tolerance& tol) {
  const std::optional<Named> ref = try_run(c, Device::CPU, "cpu");
  const std::optional<Named> got = try_run(c, other, device_name(other));
  if (ref && got) check_results(c.name, *ref, *got, tol, "cpu", device_name(other));
}

// The backends besides the CPU's that this machine can run; prints the skip line once.
std::vector<Device> other_backends() {
  if (cuda_available()) return {Device::CUDA};
  static bool said = false;
  if (!said) {
    std::printf("SKIPPED: no CUDA GPU (%s)\n", cuda_status().c_str());
    said = true;
  }
  return {};
}

}  // namespace

// ---- GPU parity ----------------------------------------------------------------------------------

TEST_CASE("CUDA parity: every op and kernel, forward and backward, matches the CPU") {
  for (Device dev : other_backends()) {
    const std::vector<OpCase> cases = all_op_cases();
    for (const OpCase& c : cases) check_case(c, dev, c.tol);
    MESSAGE(cases.size(), " cases on ", device_name(dev), ": ", cuda_status());
  }
}

TEST_CASE("CUDA parity under TF32: convolutions and GEMMs within TF32 rounding") {
  for (Device dev : other_backends()) {
    Backend& be = backend(dev);
    be.set_allow_tf32(true);
    CHECK(be.allow_tf32());
    for (const OpCase& c : all_op_cases())
      if (c.matmul_like) check_case(c, dev, kTf32);
    be.set_allow_tf32(false);
  }
}

TEST_CASE("CUDA: misuse and failures give errors that name the op and the shapes") {
  for (Device dev : other_backends()) {
    Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({2, 3}, dev);
    CHECK(testing::throws_naming([&] { add(a, b); }, "add: tensors on different devices (cpu [2, 3] and cuda [2, 3])"));
    Tensor x = Tensor::ones({1, 2, 5, 5}, dev), w = Tensor::ones({4, 2, 3, 3});
    CHECK(testing::throws_naming([&] { conv2d(x, w, Tensor(), {}); }, "conv2d: tensors on different devices"));
    CHECK(testing::throws_naming([&] { concat({b, a}, 0); }, "concat: tensors on different devices (cuda [2, 3] and cpu [2, 3])"));
    // 4 TiB cannot exist: the caching allocator's message says so, with the size.
    CHECK(testing::throws_naming([&] { Tensor::empty({int64_t(1) << 40}, dev); }, "out of GPU memory"));
    // The backend still works afterwards.
    CHECK(Tensor::full({3}, 2.0f, dev).to_vector() == std::vector<float>{2.0f, 2.0f, 2.0f});
    MESSAGE(backend(dev).memory_summary());
  }
}

// A training step recorded as two CUDA graphs (forward; backward from dlogits) by GraphedStep,
// what fer_train --cuda-graph runs, replayed on new batches against the same steps run eagerly.
TEST_CASE("CUDA graphs: a recorded training step replays like the eager one") {
  for (Device dev : other_backends()) {
    Backend& be = backend(dev);
    ModelConfig cfg;
    cfg.dropout = 0.0f;  // deterministic, so eager and replayed steps can be compared
    manual_seed(21);
    auto eager = create_model("fer_vgg_small", cfg);
    manual_seed(21);
    auto graphed = create_model("fer_vgg_small", cfg);
    eager->to(dev);
    graphed->to(dev);
    eager->train();
    graphed->train();
    SGD opt_e(eager->parameters(), 0.05f, 0.9f, 0.0f, 5e-4f, true);
    SGD opt_g(graphed->parameters(), 0.05f, 0.9f, 0.0f, 5e-4f, true);
    const int64_t N = 16;
    auto batch = [&](uint64_t seed) {
      Generator g(seed);
      Tensor x = Tensor::uniform({N, 1, 48, 48}, 0, 1, g);  // on the host, as the loader's
      std::vector<float> l(N);
      for (float& v : l) v = static_cast<float>(g.below(7));
      return std::make_pair(x, Tensor::from_vector({N}, l, dev));
    };
    auto eager_step = [&](Module& m, Optimizer& opt, const Tensor& x, const Tensor& y) {
      opt.zero_grad();
      Tensor logits = m.forward(x.to(dev));
      Tensor loss = cross_entropy(logits, y);
      loss.backward();
      opt.step();
      return std::make_pair(loss.item(), logits.detach());
    };
    // Step 0 eagerly on both (cuDNN picks its algorithms), then record the graphed model's step.
    auto [x0, y0] = batch(100);
    eager_step(*eager, opt_e, x0, y0);
    eager_step(*graphed, opt_g, x0, y0);
    std::unique_ptr<GraphedStep> step = GraphedStep::record(*graphed, x0.shape(), dev);
    REQUIRE(step != nullptr);
    Tensor logits;
    for (uint64_t s = 1; s <= 3; ++s) {
      auto [x, y] = batch(100 + s);
      const auto [loss_e, logits_e] = eager_step(*eager, opt_e, x, y);
      const GraphedStep::Output out =
          step->run(x, s, [&](const Tensor& l) { return cross_entropy(l, y); });
      opt_g.step();
      logits = out.logits;
      INFO("step " << s);
      CHECK(out.loss.item() == doctest::Approx(loss_e).epsilon(1e-4));
      check_close("graph step " + std::to_string(s), "logits", logits_e, out.logits, kNetwork, "eager", "graph");
      const NamedTensors pe = eager->named_parameters(), pg = graphed->named_parameters();
      for (size_t i = 0; i < pe.size(); ++i)
        check_close("graph step " + std::to_string(s), "updated " + pe[i].first, pe[i].second.detach(),
                    pg[i].second.detach(), kNetwork, "eager", "graph");
    }
    // A batch of another shape is refused, naming both shapes.
    CHECK(testing::throws_naming(
        [&] { step->run(Tensor::zeros({N - 1, 1, 48, 48}), 9, [&](const Tensor& l) { return l; }); },
        "[15, 1, 48, 48]"));
    // Host reads and uploads cannot be recorded: a clear error, and the backend keeps working.
    CHECK(testing::throws_naming([&] { be.capture([&] { logits.to_vector(); }, 2); }, "copy_to_host"));
    CHECK(Tensor::full({2}, 1.0f, dev).to_vector() == std::vector<float>{1.0f, 1.0f});
    MESSAGE(be.memory_summary());
  }
}

TEST_CASE("CUDA graphs: dropout draws a fresh mask per replay seed, the same mask for the same seed") {
  for (Device dev : other_backends()) {
    Backend& be = backend(dev);
    Tensor x = Tensor::ones({4096}, dev), y;
    auto graph = be.capture([&] { y = dropout(x, 0.5f, true); }, 3);
    REQUIRE(graph != nullptr);
    graph->replay(1);
    const std::vector<float> a = y.to_vector();
    graph->replay(2);
    const std::vector<float> b = y.to_vector();
    graph->replay(1);
    const std::vector<float> c = y.to_vector();
    CHECK(a == c);
    CHECK(a != b);
    int64_t kept = 0;
    for (float v : a) kept += v != 0.0f;
    CHECK(kept > 1800);
    CHECK(kept < 2300);
  }
}

// ---- Host checks of the CUDA kernels' index math (run everywhere) -------------------------------

TEST_CASE("CUDA pooling math on the host is bit-identical to the CPU backend") {
  struct G {
    Shape x;
    Pool2dOptions o;
  };
  const std::vector<G> geometries = {
      {{2, 3, 7, 9}, pool_opts(2, 2, 0)},        {{2, 3, 7, 9}, pool_opts(3, 2, 1)},
      {{2, 3, 7, 9}, pool_opts(3, 2, 0, true)},  {{2, 3, 7, 9}, pool_opts(3, 2, 1, true)},
      {{1, 2, 8, 8}, pool_opts(3, 1, 1)},        {{1, 2, 11, 6}, pool_opts(5, 3, 2, true)},
      {{1, 1, 5, 5}, pool_opts(4, 3, 2, true)},
  };
  Backend& cpu = backend(Device::CPU);
  for (const G& geo : geometries) {
    Generator gen(3);
    Tensor x = Tensor::uniform(geo.x, -1, 1, gen);
    const int64_t OH = max_pool2d(x, geo.o).size(2), OW = max_pool2d(x, geo.o).size(3);
    const Pool2dGeometry g{geo.x[0], geo.x[1], geo.x[2], geo.x[3], geo.o.kernel_h, geo.o.kernel_w,
                           geo.o.stride_h, geo.o.stride_w, geo.o.pad_h, geo.o.pad_w, OH, OW};
    const int64_t planes = g.N * g.C, P = OH * OW, HW = g.H * g.W;
    INFO("pool ", geo.o.kernel_h, " stride ", geo.o.stride_h, " pad ", geo.o.pad_h,
         geo.o.ceil_mode ? " ceil" : "", " on ", x.shape_str());
    std::vector<float> y(planes * P), y_ref(planes * P), avg(planes * P), avg_ref(planes * P);
    std::vector<int32_t> arg(planes * P), arg_ref(planes * P);
    cpu.max_pool2d_forward(g, x.data(), y_ref.data(), arg_ref.data());
    cpu.avg_pool2d_forward(g, x.data(), avg_ref.data());
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t o = 0; o < P; ++o) {
        y[p * P + o] = cuda::max_pool_at(g, x.data() + p * HW, o / OW, o % OW, &arg[p * P + o]);
        avg[p * P + o] = cuda::avg_pool_at(g, x.data() + p * HW, o / OW, o % OW);
      }
    CHECK(y == y_ref);
    CHECK(arg == arg_ref);
    CHECK(avg == avg_ref);
    Tensor dy = Tensor::uniform({g.N, g.C, OH, OW}, -1, 1, gen);
    std::vector<float> dx(planes * HW), dx_ref(planes * HW), dxa(planes * HW), dxa_ref(planes * HW);
    cpu.max_pool2d_backward(g, dy.data(), arg_ref.data(), dx_ref.data());
    cpu.avg_pool2d_backward(g, dy.data(), dxa_ref.data());
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < HW; ++i) {
        dx[p * HW + i] = cuda::max_pool_grad_at(g, dy.data() + p * P, arg_ref.data() + p * P, i / g.W, i % g.W);
        dxa[p * HW + i] = cuda::avg_pool_grad_at(g, dy.data() + p * P, i / g.W, i % g.W);
      }
    CHECK(dx == dx_ref);
    CHECK(dxa == dxa_ref);
  }
}

TEST_CASE("CUDA bilinear resize math on the host matches the CPU backend") {
  for (auto [H, W, OH, OW] : std::vector<std::array<int64_t, 4>>{{5, 7, 11, 13}, {9, 11, 4, 3}, {1, 6, 3, 2}, {48, 48, 224, 224}}) {
    Generator gen(8);
    Tensor x = Tensor::uniform({2, H, W}, -1, 1, gen);
    std::vector<float> ref(2 * OH * OW);
    backend(Device::CPU).resize_bilinear_forward(2, H, W, OH, OW, x.data(), ref.data());
    double worst = 0;
    for (int64_t p = 0; p < 2; ++p)
      for (int64_t o = 0; o < OH * OW; ++o)
        worst = std::max(worst, static_cast<double>(std::abs(
            cuda::resize_bilinear_at(x.data() + p * H * W, H, W, OH, OW, o / OW, o % OW) - ref[p * OH * OW + o])));
    INFO(H << "x" << W << " -> " << OH << "x" << OW);
    CHECK(worst <= 1e-6);
  }
}

TEST_CASE("CUDA availability is reported in one line") {
  const std::string status = cuda_status();
  CHECK(!status.empty());
  if (!cuda_available())
    CHECK(testing::throws_naming([] { Tensor::zeros({1}, Device::CUDA); }, status));
}

TEST_CASE("CUDA graphs: the CPU backend records none, and fer_train's step stays eager there") {
  ModelConfig cfg;
  auto model = create_model("fer_vgg_small", cfg);
  model->train();
  Tensor x = Tensor::zeros({2, 1, 48, 48});
  cross_entropy(model->forward(x), Tensor::from_vector({2}, {0, 1})).backward();
  CHECK(GraphedStep::record(*model, x.shape(), Device::CPU) == nullptr);
}
