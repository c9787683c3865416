// Every check that the op-case registry (tests/support/op_cases.h) drives on the CPU, which every
// machine has, so none of them can silently run nothing:
//
//   kernel sets   each case under every instruction set this CPU supports (kernels/cpu/isa.h)
//                 against the scalar reference kernels, on 1 thread so that only the set differs;
//   threads       each case on 2 threads against 1, under the active set;
//   gradients     the finite-difference check (tests/support/gradcheck.h) of every case that has
//                 an op function and no reason to skip it;
//   coverage      every op declared in engine/ops.h is named by a case, every kernel declared in
//                 engine/backend.h is reached by running the cases, and the registry is sound
//                 (unique names, a gradient check or a reason, names that exist).
//
// Kernel sets and thread counts may add in another order, so each comparison uses the case's own
// tolerance (exact only where the kernels are bit-identical by construction). Sets the CPU lacks
// are listed once on a "SKIPPED:" line. The CUDA-against-CPU check of the same cases lives in
// test_cuda_parity.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/isa.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_case_checks.h"
#include "tests/support/op_cases.h"

using namespace fer;
using namespace fer::testing;

namespace {

// ---- Running the CPU kernels under a chosen set and thread count -------------------------------

// One run of a case on the CPU backend with the given kernel set and thread count.
std::optional<Named> run_on_cpu(const OpCase& c, cpu::Isa isa, int threads, const std::string& label) {
  CpuKernelsAs as(isa, threads);
  return try_run(c, Device::CPU, label);
}

std::string threads_label(int n) { return std::to_string(n) + (n == 1 ? " thread" : " threads"); }

// ---- Reading the engine's headers --------------------------------------------------------------

std::string read_source(const std::string& relative_path) {
  const char* root = std::getenv("FER_SOURCE_DIR");
  REQUIRE_MESSAGE((root && *root), "FER_SOURCE_DIR is not set (CTest sets it to the repository root)");
  const std::string path = std::string(root) + "/" + relative_path;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read ", path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The text without // and /* */ comments (the headers hold no string literals that contain them),
// so that commented-out declarations and words in prose are not taken for code.
std::string strip_comments(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "//") == 0) {
      while (i < s.size() && s[i] != '\n') ++i;
      out += '\n';
    } else if (s.compare(i, 2, "/*") == 0) {
      const size_t end = s.find("*/", i + 2);
      i = end == std::string::npos ? s.size() : end + 1;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The ops of engine/ops.h: functions returning a Tensor declared at namespace scope, inline ones
// included ("Tensor add(", "inline Tensor relu("). Brace depth tells namespace scope (depth 1,
// inside `namespace fer {`) from struct members and inline bodies.
std::vector<std::string> declared_ops(const std::string& header) {
  static const std::regex decl(R"(^\s*(?:inline\s+)?Tensor\s+(\w+)\s*\()");
  std::vector<std::string> ops;
  std::istringstream lines(strip_comments(header));
  int depth = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (depth == 1 && std::regex_search(line, m, decl)) ops.push_back(m[1]);
    for (char ch : line) depth += (ch == '{') - (ch == '}');
  }
  return ops;
}

// The kernels of class Backend in engine/backend.h: the name before the "(" of every `virtual`
// member (the destructor aside).
std::vector<std::string> declared_backend_kernels(const std::string& header) {
  const std::string code = strip_comments(header);
  const size_t open = code.find('{', code.find("class Backend "));
  REQUIRE_MESSAGE(open != std::string::npos, "engine/backend.h: class Backend not found");
  size_t close = open;
  for (int depth = 0; close < code.size(); ++close) {
    depth += (code[close] == '{') - (code[close] == '}');
    if (depth == 0) break;
  }
  const std::string body = code.substr(open, close - open);
  std::vector<std::string> kernels;
  static const std::regex member(R"(\bvirtual\s+([^;{(]*?)(~?\w+)\s*\()");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), member); it != std::sregex_iterator(); ++it)
    if ((*it)[2].str()[0] != '~') kernels.push_back((*it)[2]);
  return kernels;
}

// True when `name` appears as a function, class or member name in the text: "name(" or
// "class name" / "struct name".
bool declares(const std::string& code, const std::string& name) {
  const std::regex pattern("(\\b" + name + "\\s*\\()|((class|struct)\\s+" + name + "\\b)");
  return std::regex_search(code, pattern);
}

