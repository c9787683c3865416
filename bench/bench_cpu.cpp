// Google Benchmark cases for the CPU backend at FER2013's shapes (batch 64, 1x48x48 faces):
// conv2d forward and backward, linear, batchnorm, pooling, a whole training step of the
// fer_vgg_small CNN and one-face inference. Counters: GFLOP/s where the FLOPs are well defined,
// images/s for the whole-network cases. scripts/bench_vs_pytorch.py runs the same cases with
// PyTorch and prints the ratios.
#include <benchmark/benchmark.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/cpu/fma_peak.h"
#include "kernels/cpu/gemm_microkernel.h"
#include "kernels/cpu/isa.h"
#include "models/registry.h"

using namespace fer;

namespace {

Tensor random(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return Tensor::uniform(s, -1.0f, 1.0f, g);
}

// The fp32 FMA peak of the active kernel set on cpu_threads() threads: the ceiling for the
// GFLOP/s of every other case (bench_vs_pytorch.py prints each case's share of it).
void BM_fma_peak(benchmark::State& state) {
  const cpu::Isa isa = cpu::fp32_isa();
  if (isa == cpu::Isa::Scalar) {
    state.SkipWithError("no vector FMA set on this CPU");
    return;
  }
  const int threads = cpu_threads();
  double flops = 0.0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += cpu::fma_peak_run(isa, int64_t{1} << 22);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.SetLabel(cpu::cpu_kernels_summary());
}
BENCHMARK(BM_fma_peak)->Unit(benchmark::kMillisecond)->UseRealTime();

// The GEMM micro-kernel alone, one thread, on packed panels that stay in L1 (kc = KC steps of a
// rank-1 update of one MR x NR tile): the ceiling of every GEMM and convolution, as a share of
// one core's FMA peak. Arg 1: the operand forms of the direct convolution (A rows in place,
// B rows at tap offsets), arg 0: both packed.
void BM_gemm_microkernel(benchmark::State& state) {
  const cpu::GemmMicroKernel* kernel = cpu::active_gemm_microkernel();
  if (!kernel) {
    state.SkipWithError("no vector micro-kernel on this CPU");
    return;
  }
  const bool in_place = state.range(0) == 1;
  const int64_t mr = kernel->mr, nr = kernel->nr, kc = cpu::gemm_depth_block(kernel->nr);
  Generator gen(1);
  std::vector<float> a(static_cast<size_t>(mr * kc)), b(static_cast<size_t>((kc + 2) * nr + 64)), c(static_cast<size_t>(mr * nr));
  for (float& v : a) v = gen.uniform(-1, 1);
  for (float& v : b) v = gen.uniform(-1, 1);
  std::vector<int32_t> offsets(static_cast<size_t>(kc));
  for (int64_t k = 0; k < kc; ++k) offsets[static_cast<size_t>(k)] = static_cast<int32_t>(k * nr + k % 3);  // unaligned, as taps are
  const int64_t calls = 1000;
  for (auto _ : state)
    for (int64_t i = 0; i < calls; ++i)
      kernel->run(kc, a.data(), in_place ? kc : 0, b.data(), in_place ? offsets.data() : nullptr, c.data(), nr,
                  1.0f, 0.0f);
  benchmark::DoNotOptimize(c.data());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * mr * nr * kc * calls * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernel->isa) + " " + std::to_string(mr) + "x" + std::to_string(nr));
}
BENCHMARK(BM_gemm_microkernel)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Conv layers of fer_vgg_small at batch 64: (C, K, H).
void conv_args(benchmark::internal::Benchmark* b) {
  b->Args({1, 32, 48})->Args({32, 32, 48})->Args({64, 64, 24})->Args({128, 128, 12})->Args({256, 256, 6});
}

