// The registry of op cases: one list that every numerical check of the engine reads, in the manner
// of ggml's test-backend-ops.
//
// An OpCase is a function that, given a device, builds its inputs from fixed seeds (drawn on the
// host, then copied to the device), runs one op (or a few, or a whole training step) there, and
// returns named tensors: the outputs, the gradients of the inputs, updated parameters or buffers.
// Running the same case twice under different conditions and comparing the named tensors element
// by element is a check; the registry does not know which checks exist. Today they are:
//
//   tests/test_op_cases.cpp    every CPU kernel set against the scalar reference set (1 thread);
//                              2 threads against 1; the finite-difference
//                              gradient check of every case that has an `fn`; a coverage test
//                              that fails when an op of engine/ops.h or a kernel of
//                              engine/backend.h has no case.
//   tests/test_cuda_parity.cpp the CUDA backend against the CPU (where a GPU exists), and the
//                              matmul-like cases again under TF32.
//   bench/bench_ops.cpp        the timing mode: every case timed under the active set.
//
// Adding an op: append a case to all_op_cases() in op_cases.cpp, usually one op_case(...) line
// with the op's name in `ops`, its input shapes and the call. It then gets every check above;
// when finite differences cannot check it (kinks, ties, a shape too large to perturb element by
// element), say why with without_gradcheck("..."). This file and op_cases.cpp use no test
// framework, so the timing mode links them without one (CMake's fer_op_cases).
//
// Comparison: |got - ref| <= atol + scaled_atol * max|ref| + rtol * |ref|, per element.
// Default tolerance: atol 1e-6, scaled_atol 1e-5, rtol 1e-4 (float32 kernels that add in another
// order, exp/log from another math library); convolutions and GEMMs scaled_atol 3e-5. Exact (0)
// for the cases whose kernels are bit-identical by construction: one rounding per element
// (add, mul, scale, the piecewise-linear activations), gathers and copies (pooling in the CPU's
// window order, padding, concat, views), dropout masks (one counter-based generator everywhere).
// Looser for whole networks (errors compound over 8 conv layers: scaled_atol 1e-4, rtol 1e-3).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/tensor.h"
#include "kernels/cpu/isa.h"

namespace fer::testing {

// ---- Tolerances --------------------------------------------------------------------------------

struct Tolerance {
  double atol = 1e-6, scaled_atol = 1e-5, rtol = 1e-4;
};
constexpr Tolerance kExact{0.0, 0.0, 0.0};
constexpr Tolerance kMatmul{1e-6, 3e-5, 1e-4};  // cuDNN's Winograd/FFT algorithms round differently
constexpr Tolerance kNetwork{1e-6, 1e-4, 1e-3};
constexpr Tolerance kOptimizer{1e-6, 1e-6, 1e-5};

// ---- The CPU kernels' instruction set and thread count, for a scope ----------------------------

// Puts the CPU kernels on one instruction set (kernels/cpu/isa.h) and thread count for a scope and
// restores the previous ones when it ends, also when a check inside throws, so that nothing is
// left on the scalar kernels or one thread for the code after it.
class CpuKernelsAs {
 public:
  CpuKernelsAs(cpu::Isa isa, int threads);
  ~CpuKernelsAs();
  CpuKernelsAs(const CpuKernelsAs&) = delete;
  CpuKernelsAs& operator=(const CpuKernelsAs&) = delete;

 private:
  cpu::Isa saved_isa_;
  int saved_threads_;
};

// ---- A case ------------------------------------------------------------------------------------

using Named = std::vector<std::pair<std::string, Tensor>>;
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// An input of an op case: uniform in [lo, hi) from its own seed, or class ids in [0, classes).
struct Input {
  Shape shape;
  float lo = -1.0f, hi = 1.0f;
  bool grad = true;
  int64_t classes = 0;
};

Tensor make_input(const Input& in, uint64_t seed, Device dev);
// Input k from seed first_seed + k: the same values on every device and in every mode.
std::vector<Tensor> make_inputs(const std::vector<Input>& inputs, Device dev, uint64_t first_seed = 100);

struct OpCase {
  std::string name;               // unique; every failure message starts with it
  // What the case exercises, by name: ops of engine/ops.h ("conv2d"), optimizers and functions
  // of engine/optim.h ("AdamW", "clip_grad_norm"), Tensor methods ("Tensor::reshape") and
  // backend kernels called directly ("Backend::fill"). The coverage test checks that every op
  // of engine/ops.h is named by some case, and that every name here is declared where it says.
  std::vector<std::string> ops;
  std::function<Named(Device)> run;
  Tolerance tol{};
  bool matmul_like = false;       // convolutions and GEMMs: also compared under CUDA's TF32

  // Gradient mode: the op as a function of its inputs (made by make_inputs on the CPU, first_seed
  // 100 unless the case says otherwise), for tests/support/gradcheck.h. Empty for cases that are
  // not one differentiable function (kernels called directly, optimizer steps).
  std::vector<Input> inputs;
  OpFn fn;
  uint64_t first_seed = 100;
  std::string no_gradcheck;       // why the gradient check does not apply; empty when it does
  // A whole network (forward, backward, update): in bf16 precision one ulp of rounding that goes
  // the other way in one layer is amplified by the next ones, so no element-wise comparison of
  // two bf16 runs holds; the bf16 training test (test_train.cpp) checks networks instead.
  bool whole_network = false;

  OpCase without_gradcheck(std::string why) const {
    OpCase c = *this;
    c.no_gradcheck = std::move(why);
    return c;
  }
};

// The output of fn and the gradient of sum(output * probe), probe a fixed random tensor, w.r.t.
// every input that requires grad: forward and backward of the op in one case.
OpCase op_case(const std::string& name, std::vector<std::string> ops, std::vector<Input> inputs,
               OpFn fn, Tolerance tol = {}, bool matmul_like = false);

// Backend kernels called directly, with arguments no op passes (accumulate flags, strides).
OpCase kernel_case(const std::string& name, std::vector<std::string> ops,
                   std::function<Named(Device, Backend&)> fn, Tolerance tol = {});

// Three steps of an optimizer on fixed parameters and gradients (momentum buffers and bias
// corrections move), everything drawn on the host so every run starts identical; with clip > 0,
// clip_grad_norm before each step.
OpCase optimizer_case(const std::string& name, std::vector<std::string> ops,
                      std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make,
                      float clip = 0.0f);

Conv2dOptions conv_opts(int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                        int64_t dil = 1, int64_t groups = 1);
Pool2dOptions pool_opts(int64_t k, int64_t s, int64_t p, bool ceil_mode = false);

// ---- The registry ------------------------------------------------------------------------------

// Every case, in a fixed order. Built fresh on each call (cases hold no state between runs).
std::vector<OpCase> all_op_cases();

// ---- Comparison (no test framework: callers turn it into their own checks) ----------------------

struct Mismatch {
  int64_t count = 0;         // elements beyond the tolerance
  int64_t size = 0;          // elements compared
  int64_t worst_index = -1;  // where |got - ref| is largest among them
  float ref = 0.0f, got = 0.0f;
};
// Element by element, with the tolerance above; NaN matches NaN. Shapes must already agree.
Mismatch compare_values(const Tensor& ref, const Tensor& got, const Tolerance& tol);

}  // namespace fer::testing