// ---- A backend that notes which kernels run ----------------------------------------------------

// Forwards every kernel to the CPU backend and notes its name: the ops cannot tell it from the
// CPU backend, and running every case through it shows which kernels the registry reaches.
// engine/backend.h's only seam for putting a backend between the ops and the kernels is
// register_backend(Device::CUDA, ...), so the coverage test registers it under the CUDA device
// name for its duration (CPU memory behind "cuda" tensors; no op looks at the pointer's device)
// and puts the previous CUDA backend, if any, back afterwards.
class RecordingBackend final : public Backend {
 public:
  mutable std::set<std::string> called;

  Device device() const override {
    note("device");
    return Device::CUDA;
  }
  void* allocate(size_t bytes) override { return note("allocate").allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { note("deallocate").deallocate(p, bytes); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    note("copy_from_host").copy_from_host(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    note("copy_to_host").copy_to_host(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override { note("copy").copy(dst, src, bytes); }
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols, bool accumulate) override {
    note("copy_2d").copy_2d(src, src_stride, dst, dst_stride, rows, cols, accumulate);
  }
  void synchronize() override { note("synchronize").synchronize(); }

  void fill(float* y, int64_t n, float value) override { note("fill").fill(y, n, value); }
  void add(const float* a, const float* b, float* y, int64_t n) override { note("add").add(a, b, y, n); }
  void mul(const float* a, const float* b, float* y, int64_t n) override { note("mul").mul(a, b, y, n); }
  void axpby(float alpha, const float* x, float beta, float* y, int64_t n) override {
    note("axpby").axpby(alpha, x, beta, y, n);
  }
  void scale(const float* x, float alpha, float* y, int64_t n) override { note("scale").scale(x, alpha, y, n); }
  double sum(const float* x, int64_t n) override { return note("sum").sum(x, n); }
  double sum_squares(const float* x, int64_t n) override { return note("sum_squares").sum_squares(x, n); }

  void activation_forward(Activation act, float alpha, const float* x, float* y, int64_t n) override {
    note("activation_forward").activation_forward(act, alpha, x, y, n);
  }
  void activation_backward(Activation act, float alpha, const float* x, const float* y,
                           const float* dy, float* dx, int64_t n) override {
    note("activation_backward").activation_backward(act, alpha, x, y, dy, dx, n);
  }

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
            const float* B, float beta, float* C) override {
    note("gemm").gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
  }
  void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) override {
    note("add_row_bias").add_row_bias(y, bias, rows, cols);
  }
  void sum_rows(const float* dy, float* dbias, int64_t rows, int64_t cols, bool accumulate) override {
    note("sum_rows").sum_rows(dy, dbias, rows, cols, accumulate);
  }

  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                      float* y, PackedWeights* packed, BnActivation act) override {
    note("conv2d_forward").conv2d_forward(g, x, w, bias, y, packed, act);
  }
  void conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) override {
    note("conv2d_backward_input").conv2d_backward_input(g, dy, w, dx);
  }
  void conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                              float* dbias) override {
    note("conv2d_backward_weight").conv2d_backward_weight(g, dy, x, dw, dbias);
  }

  void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax) override {
    note("max_pool2d_forward").max_pool2d_forward(g, x, y, argmax);
  }
  void max_pool2d_backward(const Pool2dGeometry& g, const float* dy, const int32_t* argmax,
                           float* dx) override {
    note("max_pool2d_backward").max_pool2d_backward(g, dy, argmax, dx);
  }
  void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override {
    note("avg_pool2d_forward").avg_pool2d_forward(g, x, y);
  }
  void avg_pool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override {
    note("avg_pool2d_backward").avg_pool2d_backward(g, dy, dx);
  }

  void batchnorm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, float* y, float* save_mean, float* save_invstd,
                               BnActivation act) override {
    note("batchnorm_forward_train")
        .batchnorm_forward_train(N, C, HW, x, gamma, beta, eps, momentum, running_mean, running_var,
                                 y, save_mean, save_invstd, act);
  }
  void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, const float* running_mean,
                              const float* running_var, float eps, float* y, BnActivation act) override {
    note("batchnorm_forward_eval")
        .batchnorm_forward_eval(N, C, HW, x, gamma, beta, running_mean, running_var, eps, y, act);
  }
  void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy,
                          const float* gamma, const float* beta, const float* save_mean,
                          const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                          BnActivation act) override {
    note("batchnorm_backward")
        .batchnorm_backward(N, C, HW, x, dy, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta,
                            act);
  }
  void batchnorm_backward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* dx, float* dgamma,
                               float* dbeta, BnActivation act) override {
    note("batchnorm_backward_eval")
        .batchnorm_backward_eval(N, C, HW, x, dy, gamma, beta, running_mean, running_var, eps, dx,
                                 dgamma, dbeta, act);
  }

  void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, bool log) override {
    note("softmax_forward").softmax_forward(x, y, rows, cols, log);
  }
  void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols,
                        bool log) override {
    note("softmax_backward").softmax_backward(y, dy, dx, rows, cols, log);
  }
  float nll_loss_forward(const float* logp, const float* target, const float* weight, int64_t rows,
                         int64_t cols, float smoothing) override {
    return note("nll_loss_forward").nll_loss_forward(logp, target, weight, rows, cols, smoothing);
  }
  void nll_loss_backward(const float* target, const float* weight, int64_t rows, int64_t cols,
                         float smoothing, float grad_scale, float* dlogp) override {
    note("nll_loss_backward").nll_loss_backward(target, weight, rows, cols, smoothing, grad_scale, dlogp);
  }

  void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) override {
    note("dropout_mask").dropout_mask(mask, n, p, seed, offset);
  }

  void resize_bilinear_forward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               const float* x, float* y) override {
    note("resize_bilinear_forward").resize_bilinear_forward(NC, H, W, OH, OW, x, y);
  }
  void resize_bilinear_backward(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                const float* dy, float* dx) override {
    note("resize_bilinear_backward").resize_bilinear_backward(NC, H, W, OH, OW, dy, dx);
  }
  void pad2d_forward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom, int64_t left,
                     int64_t right, const float* x, float* y) override {
    note("pad2d_forward").pad2d_forward(NC, H, W, top, bottom, left, right, x, y);
  }
  void pad2d_backward(int64_t NC, int64_t H, int64_t W, int64_t top, int64_t bottom, int64_t left,
                      int64_t right, const float* dy, float* dx) override {
    note("pad2d_backward").pad2d_backward(NC, H, W, top, bottom, left, right, dy, dx);
  }

  void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n,
                  const SgdHyper& h) override {
    note("sgd_update").sgd_update(param, grad, momentum_buf, n, h);
  }
  void adam_update(float* param, const float* grad, float* m, float* v, int64_t n,
                   const AdamHyper& h) override {
    note("adam_update").adam_update(param, grad, m, v, n, h);
  }

  void set_allow_tf32(bool allow) override { note("set_allow_tf32").set_allow_tf32(allow); }
  bool allow_tf32() const override { return note("allow_tf32").allow_tf32(); }
  std::string memory_summary() const override { return note("memory_summary").memory_summary(); }
  void set_matmul_precision(const std::string& name) override {
    note("set_matmul_precision").set_matmul_precision(name);
  }
  std::string matmul_precision() const override { return note("matmul_precision").matmul_precision(); }
  std::string kernels_summary() const override { return note("kernels_summary").kernels_summary(); }
  std::unique_ptr<DeviceGraph> capture(const std::function<void()>& body, int pool) override {
    return note("capture").capture(body, pool);
  }

 private:
  Backend& note(const char* kernel) const {
    called.insert(kernel);
    return backend(Device::CPU);
  }
};