void BM_conv2d_forward(benchmark::State& state) {
  const int64_t C = state.range(0), K = state.range(1), H = state.range(2), N = 64;
  Tensor x = random({N, C, H, H}, 1), w = random({K, C, 3, 3}, 2);
  Conv2dOptions o;
  o.pad_h = o.pad_w = 1;
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(conv2d(x, w, Tensor(), o).data());
  const double flops = 2.0 * N * K * H * H * C * 9;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_conv2d_forward)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// The backward pass of one layer: the input and weight gradients, or (input_gradient false: x
// needs no gradient) the weight gradient alone. The forward is untimed.
void conv_backward(benchmark::State& state, bool input_gradient) {
  const int64_t C = state.range(0), K = state.range(1), H = state.range(2), N = 64;
  Tensor x = random({N, C, H, H}, 1), w = random({K, C, 3, 3}, 2);
  x.set_requires_grad(input_gradient);
  w.set_requires_grad(true);
  Conv2dOptions o;
  o.pad_h = o.pad_w = 1;
  Tensor probe = random({N, K, H, H}, 3);
  for (auto _ : state) {
    state.PauseTiming();
    Tensor y = conv2d(x, w, Tensor(), o);
    Tensor loss = sum(mul(y, probe));
    state.ResumeTiming();
    loss.backward();  // includes the (cheap) sum/mul backward; dominated by conv backward
    if (input_gradient) x.zero_grad();
    w.zero_grad();
  }
  const double flops = (input_gradient ? 2.0 : 1.0) * 2.0 * N * K * H * H * C * 9;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_conv2d_backward(benchmark::State& state) { conv_backward(state, true); }
void BM_conv2d_backward_weight(benchmark::State& state) { conv_backward(state, false); }
BENCHMARK(BM_conv2d_backward)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_backward_weight)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_linear(benchmark::State& state) {
  const int64_t N = 64, in = state.range(0), out = state.range(1);
  Tensor x = random({N, in}, 1), w = random({out, in}, 2), b = random({out}, 3);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(linear(x, w, b).data());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * in * out * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_linear)->Args({2304, 256})->Args({4608, 512})->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = random({n, n}, 1), b = random({n, n}, 2);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(matmul(a, b).data());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_gemm)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_batchnorm_train(benchmark::State& state) {
  const int64_t C = state.range(0), H = state.range(1), N = 64;
  Tensor x = random({N, C, H, H}, 1), g = Tensor::ones({C}), b = Tensor::zeros({C});
  Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(batch_norm(x, g, b, rm, rv, true, 0.1f, 1e-5f).data());
  state.counters["GB/s"] = benchmark::Counter(3.0 * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_batchnorm_train)->Args({32, 48})->Args({256, 6})->Unit(benchmark::kMillisecond)->UseRealTime();

// A training BatchNorm and the ReLU after it, forward and backward through autograd as the
// networks run them (sum(batch_norm_relu(x)).backward(), gamma and beta trainable): the fused op.
// Memory: the forward reads x twice and writes y; the sum reads y; the backward writes the ones,
// then reads x and them twice and writes dx: ten passes over x's size.
void BM_batchnorm_relu_train(benchmark::State& state) {
  const int64_t C = state.range(0), H = state.range(1), N = 64;
  Tensor x = random({N, C, H, H}, 1), g = Tensor::ones({C}), b = Tensor::zeros({C});
  Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
  for (Tensor* t : {&x, &g, &b}) t->set_requires_grad(true);
  for (auto _ : state) {
    sum(batch_norm_relu(x, g, b, rm, rv, true, 0.1f, 1e-5f)).backward();
    benchmark::DoNotOptimize(x.grad().data());
    for (Tensor* t : {&x, &g, &b}) t->zero_grad();
  }
  state.counters["GB/s"] = benchmark::Counter(10.0 * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_batchnorm_relu_train)->Args({32, 48})->Args({256, 6})->Unit(benchmark::kMillisecond)->UseRealTime();

// ReLU's forward and backward on a batch of feature maps, through autograd as training runs them
// (sum(relu(x)).backward(): the sum's gradient is a tensor of ones): memory-bound, seven passes
// over x's size (relu: read x, write y; sum: read y; its backward: write ones; relu's backward:
// read x and the ones, write dx).
void BM_relu_train(benchmark::State& state) {
  const int64_t C = state.range(0), H = state.range(1), N = 64;
  Tensor x = random({N, C, H, H}, 1);
  x.set_requires_grad(true);
  for (auto _ : state) {
    sum(relu(x)).backward();
    benchmark::DoNotOptimize(x.grad().data());
    x.zero_grad();
  }
  state.counters["GB/s"] = benchmark::Counter(7.0 * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_relu_train)->Args({32, 48})->Args({256, 6})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_max_pool2d(benchmark::State& state) {
  const int64_t C = state.range(0), H = state.range(1), N = 64;
  Tensor x = random({N, C, H, H}, 1);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(max_pool2d(x, {}).data());
  state.counters["GB/s"] = benchmark::Counter(1.25 * x.numel() * 4 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_max_pool2d)->Args({32, 48})->Args({256, 6})->Unit(benchmark::kMillisecond)->UseRealTime();

// One SGD training step of a model on a batch of 48x48 faces: forward, loss, backward, update.
void train_step(benchmark::State& state, const std::string& name, const ModelConfig& config) {
  const int64_t N = state.range(0);
  manual_seed(1);
  auto model = create_model(name, config);
  model->train();
  Tensor x = random({N, 1, 48, 48}, 1);
  std::vector<float> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = static_cast<float>(i % 7);
  Tensor y = Tensor::from_vector({N}, labels);
  auto params = model->parameters();
  for (auto _ : state) {
    model->zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    NoGradGuard no_grad;
    for (Tensor& p : params) {  // plain SGD, lr 0.01, fused in the backend
      SgdHyper h{0.01f, 0.0f, 0.0f, 0.0f, false, false};
      backend(p.device()).sgd_update(p.data(), p.grad().data(), nullptr, p.numel(), h);
    }
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

// Inference in eval mode, or frozen (Module::freeze_for_inference, as the apps run it: the
// kernels' Winograd transforms kept from call to call), against PyTorch's frozen TorchScript.
void inference(benchmark::State& state, const std::string& name, const ModelConfig& config, bool frozen = false) {
  const int64_t N = state.range(0);
  manual_seed(1);
  auto model = create_model(name, config);
  model->eval();
  if (frozen) model->freeze_for_inference();
  Tensor x = random({N, 1, 48, 48}, 1);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x).data());
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

// MobileNetV2 (torchvision's) on faces resized to 96x96 and 3 channels by its input adapter.
ModelConfig mobilenet_96() {
  ModelConfig c;
  c.input_size = 96;
  return c;
}

void BM_train_step(benchmark::State& state) { train_step(state, "fer_vgg_small", {}); }
BENCHMARK(BM_train_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void BM_inference(benchmark::State& state) { inference(state, "fer_vgg_small", {}); }
BENCHMARK(BM_inference)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
void BM_inference_frozen(benchmark::State& state) { inference(state, "fer_vgg_small", {}, true); }
BENCHMARK(BM_inference_frozen)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_mobilenet_v2_96_train_step(benchmark::State& state) { train_step(state, "mobilenet_v2", mobilenet_96()); }
BENCHMARK(BM_mobilenet_v2_96_train_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void BM_mobilenet_v2_96_inference(benchmark::State& state) { inference(state, "mobilenet_v2", mobilenet_96()); }
BENCHMARK(BM_mobilenet_v2_96_inference)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
void BM_mobilenet_v2_96_inference_frozen(benchmark::State& state) { inference(state, "mobilenet_v2", mobilenet_96(), true); }
BENCHMARK(BM_mobilenet_v2_96_inference_frozen)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
