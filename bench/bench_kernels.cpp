// Google Benchmark cases for every backend side by side, at FER2013's shapes (batch 64 of 1x48x48
// faces through fer_vgg_small): each fer_vgg_small convolution forward and backward, GEMM and the
// linear layer, batchnorm, max pooling, a whole SGD training step and inference of one face and of
// a batch. Every case is registered once per backend: "cpu/<case>", and when a GPU is usable
// "cuda/<case>", "cuda-tf32/<case>" (TF32 tensor-core math for convolutions and GEMMs) and
// "cuda-graph/train_step/64" (the step replayed as CUDA graphs, kernels/cuda/graph.cu).
//
// Timing: the timed region ends with Backend::synchronize(), so GPU cases measure finished work,
// not queued launches; each case runs once untimed first (cuDNN chooses its algorithms then).
// Counters: GFLOP/s for convolutions and GEMMs (2 x multiply-adds), GB/s for the memory-bound
// batchnorm and pooling, images/s for the whole-network cases.
// scripts/bench_gpu.sh runs this with JSON output and writes the CPU-vs-GPU table.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "apps/training/graphed_step.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "models/registry.h"

using namespace fer;

namespace {

struct Target {
  std::string prefix;  // "cpu", "cuda", "cuda-tf32"
  Device device;
  bool tf32;
};

Tensor random(const Shape& s, uint64_t seed, Device dev) {
  Generator g(seed);
  return Tensor::uniform(s, -1.0f, 1.0f, g, dev);
}

// Sets the backend's TF32 mode for the lifetime of a case.
struct MathMode {
  MathMode(Device dev, bool tf32) : be(backend(dev)), before(be.allow_tf32()) { be.set_allow_tf32(tf32); }
  ~MathMode() { be.set_allow_tf32(before); }
  Backend& be;
  bool before;
};

Conv2dGeometry conv3x3(int64_t N, int64_t C, int64_t K, int64_t H) {
  return {N, C, H, H, K, 3, 3, 1, 1, 1, 1, 1, 1, 1, H, H};
}

// The eight convolutions of fer_vgg_small: (C, K, H).
const std::vector<std::vector<int64_t>> kConvLayers = {
    {1, 32, 48}, {32, 32, 48}, {32, 64, 24}, {64, 64, 24},
    {64, 128, 12}, {128, 128, 12}, {128, 256, 6}, {256, 256, 6}};

void conv_forward(benchmark::State& state, Target t) {
  const int64_t C = state.range(0), K = state.range(1), H = state.range(2), N = 64;
  MathMode mode(t.device, t.tf32);
  Backend& be = backend(t.device);
  const Conv2dGeometry g = conv3x3(N, C, K, H);
  Tensor x = random({N, C, H, H}, 1, t.device), w = random({K, C, 3, 3}, 2, t.device);
  Tensor y = Tensor::empty({N, K, H, H}, t.device);
  be.conv2d_forward(g, x.data(), w.data(), nullptr, y.data(), nullptr, BnActivation::None);
  be.synchronize();
  for (auto _ : state) {
    be.conv2d_forward(g, x.data(), w.data(), nullptr, y.data(), nullptr, BnActivation::None);
    be.synchronize();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * K * H * H * C * 9 * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// Input and weight gradients (what a training step needs of every layer but the first).
void conv_backward(benchmark::State& state, Target t) {
  const int64_t C = state.range(0), K = state.range(1), H = state.range(2), N = 64;
  MathMode mode(t.device, t.tf32);
  Backend& be = backend(t.device);
  const Conv2dGeometry g = conv3x3(N, C, K, H);
  Tensor x = random({N, C, H, H}, 1, t.device), w = random({K, C, 3, 3}, 2, t.device);
  Tensor dy = random({N, K, H, H}, 3, t.device);
  Tensor dx = Tensor::empty(x.shape(), t.device), dw = Tensor::empty(w.shape(), t.device);
  auto run = [&] {
    be.conv2d_backward_input(g, dy.data(), w.data(), dx.data());
    be.conv2d_backward_weight(g, dy.data(), x.data(), dw.data(), nullptr);
    be.synchronize();
  };
  run();
  for (auto _ : state) run();
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 2.0 * N * K * H * H * C * 9 * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void gemm(benchmark::State& state, Target t) {
  const int64_t n = state.range(0);
  MathMode mode(t.device, t.tf32);
  Backend& be = backend(t.device);
  Tensor a = random({n, n}, 1, t.device), b = random({n, n}, 2, t.device), c = Tensor::empty({n, n}, t.device);
  be.gemm(false, false, n, n, n, 1.0f, a.data(), b.data(), 0.0f, c.data());
  be.synchronize();
  for (auto _ : state) {
    be.gemm(false, false, n, n, n, 1.0f, a.data(), b.data(), 0.0f, c.data());
    be.synchronize();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void linear_layer(benchmark::State& state, Target t) {
  const int64_t N = 64, in = state.range(0), out = state.range(1);
  MathMode mode(t.device, t.tf32);
  Tensor x = random({N, in}, 1, t.device), w = random({out, in}, 2, t.device), b = random({out}, 3, t.device);
  NoGradGuard no_grad;
  linear(x, w, b);
  backend(t.device).synchronize();
  for (auto _ : state) {
    benchmark::DoNotOptimize(linear(x, w, b).data());
    backend(t.device).synchronize();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * in * out * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Training-mode forward and backward (statistics, normalisation, the three gradients); with a
// third argument 1, fused with the ReLU after it (batch_norm_relu).
void batchnorm_train(benchmark::State& state, Target t) {
  const int64_t C = state.range(0), H = state.range(1), N = 64, HW = H * H;
  const BnActivation act = state.range(2) != 0 ? BnActivation::ReLU : BnActivation::None;
  Backend& be = backend(t.device);
  Tensor x = random({N, C, H, H}, 1, t.device), dy = random({N, C, H, H}, 2, t.device);
  Tensor g = Tensor::ones({C}, t.device), b = Tensor::zeros({C}, t.device);
  Tensor rm = Tensor::zeros({C}, t.device), rv = Tensor::ones({C}, t.device);
  Tensor mean = Tensor::empty({C}, t.device), invstd = Tensor::empty({C}, t.device);
  Tensor y = Tensor::empty(x.shape(), t.device), dx = Tensor::empty(x.shape(), t.device);
  Tensor dg = Tensor::empty({C}, t.device), db = Tensor::empty({C}, t.device);
  auto run = [&] {
    be.batchnorm_forward_train(N, C, HW, x.data(), g.data(), b.data(), 1e-5f, 0.1f, rm.data(), rv.data(),
                               y.data(), mean.data(), invstd.data(), act);
    be.batchnorm_backward(N, C, HW, x.data(), dy.data(), g.data(), b.data(), mean.data(),
                          invstd.data(), dx.data(), dg.data(), db.data(), act);
    be.synchronize();
  };
  run();
  for (auto _ : state) run();
  // forward: read x twice (two statistics passes) + once, write y; backward: read x, dy twice, write dx
  state.counters["GB/s"] = benchmark::Counter(8.0 * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void max_pool(benchmark::State& state, Target t) {
  const int64_t C = state.range(0), H = state.range(1), N = 64;
  Backend& be = backend(t.device);
  const Pool2dGeometry g{N, C, H, H, 2, 2, 2, 2, 0, 0, H / 2, H / 2};
  Tensor x = random({N, C, H, H}, 1, t.device), y = Tensor::empty({N, C, H / 2, H / 2}, t.device);
  Tensor dx = Tensor::empty(x.shape(), t.device);
  auto argmax = std::make_shared<Storage>(y.numel() * sizeof(int32_t), t.device);
  auto run = [&] {
    be.max_pool2d_forward(g, x.data(), y.data(), static_cast<int32_t*>(argmax->data));
    be.max_pool2d_backward(g, y.data(), static_cast<int32_t*>(argmax->data), dx.data());
    be.synchronize();
  };
  run();
  for (auto _ : state) run();
  // forward reads x, writes y and argmax; backward reads dy and argmax, writes dx
  state.counters["GB/s"] = benchmark::Counter((2.0 + 1.0) * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

struct Step {
  std::shared_ptr<Module> model;
  std::unique_ptr<SGD> opt;
  Tensor x, y;
};

Step make_step(int64_t N, Device dev) {
  manual_seed(1);
  Step s;
  s.model = create_model("fer_vgg_small");
  s.model->to(dev);
  s.model->train();
  s.opt = std::make_unique<SGD>(s.model->parameters(), 0.01f, 0.9f, 0.0f, 5e-4f, true);
  s.x = random({N, 1, 48, 48}, 1, dev);
  std::vector<float> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = static_cast<float>(i % 7);
  s.y = Tensor::from_vector({N}, labels, dev);
  return s;
}

// One SGD (Nesterov momentum, weight decay) step of fer_vgg_small: forward, loss, backward, update.
void train_step(benchmark::State& state, Target t) {
  const int64_t N = state.range(0);
  MathMode mode(t.device, t.tf32);
  Step s = make_step(N, t.device);
  auto run = [&] {
    s.opt->zero_grad();
    Tensor loss = cross_entropy(s.model->forward(s.x), s.y);
    loss.backward();
    s.opt->step();
    backend(t.device).synchronize();
  };
  run();
  for (auto _ : state) run();
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

// The same step replayed from CUDA graphs as fer_train --cuda-graph runs it (GraphedStep): per
// step a copy of the batch into the recorded input, two replays, the loss on the logits eagerly, and the
// optimizer's fused updates.
void train_step_graph(benchmark::State& state, Target t) {
  const int64_t N = state.range(0);
  MathMode mode(t.device, t.tf32);
  Step s = make_step(N, t.device);
  s.opt->zero_grad();
  cross_entropy(s.model->forward(s.x), s.y).backward();  // eager warm-up: cuDNN's choices
  s.opt->step();
  std::unique_ptr<GraphedStep> graphed = GraphedStep::record(*s.model, s.x.shape(), t.device);
  if (!graphed) {
    state.SkipWithError("this backend records no graphs");
    return;
  }
  uint64_t seed = 1;
  auto run = [&] {
    graphed->run(s.x, seed++, [&](const Tensor& logits) { return cross_entropy(logits, s.y); });
    s.opt->step();
    backend(t.device).synchronize();
  };
  run();
  for (auto _ : state) run();
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

void inference(benchmark::State& state, Target t) {
  const int64_t N = state.range(0);
  MathMode mode(t.device, t.tf32);
  manual_seed(1);
  auto model = create_model("fer_vgg_small");
  model->to(t.device);
  model->eval();
  Tensor x = random({N, 1, 48, 48}, 1, t.device);
  NoGradGuard no_grad;
  model->forward(x);
  backend(t.device).synchronize();
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->forward(x).data());
    backend(t.device).synchronize();
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

void register_cases(const Target& t) {
  using Fn = void (*)(benchmark::State&, Target);
  auto add = [&](const char* name, Fn fn) {
    return benchmark::RegisterBenchmark((t.prefix + "/" + name).c_str(), [fn, t](benchmark::State& st) { fn(st, t); })
        ->UseRealTime();
  };
  auto* fwd = add("conv2d_forward", conv_forward)->Unit(benchmark::kMillisecond);
  auto* bwd = add("conv2d_backward", conv_backward)->Unit(benchmark::kMillisecond);
  for (const auto& layer : kConvLayers) {
    fwd->Args(layer);
    bwd->Args(layer);
  }
  add("gemm", gemm)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond);
  add("linear", linear_layer)->Args({2304, 256})->Unit(benchmark::kMicrosecond);
  add("batchnorm_train", batchnorm_train)
      ->Args({32, 48, 0})->Args({32, 48, 1})->Args({256, 6, 0})->Args({256, 6, 1})
      ->Unit(benchmark::kMillisecond);
  add("max_pool2d", max_pool)->Args({32, 48})->Args({256, 6})->Unit(benchmark::kMillisecond);
  add("train_step", train_step)->Arg(64)->Unit(benchmark::kMillisecond)->MinTime(t.device == Device::CPU ? 3.0 : 1.0);
  add("inference", inference)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);
  if (t.device == Device::CUDA && !t.tf32)
    benchmark::RegisterBenchmark("cuda-graph/train_step", [t](benchmark::State& st) { train_step_graph(st, t); })
        ->UseRealTime()
        ->Arg(64)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_cases({"cpu", Device::CPU, false});
  if (cuda_available()) {
    register_cases({"cuda", Device::CUDA, false});
    register_cases({"cuda-tf32", Device::CUDA, true});
  } else {
    std::fprintf(stderr, "bench_kernels: CPU cases only; no CUDA GPU (%s)\n", cuda_status().c_str());
  }
  benchmark::AddCustomContext("cuda", cuda_status());
  benchmark::AddCustomContext("cpu_threads", std::to_string(cpu_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