// Registers a backend under the CUDA device name for a scope, then puts back the one before
// (none, on a machine without a GPU).
class RegisteredAsCuda {
 public:
  explicit RegisteredAsCuda(Backend& b) : previous_(cuda_available() ? &backend(Device::CUDA) : nullptr) {
    register_backend(Device::CUDA, &b);
  }
  ~RegisteredAsCuda() { register_backend(Device::CUDA, previous_); }
  RegisteredAsCuda(const RegisteredAsCuda&) = delete;
  RegisteredAsCuda& operator=(const RegisteredAsCuda&) = delete;

 private:
  Backend* previous_;
};

// Kernels of engine/backend.h that running the op cases need not reach, and why. Anything else
// the cases never call fails the coverage test: a kernel no case reaches is a kernel no check
// compares across sets, threads or devices.
const std::map<std::string, std::string> kKernelsWithoutCases = {
    {"device", "which device a backend is: no math"},
    {"synchronize", "waits for the device: no math (the CPU's is empty)"},
    {"set_allow_tf32", "a CUDA control: test_cuda_parity.cpp runs the matmul-like cases under TF32"},
    {"allow_tf32", "a CUDA control: test_cuda_parity.cpp runs the matmul-like cases under TF32"},
    {"memory_summary", "a report on the CUDA caching allocator: no math"},
    {"set_matmul_precision", "a control: the bf16 test runs every case in bf16 through kernels/cpu/isa.h"},
    {"matmul_precision", "a control: the bf16 test runs every case in bf16 through kernels/cpu/isa.h"},
    {"kernels_summary", "a line of text for the apps: no math"},
    {"capture", "CUDA graphs: test_cuda_parity.cpp replays a recorded training step against eager"},
};

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

