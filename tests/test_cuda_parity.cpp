// CPU-vs-GPU parity: every op of engine/ops.h and every kernel of engine/backend.h, forward and
// backward, on the CUDA backend against the CPU backend; a whole training step of fer_vgg_small;
// CUDA-graph replay against eager execution.
//
// One harness for all of it, in the manner of ggml's test-backend-ops: a ParityCase is a function
// that, given a device, builds its inputs from fixed seeds (drawn on the host, then copied to the
// device), runs its op(s) there, and returns named tensors (outputs, input gradients, updated
// parameters). The harness runs every case on the CPU and on every other available backend and
// compares element by element:
//
//   |other - cpu| <= atol + scaled_atol * max|cpu| + rtol * |cpu|
//
// Default tolerance: atol 1e-6, scaled_atol 1e-5, rtol 1e-4 (float32 kernels that add in another
// order, exp/log from another math library); convolutions and GEMMs scaled_atol 3e-5. Exact (0) for the cases whose kernels are written to
// be bit-identical: pooling (gathers in the CPU's order), padding, copies, dropout masks (the same
// counter-based generator on both). Looser for whole networks (errors compound over 8 conv
// layers: scaled_atol 1e-4, rtol 1e-3) and for TF32 (10-bit mantissas: scaled_atol 5e-3,
// rtol 5e-3). Adding an op: append one line to all_cases().
//
// Without a usable GPU (a CPU-only build, no driver, no device) the GPU tests print one line,
// "SKIPPED: no CUDA GPU (<why>)", and pass. The host checks of the CUDA kernels' index math
// (kernels/cuda/*_math.h, compiled here for the host) run everywhere.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "apps/common/graphed_step.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "kernels/cuda/geometry_math.h"
#include "kernels/cuda/pool2d_math.h"
#include "models/registry.h"
#include "tests/support/errors.h"

using namespace fer;

namespace {

// ---- The harness -------------------------------------------------------------------------------

struct Tolerance {
  double atol = 1e-6, scaled_atol = 1e-5, rtol = 1e-4;
};
constexpr Tolerance kExact{0.0, 0.0, 0.0};
constexpr Tolerance kMatmul{1e-6, 3e-5, 1e-4};  // cuDNN's Winograd/FFT algorithms round differently
constexpr Tolerance kNetwork{1e-6, 1e-4, 1e-3};
constexpr Tolerance kTf32{1e-6, 5e-3, 5e-3};

using Named = std::vector<std::pair<std::string, Tensor>>;

struct ParityCase {
  std::string name;
  std::function<Named(Device)> run;
  Tolerance tol{};
  bool matmul_like = false;  // also run under TF32
};

// An input of an op case: uniform in [lo, hi) from its own seed, or class ids in [0, classes).
struct Input {
  Shape shape;
  float lo = -1.0f, hi = 1.0f;
  bool grad = true;
  int64_t classes = 0;
};

Tensor make_input(const Input& in, uint64_t seed, Device dev) {
  Generator gen(seed);
  if (in.classes > 0) {
    std::vector<float> v(shape_numel(in.shape));
    for (float& x : v) x = static_cast<float>(gen.below(static_cast<uint64_t>(in.classes)));
    return Tensor::from_vector(in.shape, v, dev);
  }
  Tensor t = Tensor::uniform(in.shape, in.lo, in.hi, gen, dev);
  if (in.grad) t.set_requires_grad(true);
  return t;
}

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// The output of fn and the gradient of sum(output * probe), probe a fixed random tensor, w.r.t.
// every input that requires grad: forward and backward of the op in one case.
ParityCase op_case(const std::string& name, std::vector<Input> inputs, OpFn fn, Tolerance tol = {},
                   bool matmul_like = false) {
  auto run = [inputs, fn](Device dev) {
    std::vector<Tensor> xs;
    for (size_t k = 0; k < inputs.size(); ++k) xs.push_back(make_input(inputs[k], 100 + k, dev));
    manual_seed(77);  // dropout masks
    Tensor out = fn(xs);
    Named r{{"output", out.detach()}};
    if (out.requires_grad()) {
      Generator pg(999);
      Tensor probe = Tensor::uniform(out.shape(), -1.0f, 1.0f, pg, dev);
      sum(mul(out, probe)).backward();
      for (size_t k = 0; k < xs.size(); ++k)
        if (xs[k].requires_grad()) r.push_back({"gradient of input " + std::to_string(k), xs[k].grad()});
    }
    return r;
  };
  return {name, run, tol, matmul_like};
}

void compare(const std::string& case_name, const std::string& what, const Tensor& ref,
             const Tensor& got, const Tolerance& tol, const char* device) {
  INFO(case_name << ": " << what);
  REQUIRE_MESSAGE(ref.defined() == got.defined(), case_name, ": ", what, " is defined on one device only");
  if (!ref.defined()) return;
  REQUIRE_MESSAGE(ref.shape() == got.shape(), case_name, ": ", what, " has shape ", ref.shape_str(),
                  " on the cpu and ", got.shape_str(), " on ", device);
  const std::vector<float> a = ref.to_vector(), b = got.to_vector();
  double max_ref = 0.0;
  for (float v : a) max_ref = std::max(max_ref, static_cast<double>(std::abs(v)));
  int64_t bad = 0, worst_i = -1;
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    const double allowed = tol.atol + tol.scaled_atol * max_ref + tol.rtol * std::abs(a[i]);
    if (!(d <= allowed)) {
      ++bad;
      if (!(d <= worst)) worst = d, worst_i = static_cast<int64_t>(i);
    }
  }
  CHECK_MESSAGE(bad == 0, case_name, ": ", what, " ", ref.shape_str(), ": ", bad, " of ", a.size(),
                " values differ beyond the tolerance; worst at ", worst_i, ": cpu ",
                worst_i >= 0 ? a[worst_i] : 0.0f, " vs ", device, " ", worst_i >= 0 ? b[worst_i] : 0.0f);
}

