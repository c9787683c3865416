// The timing mode of the op registry (tests/support/op_cases.h): every op case, run as the checks
// run it (inputs built, forward, and backward where the case has one), timed on the CPU under the
// active kernel set and thread count. The same list the checks read, so an op is timed by being
// registered, as in ggml's test-backend-ops perf mode.
//
//   build/bench_ops                                 every case
//   FER_ISA=avx2 build/bench_ops --benchmark_filter='conv2d'   one family under another set
#include <benchmark/benchmark.h>

#include "tests/support/op_cases.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const fer::testing::OpCase& c : fer::testing::all_op_cases()) {
    benchmark::RegisterBenchmark(("op/" + c.name).c_str(), [c](benchmark::State& state) {
      for (auto _ : state) benchmark::DoNotOptimize(c.run(fer::Device::CPU));
    })->Unit(benchmark::kMicrosecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