// ---- Kernel sets and threads -------------------------------------------------------------------

TEST_CASE("CPU kernel sets: every op case under each supported set matches the scalar reference") {
  if (const std::string line = cpu::unsupported_isas_line(); !line.empty()) std::printf("%s\n", line.c_str());
  std::vector<cpu::Isa> sets;  // the vector sets, lowest first
  std::vector<std::string> set_names;
  for (cpu::Isa isa : cpu::supported_isas())
    if (isa != cpu::Isa::Scalar) sets.push_back(isa), set_names.push_back(cpu::isa_name(isa));
  if (sets.empty()) {
    std::printf("SKIPPED: this CPU runs only the scalar kernels: nothing to compare them with\n");
    return;
  }
  const std::vector<OpCase> cases = all_op_cases();
  for (const OpCase& c : cases) {
    const std::optional<Named> ref = run_on_cpu(c, cpu::Isa::Scalar, 1, "scalar");
    if (!ref) continue;
    for (cpu::Isa isa : sets) {
      const std::optional<Named> got = run_on_cpu(c, isa, 1, cpu::isa_name(isa));
      if (got) check_results(c.name, *ref, *got, c.tol, "scalar", cpu::isa_name(isa));
    }
  }
  MESSAGE(cases.size(), " cases x ", sets.size(), " kernel sets (", joined(set_names),
          ") against scalar; 1 thread");
}

// The cases named for the Winograd path (op_cases.cpp) must reach it under every vector set,
// forward and input gradient, or the check above would compare the direct convolution twice.
// (The weight gradient takes it where input channels fill whole micro-kernel rows and output
// channels whole panels but for an eighth under avx512 (three of these cases), half under avx2
// (most of them).)
TEST_CASE("CPU kernel sets: the Winograd op cases run the Winograd convolution") {
  int cases = 0;
  std::map<std::string, int> weight_cases;  // per kernel set
  for (const OpCase& c : all_op_cases()) {
    if (c.name.find("Winograd") == std::string::npos) continue;
    ++cases;
    for (cpu::Isa isa : cpu::supported_isas()) {
      if (isa == cpu::Isa::Scalar) continue;
      const int64_t before = cpu::conv2d_winograd_calls(), weight_before = cpu::conv2d_winograd_weight_calls();
      const int64_t few_before = cpu::conv2d_winograd_few_tiles_calls();
      const int64_t packed_before = cpu::conv2d_winograd_packed_calls();
      REQUIRE(run_on_cpu(c, isa, 1, cpu::isa_name(isa)));
      INFO(c.name << " under " << std::string(cpu::isa_name(isa)));
      // Forward and input gradient, or (packed) the forward twice on the kept transforms.
      const bool packed = c.name.find("conv2d packed") == 0;
      CHECK(cpu::conv2d_winograd_calls() - before >= 2);
      CHECK(cpu::conv2d_winograd_packed_calls() - packed_before == (packed ? 2 : 0));
      // The few-tiles cases run transposed both ways; the others never.
      const bool few = c.name.find("few tiles") != std::string::npos;
      CHECK(cpu::conv2d_winograd_few_tiles_calls() - few_before == (few ? 2 : 0));
      if (cpu::conv2d_winograd_weight_calls() > weight_before) ++weight_cases[cpu::isa_name(isa)];
    }
  }
  CHECK(cases >= 10);
  for (cpu::Isa isa : cpu::supported_isas()) {
    if (isa == cpu::Isa::Scalar) continue;
    INFO(cpu::isa_name(isa));
    CHECK(weight_cases[cpu::isa_name(isa)] >= 3);
  }
}