void check_case(const ParityCase& c, Device other, const Tolerance& tol) {
  const Named ref = c.run(Device::CPU);
  Named got;
  try {
    got = c.run(other);
  } catch (const Error& e) {
    FAIL_CHECK(c.name, " failed on ", device_name(other), ": ", e.what());
    return;
  }
  REQUIRE(ref.size() == got.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    REQUIRE(ref[i].first == got[i].first);
    compare(c.name, ref[i].first, ref[i].second, got[i].second, tol, device_name(other));
  }
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

// ---- The cases ---------------------------------------------------------------------------------

Conv2dOptions conv_opts(int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                        int64_t dil = 1, int64_t groups = 1) {
  Conv2dOptions o;
  o.stride_h = stride_h, o.stride_w = stride_w, o.pad_h = pad_h, o.pad_w = pad_w;
  o.dil_h = o.dil_w = dil;
  o.groups = groups;
  return o;
}

Pool2dOptions pool_opts(int64_t k, int64_t s, int64_t p, bool ceil_mode = false) {
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = k;
  o.stride_h = o.stride_w = s;
  o.pad_h = o.pad_w = p;
  o.ceil_mode = ceil_mode;
  return o;
}

// Backend kernels called directly (the ones no op reaches with these arguments).
ParityCase kernel_case(const std::string& name, std::function<Named(Device, Backend&)> fn,
                       Tolerance tol = {}) {
  return {name, [fn](Device dev) { return fn(dev, backend(dev)); }, tol, false};
}

// One step of an optimizer on fixed parameters and gradients (three steps: momentum buffers and
// bias corrections move), everything drawn on the host so both devices start identical.
ParityCase optimizer_case(const std::string& name,
                          std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make,
                          float clip = 0.0f) {
  auto run = [make, clip](Device dev) {
    Generator g(5);
    Tensor a = Tensor::uniform({37}, -1, 1, g, dev), b = Tensor::uniform({5, 7}, -1, 1, g, dev);
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    auto opt = make({a, b});
    Named r;
    for (int step = 0; step < 3; ++step) {
      a.set_grad(Tensor::uniform({37}, -1, 1, g, dev));
      b.set_grad(Tensor::uniform({5, 7}, -1, 1, g, dev));
      if (clip > 0) r.push_back({"norm before clipping, step " + std::to_string(step),
                                 Tensor::scalar(clip_grad_norm({a, b}, clip))});
      opt->step();
    }
    r.push_back({"parameter a", a.detach()});
    r.push_back({"parameter b", b.detach()});
    for (const auto& [key, t] : opt->state_dict()) r.push_back({key, t});
    return r;
  };
  return {name, run, Tolerance{1e-6, 1e-6, 1e-5}, false};
}

std::vector<ParityCase> all_cases() {
  const Shape img{3, 5, 7, 9};  // N=3, C=5, H=7, W=9: odd everywhere
  std::vector<ParityCase> c;

  // Elementwise and reductions.
  c.push_back(op_case("add", {{img}, {img}}, [](auto& x) { return add(x[0], x[1]); }, kExact));
  c.push_back(op_case("mul", {{img}, {img}}, [](auto& x) { return mul(x[0], x[1]); }, kExact));
  c.push_back(op_case("scale", {{img}}, [](auto& x) { return scale(x[0], -2.5f); }, kExact));
  c.push_back(op_case("sum", {{img}}, [](auto& x) { return sum(x[0]); }));
  c.push_back(op_case("mean", {{{1000003}}}, [](auto& x) { return mean(x[0]); }));
  // Activations (relu6 over [-8, 8] to reach both clips).
  c.push_back(op_case("relu", {{img}}, [](auto& x) { return relu(x[0]); }, kExact));
  c.push_back(op_case("relu6", {{img, -8, 8}}, [](auto& x) { return relu6(x[0]); }, kExact));
  c.push_back(op_case("leaky_relu", {{img}}, [](auto& x) { return leaky_relu(x[0], 0.1f); }, kExact));
  c.push_back(op_case("sigmoid", {{img, -6, 6}}, [](auto& x) { return sigmoid(x[0]); }));
  c.push_back(op_case("tanh", {{img, -3, 3}}, [](auto& x) { return fer::tanh(x[0]); }));

  // Dense.
  c.push_back(op_case("matmul", {{{7, 9}}, {{9, 5}}}, [](auto& x) { return matmul(x[0], x[1]); }, kMatmul, true));
  c.push_back(op_case("matmul 64x300x129", {{{64, 300}}, {{300, 129}}},
                      [](auto& x) { return matmul(x[0], x[1]); }, kMatmul, true));
  c.push_back(op_case("linear", {{{3, 11}}, {{5, 11}}, {{5}}},
                      [](auto& x) { return linear(x[0], x[1], x[2]); }, kMatmul, true));
  c.push_back(op_case("linear without bias", {{{6, 2304}}, {{13, 2304}}},
                      [](auto& x) { return linear(x[0], x[1], Tensor()); }, kMatmul, true));

  // Convolution: stride, padding, groups, dilation, bias, non-square kernels, 1x1.
  auto conv = [&](const std::string& name, Shape x, Shape w, bool bias, Conv2dOptions o) {
    std::vector<Input> in{{x}, {w}};
    if (bias) in.push_back({{w[0]}});
    c.push_back(op_case("conv2d " + name, in, [o, bias](auto& t) {
      return conv2d(t[0], t[1], bias ? t[2] : Tensor(), o);
    }, kMatmul, true));
  };
  conv("3x3 pad 1 + bias", img, {4, 5, 3, 3}, true, conv_opts(1, 1, 1, 1));
  conv("3x3 stride 2 pad 1 + bias", img, {6, 5, 3, 3}, true, conv_opts(2, 2, 1, 1));
  conv("3x3 no padding", img, {4, 5, 3, 3}, false, conv_opts(1, 1, 0, 0));
  conv("groups 2", {3, 6, 7, 9}, {4, 3, 3, 3}, true, conv_opts(1, 1, 1, 1, 1, 2));
  conv("depthwise stride 2", {3, 6, 7, 9}, {6, 1, 3, 3}, false, conv_opts(2, 2, 1, 1, 1, 6));
  conv("dilation 2", img, {4, 5, 3, 3}, true, conv_opts(1, 1, 2, 2, 2));
  conv("5x3 stride 2x1 pad 2x0", img, {3, 5, 5, 3}, true, conv_opts(2, 1, 2, 0));
  conv("1x1", img, {7, 5, 1, 1}, true, conv_opts(1, 1, 0, 0));
  conv("1x1 stride 2", img, {7, 5, 1, 1}, false, conv_opts(2, 2, 0, 0));
  conv("fer first layer", {4, 1, 48, 48}, {32, 1, 3, 3}, false, conv_opts(1, 1, 1, 1));
  conv("fer 64 channels", {2, 64, 12, 12}, {64, 64, 3, 3}, false, conv_opts(1, 1, 1, 1));

  // Pooling (bit-identical by construction).
  auto pool = [&](const std::string& name, Shape x, bool max, Pool2dOptions o) {
    c.push_back(op_case(std::string(max ? "max_pool2d " : "avg_pool2d ") + name, {{x}},
                        [o, max](auto& t) { return max ? max_pool2d(t[0], o) : avg_pool2d(t[0], o); },
                        kExact));
  };
  pool("2x2", img, true, pool_opts(2, 2, 0));
  pool("3x3 stride 2 pad 1", img, true, pool_opts(3, 2, 1));
  pool("3x3 stride 2 ceil", img, true, pool_opts(3, 2, 0, true));
  pool("3x3 stride 1 pad 1 (overlapping)", img, true, pool_opts(3, 1, 1));
  pool("2x2", img, false, pool_opts(2, 2, 0));
  pool("3x3 stride 2 pad 1", img, false, pool_opts(3, 2, 1));
  pool("3x3 stride 2 pad 1 ceil", img, false, pool_opts(3, 2, 1, true));
  pool("5x5 stride 1 pad 2 (overlapping)", img, false, pool_opts(5, 1, 2));
  c.push_back(op_case("global_avg_pool", {{img}}, [](auto& x) { return global_avg_pool(x[0]); }));

  // Batch normalisation: training (4-d and 2-d; output, gradients and the running buffers,
  // unbiased variance), evaluation (running statistics).
  auto bn = [&](const std::string& name, Shape x, bool training) {
    const int64_t C = x[1];
    c.push_back({"batch_norm " + name, [x, C, training](Device dev) {
      Tensor in = make_input({x}, 1, dev), gamma = make_input({{C}, 0.5f, 1.5f}, 2, dev);
      Tensor beta = make_input({{C}}, 3, dev);
      Tensor rm = make_input({{C}, -0.5f, 0.5f, false}, 4, dev);
      Tensor rv = make_input({{C}, 0.5f, 2.0f, false}, 5, dev);
      Tensor y = batch_norm(in, gamma, beta, rm, rv, training, 0.1f, 1e-5f);
      Generator pg(999);
      sum(mul(y, Tensor::uniform(y.shape(), -1, 1, pg, dev))).backward();
      return Named{{"output", y.detach()}, {"dx", in.grad()}, {"dgamma", gamma.grad()},
                   {"dbeta", beta.grad()}, {"running_mean", rm}, {"running_var", rv}};
    }});
  };
  bn("train [3, 5, 7, 9]", img, true);
  bn("train [6, 5]", {6, 5}, true);
  bn("train [64, 32, 6, 6]", {64, 32, 6, 6}, true);
  bn("eval [3, 5, 7, 9]", img, false);

  // Dropout: the same counter-based masks on every backend.
  c.push_back(op_case("dropout p=0.3", {{img}}, [](auto& x) { return dropout(x[0], 0.3f, true); }, kExact));
  c.push_back(op_case("dropout p=0.5 large", {{{3, 70001}}}, [](auto& x) { return dropout(x[0], 0.5f, true); }, kExact));

  // Softmax family and losses (weights, label smoothing).
  c.push_back(op_case("softmax", {{{6, 7}, -4, 4}}, [](auto& x) { return softmax(x[0]); }));
  c.push_back(op_case("log_softmax", {{{6, 7}, -4, 4}}, [](auto& x) { return log_softmax(x[0]); }));
  c.push_back(op_case("softmax 1000 classes", {{{5, 1000}, -4, 4}}, [](auto& x) { return softmax(x[0]); }));
  c.push_back(op_case("nll_loss", {{{9, 7}, -4, 0}, {{9}, 0, 0, false, 7}},
                      [](auto& x) { return nll_loss(x[0], x[1]); }));
  c.push_back(op_case("cross_entropy weights + smoothing",
                      {{{9, 7}, -3, 3}, {{9}, 0, 0, false, 7}, {{7}, 0.2f, 2.0f, false}},
                      [](auto& x) {
                        CrossEntropyOptions o;
                        o.class_weights = x[2];
                        o.label_smoothing = 0.1f;
                        return cross_entropy(x[0], x[1], o);
                      }));
  c.push_back(op_case("cross_entropy smoothing, batch 300",
                      {{{300, 7}, -3, 3}, {{300}, 0, 0, false, 7}},
                      [](auto& x) {
                        CrossEntropyOptions o;
                        o.label_smoothing = 0.2f;
                        return cross_entropy(x[0], x[1], o);
                      }));

  // Shape ops.
  c.push_back(op_case("concat channels", {{{3, 2, 4, 5}}, {{3, 3, 4, 5}}},
                      [](auto& x) { return concat({x[0], x[1]}, 1); }, kExact));
  c.push_back(op_case("concat batch", {{{2, 3, 4}}, {{3, 3, 4}}}, [](auto& x) { return concat({x[0], x[1]}, 0); }, kExact));
  c.push_back(op_case("concat last dim", {{{2, 3, 4}}, {{2, 3, 1}}, {{2, 3, 6}}},
                      [](auto& x) { return concat({x[0], x[1], x[2]}, -1); }, kExact));
  c.push_back(op_case("resize_bilinear up", {{{2, 3, 5, 7}}}, [](auto& x) { return resize_bilinear(x[0], 11, 13); }));
  c.push_back(op_case("resize_bilinear down", {{{2, 3, 9, 11}}}, [](auto& x) { return resize_bilinear(x[0], 4, 3); }));
  c.push_back(op_case("pad2d", {{img}}, [](auto& x) { return pad2d(x[0], 1, 2, 3, 0); }, kExact));
  c.push_back(op_case("reshape, flatten, slice_batch", {{img}},
                      [](auto& x) { return x[0].slice_batch(1, 3).flatten(1).reshape({-1, 9}); }, kExact));

  // Kernels no op reaches with these arguments.
  c.push_back(kernel_case("copy_2d accumulate, sum_rows accumulate, axpby, fill", [](Device dev, Backend& be) {
    Generator g(3);
    Tensor src = Tensor::uniform({6, 10}, -1, 1, g, dev), dst = Tensor::uniform({6, 8}, -1, 1, g, dev);
    be.copy_2d(src.data() + 1, 10, dst.data() + 2, 8, 6, 5, true);
    Tensor bias = Tensor::uniform({10}, -1, 1, g, dev);
    be.sum_rows(src.data(), bias.data(), 6, 10, true);
    Tensor y = Tensor::uniform({60}, -1, 1, g, dev);
    be.axpby(0.7f, src.data(), -1.3f, y.data(), 60);
    Tensor f = Tensor::empty({13}, dev);
    be.fill(f.data(), 13, -2.25f);
    return Named{{"copy_2d", dst}, {"sum_rows", bias}, {"axpby", y}, {"fill", f}};
  }));
  c.push_back(kernel_case("sum and sum_squares, 3 million values", [](Device dev, Backend& be) {
    Generator g(4);
    Tensor x = Tensor::uniform({3000017}, -1, 1, g, dev);
    return Named{{"sum", Tensor::scalar(static_cast<float>(be.sum(x.data(), x.numel())))},
                 {"sum_squares", Tensor::scalar(static_cast<float>(be.sum_squares(x.data(), x.numel())))}};
  }));

  // Optimizers (fused update kernels) and gradient clipping.
  c.push_back(optimizer_case("SGD plain", [](std::vector<Tensor> p) { return std::make_unique<SGD>(p, 0.1f); }));
  c.push_back(optimizer_case("SGD momentum, nesterov, weight decay", [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, 0.1f, 0.9f, 0.0f, 1e-2f, true);
  }));
  c.push_back(optimizer_case("SGD momentum, dampening", [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, 0.05f, 0.8f, 0.3f, 0.0f, false);
  }));
  c.push_back(optimizer_case("Adam with L2", [](std::vector<Tensor> p) {
    return std::make_unique<Adam>(p, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f);
  }));
  c.push_back(optimizer_case("AdamW, clip_grad_norm", [](std::vector<Tensor> p) {
    return std::make_unique<AdamW>(p, 1e-2f, 0.9f, 0.99f, 1e-8f, 5e-2f);
  }, 0.5f));
  return c;
}

// One training step of fer_vgg_small (dropout 0.5, class weights, label smoothing 0.1, SGD with
// Nesterov momentum and weight decay): loss, logits, every gradient, every updated parameter, the
// batchnorm buffers, and the eval-mode logits after the step.
Named fer_vgg_small_step(Device dev) {
  manual_seed(5);
  auto model = create_model("fer_vgg_small");
  model->to(dev);
  model->train();
  Generator g(12);
  const int64_t N = 8;
  Tensor x = Tensor::uniform({N, 1, 48, 48}, 0.0f, 1.0f, g, dev);
  std::vector<float> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = static_cast<float>((i * 3) % 7);
  Tensor y = Tensor::from_vector({N}, labels, dev);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1f;
  ce.class_weights = Tensor::from_vector({7}, {1.0f, 2.0f, 0.5f, 1.0f, 1.5f, 1.0f, 0.8f}, dev);
  SGD opt(model->parameters(), 0.05f, 0.9f, 0.0f, 5e-4f, true);
  manual_seed(9);  // the dropout masks
  Tensor logits = model->forward(x);
  Tensor loss = cross_entropy(logits, y, ce);
  loss.backward();
  opt.step();
  Named r{{"loss", loss.detach()}, {"logits", logits.detach()}};
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"grad " + name, p.grad()});
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"updated " + name, p.detach()});
  for (const auto& [name, b] : model->named_buffers()) r.push_back({"buffer " + name, b});
  model->eval();
  NoGradGuard no_grad;
  r.push_back({"eval logits after the step", model->forward(x)});
  return r;
}