// A frozen model's convolutions carry their folded batchnorm as the bias and the ReLU/ReLU6 after
// it, applied by every forward path in its output stores (kernels/cpu/conv2d_output.h): under
// each kernel set, in fp32 and bf16 products, the fused output must equal the same convolution
// with the activation as an op of its own, bit for bit (the same sums, the same additions).
// Inputs wide enough for outputs past 0 and 6 in every case; one image and several (the paths
// split the work differently), and the Winograd counters show the two Winograd paths ran.
TEST_CASE("fused activation: every convolution path's output stores equal the activation after it") {
  const cpu::PrecisionScope restore(cpu::matmul_precision());
  struct Fused {
    const char* path;
    Shape x, w;
    Conv2dOptions o;
  };
  const Conv2dOptions pad1 = conv_opts(1, 1, 1, 1), valid = conv_opts(1, 1, 0, 0);
  const std::vector<Fused> cases = {
      {"Winograd F(4x4), tiles untransposed", {16, 64, 13, 11}, {72, 64, 3, 3}, pad1},
      {"Winograd few tiles, transposed (one face's 12x12)", {1, 64, 12, 12}, {70, 64, 3, 3}, pad1},
      {"Winograd F(2x2) few tiles (one face's 6x6)", {1, 64, 6, 6}, {64, 64, 3, 3}, pad1},
      {"direct 3x3, whole images per thread", {3, 20, 9, 11}, {36, 20, 3, 3}, pad1},
      {"direct 3x3, one image over the threads", {1, 20, 9, 11}, {70, 20, 3, 3}, pad1},
      {"direct 1x1 in place (MobileNet's pointwise)", {2, 16, 6, 8}, {24, 16, 1, 1}, valid},
      {"depthwise 3x3 stride 1", {2, 8, 10, 9}, {8, 1, 3, 3}, conv_opts(1, 1, 1, 1, 1, 8)},
      {"depthwise 3x3 stride 2", {2, 8, 11, 9}, {8, 1, 3, 3}, conv_opts(2, 2, 1, 1, 1, 8)},
      {"GEMM, 3x3 stride 2", {2, 12, 11, 9}, {10, 12, 3, 3}, conv_opts(2, 2, 1, 1)},
      {"GEMM, grouped 1x1", {2, 12, 7, 5}, {9, 4, 1, 1}, conv_opts(1, 1, 0, 0, 1, 3)},
  };
  const NoGradGuard no_grad;
  int compared = 0;
  for (cpu::Precision precision : {cpu::Precision::FP32, cpu::Precision::BF16})
    for (cpu::Isa isa : cpu::supported_isas())
      for (const Fused& f : cases)
        for (BnActivation act : {BnActivation::ReLU, BnActivation::ReLU6}) {
          cpu::set_matmul_precision(precision);
          CpuKernelsAs as(isa, 2);
          const Tensor x = make_input({f.x, -3, 3, false}, 7, Device::CPU);
          const Tensor w = make_input({f.w, -1, 1, false}, 8, Device::CPU);
          const Tensor b = make_input({{f.w[0]}, -4, 4, false}, 9, Device::CPU);
          const int64_t winograd_before = cpu::conv2d_winograd_calls();
          Conv2dOptions fused = f.o;
          fused.activation = act;
          const std::vector<float> got = conv2d(x, w, b, fused).to_vector();
          const std::vector<float> want = activation(conv2d(x, w, b, f.o), separate_activation(act)).to_vector();
          const std::string label = std::string(f.path) + ", " + cpu::isa_name(isa) +
                                    (precision == cpu::Precision::BF16 ? " bf16" : " fp32") +
                                    (act == BnActivation::ReLU ? ", relu" : ", relu6");
          INFO(label);
          REQUIRE(got.size() == want.size());
          const auto [lowest, highest] = std::minmax_element(want.begin(), want.end());
          CHECK(*lowest == 0.0f);  // some outputs clamped at 0 ...
          if (act == BnActivation::ReLU6) CHECK(*highest == 6.0f);  // ... and at 6
          size_t differ = 0;
          for (size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
          CHECK(differ == 0);
          const bool winograd = std::string(f.path).find("Winograd") == 0;
          if (winograd && isa != cpu::Isa::Scalar && precision == cpu::Precision::FP32)
            CHECK(cpu::conv2d_winograd_calls() - winograd_before == 2);
          ++compared;
        }
  MESSAGE(compared, " fused convolutions against the activation applied after them");
}

// bf16 products (kernels/cpu/isa.h): every set rounds the same operands, so it must agree with
// the scalar reference in bf16 as closely as in fp32 (only the order of the float sums differs).
// Against fp32, the matrix-product cases may differ by bf16's rounding: each operand carries a
// relative error up to 2^-9, a product up to 2^-8, so a sum of products differs by up to about
// 2^-8 of the sum of the terms' magnitudes; 2% of the largest output covers that for these sizes.
// Every other op does not multiply matrices and must be unchanged.
TEST_CASE("bf16 products: every kernel set against the scalar reference, and against fp32") {
  const cpu::PrecisionScope restore(cpu::matmul_precision());
  constexpr Tolerance kBf16VsFp32{1e-4, 2e-2, 2e-2};
  const std::vector<OpCase> cases = all_op_cases();
  int compared = 0;
  for (const OpCase& c : cases) {
    if (c.whole_network) {
      std::printf("SKIPPED '%s' in bf16: a whole network (see OpCase::whole_network)\n", c.name.c_str());
      continue;
    }
    cpu::set_matmul_precision(cpu::Precision::BF16);
    const std::optional<Named> ref = run_on_cpu(c, cpu::Isa::Scalar, 1, "scalar bf16");
    if (!ref) continue;
    for (cpu::Isa isa : cpu::supported_isas()) {
      if (isa == cpu::Isa::Scalar) continue;
      const std::string label = std::string(cpu::isa_name(isa)) + " bf16";
      const std::optional<Named> got = run_on_cpu(c, isa, 1, label);
      if (got) check_results(c.name, *ref, *got, c.tol, "scalar bf16", label);
    }
    cpu::set_matmul_precision(cpu::Precision::FP32);
    const std::optional<Named> fp32 = run_on_cpu(c, cpu::Isa::Scalar, 1, "scalar fp32");
    if (fp32) check_results(c.name, *fp32, *ref, c.matmul_like ? kBf16VsFp32 : c.tol, "fp32", "bf16");
    ++compared;
  }
  MESSAGE(compared, " cases in bf16: every vector set against scalar bf16, bf16 against fp32");
}

TEST_CASE("CPU threads: every op case on 2 threads matches 1 thread") {
  const cpu::Isa isa = cpu::active_isa();
  const std::vector<OpCase> cases = all_op_cases();
  for (const OpCase& c : cases) {
    const std::optional<Named> ref = run_on_cpu(c, isa, 1, threads_label(1));
    const std::optional<Named> got = run_on_cpu(c, isa, 2, threads_label(2));
    if (ref && got) check_results(c.name, *ref, *got, c.tol, threads_label(1), threads_label(2));
  }
  MESSAGE(cases.size(), " cases, 2 threads against 1, kernel set ", std::string(cpu::isa_name(isa)));
}

// ---- Gradients ---------------------------------------------------------------------------------

TEST_CASE("gradients: every op case with an op function against finite differences") {
  int checked = 0;
  for (const OpCase& c : all_op_cases()) {
    if (!c.no_gradcheck.empty()) {
      std::printf("SKIPPED gradient check of '%s': %s\n", c.name.c_str(), c.no_gradcheck.c_str());
      continue;
    }
    REQUIRE_MESSAGE(c.fn, c.name, ": no op function and no reason to skip the gradient check");
    gradcheck(c.name, c.fn, make_inputs(c.inputs, Device::CPU, c.first_seed));
    ++checked;
  }
  MESSAGE(checked, " op cases checked against finite differences");
}

// ---- Coverage and soundness of the registry ------------------------------------------------------

TEST_CASE("coverage: every op of engine/ops.h has a case") {
  const std::vector<std::string> ops = declared_ops(read_source("engine/ops.h"));
  // A parser that finds nothing would make this test pass vacuously.
  REQUIRE_MESSAGE(ops.size() >= 20, "engine/ops.h: found only ", ops.size(), " ops (", joined(ops),
                  "): has the declaration style changed?");
  std::set<std::string> named;
  for (const OpCase& c : all_op_cases()) named.insert(c.ops.begin(), c.ops.end());
  std::vector<std::string> missing;
  for (const std::string& op : ops)
    if (!named.count(op)) missing.push_back(op);
  CHECK_MESSAGE(missing.empty(), "ops of engine/ops.h that no case in tests/support/op_cases.cpp names: ",
                joined(missing));
  MESSAGE(ops.size(), " ops declared in engine/ops.h, ", ops.size() - missing.size(), " named by a case");
}

TEST_CASE("coverage: running the op cases reaches every kernel of engine/backend.h") {
  const std::vector<std::string> kernels = declared_backend_kernels(read_source("engine/backend.h"));
  REQUIRE_MESSAGE(kernels.size() >= 30, "engine/backend.h: found only ", kernels.size(),
                  " kernels (", joined(kernels), "): has the declaration style changed?");
  for (const auto& [name, why] : kKernelsWithoutCases) {
    INFO(why);
    CHECK_MESSAGE(std::find(kernels.begin(), kernels.end(), name) != kernels.end(),
                  "kKernelsWithoutCases names '", name, "', which engine/backend.h no longer declares");
  }

  RecordingBackend recorder;
  {
    // Every tensor made through the recorder dies inside this loop, before the previous CUDA
    // backend comes back (Storage frees its memory through backend(device)).
    RegisteredAsCuda registered(recorder);
    for (const OpCase& c : all_op_cases()) try_run(c, Device::CUDA, "the recording backend");
  }

  std::vector<std::string> unreached;
  for (const std::string& k : kernels)
    if (!recorder.called.count(k) && !kKernelsWithoutCases.count(k)) unreached.push_back(k);
  CHECK_MESSAGE(unreached.empty(), "kernels of engine/backend.h that no op case reaches: ",
                joined(unreached), " (add a case to tests/support/op_cases.cpp, or a kernel_case)");
  MESSAGE(kernels.size(), " kernels declared in engine/backend.h; the cases reach ", recorder.called.size());
}

TEST_CASE("the registry: unique names, declared ops, a gradient check or a reason for none") {
  const std::string ops_h = strip_comments(read_source("engine/ops.h"));
  const std::string optim_h = strip_comments(read_source("engine/optim.h"));
  const std::string tensor_h = strip_comments(read_source("engine/tensor.h"));
  const std::vector<std::string> kernels = declared_backend_kernels(read_source("engine/backend.h"));
  std::set<std::string> names;
  for (const OpCase& c : all_op_cases()) {
    INFO(c.name);
    CHECK_MESSAGE(names.insert(c.name).second, "two cases are named '", c.name, "'");
    CHECK_MESSAGE(c.run, c.name, ": no run function");
    CHECK_MESSAGE(!c.ops.empty(), c.name, ": names no op");
    CHECK_MESSAGE((c.fn || !c.no_gradcheck.empty()), c.name,
                  ": needs an op function for the gradient check, or without_gradcheck(\"why\")");
    // Each name must exist where its form says, so a typo cannot pass for coverage.
    for (const std::string& op : c.ops) {
      if (op.rfind("Backend::", 0) == 0) {
        const std::string k = op.substr(9);
        CHECK_MESSAGE(std::find(kernels.begin(), kernels.end(), k) != kernels.end(), c.name,
                      ": names ", op, ", which engine/backend.h does not declare");
      } else if (op.rfind("Tensor::", 0) == 0) {
        CHECK_MESSAGE(declares(tensor_h, op.substr(8)), c.name, ": names ", op,
                      ", which engine/tensor.h does not declare");
      } else {
        CHECK_MESSAGE((declares(ops_h, op) || declares(optim_h, op)), c.name, ": names ", op,
                      ", which neither engine/ops.h nor engine/optim.h declares");
      }
    }
  }
}