// AdamW on fer_vgg_small's real parameter shapes, from gradients computed once on the CPU (Adam
// normalises each gradient element, so its updates cannot be compared from gradients that differ
// by rounding): two steps, to exercise the bias corrections.
Named fer_vgg_small_adamw(Device dev) {
  manual_seed(5);
  auto model = create_model("fer_vgg_small");
  model->train();
  Generator g(13);
  Tensor x = Tensor::uniform({4, 1, 48, 48}, 0.0f, 1.0f, g);
  Tensor y = Tensor::from_vector({4}, {0, 3, 6, 2});
  manual_seed(9);
  cross_entropy(model->forward(x), y).backward();
  model->to(dev);  // parameters and their gradients
  AdamW opt(model->parameters(), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f);
  opt.step();
  opt.step();
  Named r;
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"updated " + name, p.detach()});
  return r;
}

}  // namespace

// ---- GPU parity ----------------------------------------------------------------------------------

TEST_CASE("CUDA parity: every op and kernel, forward and backward, matches the CPU") {
  for (Device dev : other_backends()) {
    const std::vector<ParityCase> cases = all_cases();
    for (const ParityCase& c : cases) check_case(c, dev, c.tol);
    MESSAGE(cases.size(), " cases on ", device_name(dev), ": ", cuda_status());
  }
}

TEST_CASE("CUDA parity under TF32: convolutions and GEMMs within TF32 rounding") {
  for (Device dev : other_backends()) {
    Backend& be = backend(dev);
    be.set_allow_tf32(true);
    CHECK(be.allow_tf32());
    for (const ParityCase& c : all_cases())
      if (c.matmul_like) check_case(c, dev, kTf32);
    be.set_allow_tf32(false);
  }
}

TEST_CASE("CUDA parity: a whole fer_vgg_small training step (SGD) and AdamW updates") {
  for (Device dev : other_backends()) {
    check_case({"fer_vgg_small SGD step", fer_vgg_small_step, kNetwork}, dev, kNetwork);
    check_case({"fer_vgg_small AdamW", fer_vgg_small_adamw, {}}, dev, Tolerance{1e-6, 1e-5, 1e-4});
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
      compare("graph step " + std::to_string(s), "logits", logits_e, out.logits, kNetwork, "graph");
      const NamedTensors pe = eager->named_parameters(), pg = graphed->named_parameters();
      for (size_t i = 0; i < pe.size(); ++i)
        compare("graph step " + std::to_string(s), "updated " + pe[i].first, pe[i].second.detach(),
                pg[i].second.detach(), kNetwork, "graph");
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
