// Which vector instructions the CPU kernels use: detected once at run time, forcible for tests.
//
// The engine is compiled for baseline x86-64; each kernel set (GEMM micro-kernels, convolution
// inner loops) lives in its own source file compiled with that set's instructions, and is only
// called after CPUID (and the OS, through XGETBV and for AMX arch_prctl) says the CPU can run it.
// So one binary runs on any x86-64 machine and uses the best unit each one has.
//
//   scalar       plain C++ loops: the reference every other set is tested against
//   avx2         AVX2 + FMA, 8 floats per register
//   avx512       AVX-512 F/BW/VL, 16 floats per register
//   avx512-bf16  avx512 plus VDPBF16PS (bf16 pairs, fp32 accumulation) for --precision bf16
//   amx          avx512-bf16 plus AMX-BF16 tiles (TDPBF16PS) for --precision bf16
//
// The environment variable FER_ISA=<name> picks a lower set than the best one (it is refused,
// with a message, when the CPU lacks it); set_active_isa() does the same from code.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fer::cpu {

enum class Isa { Scalar = 0, Avx2, Avx512, Avx512Bf16, Amx };

const char* isa_name(Isa isa);
std::optional<Isa> parse_isa(std::string_view name);  // the names above
std::vector<Isa> all_isas();                             // Scalar .. Amx, in order

bool isa_supported(Isa isa);          // the CPU and the OS can run it
std::vector<Isa> supported_isas();    // every set this machine runs, Scalar first
Isa best_isa();                       // the highest supported set

Isa active_isa();                     // the set the kernels use now (FER_ISA or the best)
void set_active_isa(Isa isa);         // throws fer::Error when the CPU lacks it

// The set that fp32 kernels use under the active set: avx512-bf16 and amx compute fp32 with
// their avx512 kernels.
Isa fp32_isa();

// The active set has VDPBF16PS (avx512-bf16, amx): bf16 products run natively, not emulated by
// fp32 instructions on rounded operands.
bool bf16_dot_isa();

// The precision of the matrix products (convolutions and dense layers):
//   fp32  float operands, float sums.
//   bf16  every operand rounded to bfloat16 (float's 8 exponent bits, 8 significant bits; round
//         to nearest even), products summed in float: what VDPBF16PS and the AMX tiles compute.
//         Everything else stays fp32: the weights the optimizer keeps, its state, batchnorm,
//         softmax, the loss, checkpoints. (PyTorch's CPU autocast to bfloat16 does the same.)
// On a CPU without bf16 instructions bf16 gives the same numbers at fp32 speed (the operands are
// rounded, then multiplied by the fp32 kernels). FER_PRECISION=bf16 sets it from the environment.
enum class Precision { FP32, BF16 };
const char* precision_name(Precision p);
std::optional<Precision> parse_precision(std::string_view name);  // "fp32" or "bf16"
Precision matmul_precision();
void set_matmul_precision(Precision p);

// Sets the precision for a scope and restores the previous one at its end.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p) : saved_(matmul_precision()) { set_matmul_precision(p); }
  ~PrecisionScope() { set_matmul_precision(saved_); }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision saved_;
};

// x rounded to the nearest bfloat16 (ties to even), kept as a float. NaN stays NaN.
// (Written without a branch, so that loops over arrays of it vectorize.)
inline float round_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  bits = nan ? bits : rounded;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}
// The bfloat16 of x as its 16 bits (the high half of round_to_bf16(x)): what bf16 kernels store.
inline uint16_t to_bf16(float x) {
  const float r = round_to_bf16(x);
  uint32_t bits;
  std::memcpy(&bits, &r, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}
// Rounds x[0..n) in place when the matrix products run in bf16; nothing in fp32.
void round_operands(float* x, int64_t n);

// Of one thing per vector set (a micro-kernel table), the one for the active fp32 set, made at
// its first use by that set's function; null under the scalar set, whose callers take their
// reference paths. Only the active set's function runs: each is compiled for its own
// instructions (simd_<set>.cpp), which the compiler may use even to fill in a table (AVX-512
// stores of a ten-pointer struct: SIGILL on a CPU without it).
template <typename T, T (*Avx2)(), T (*Avx512)()>
const T* for_fp32_isa() {
  switch (fp32_isa()) {
    case Isa::Avx2: {
      static const T table = Avx2();
      return &table;
    }
    case Isa::Avx512: {
      static const T table = Avx512();
      return &table;
    }
    default: return nullptr;
  }
}

// One line for the apps' start-up output, e.g. "cpu kernels: avx512 (fp32), 2 threads".
std::string cpu_kernels_summary();

// The sets this machine lacks, for test output ("SKIPPED: kernel sets not on this CPU: amx").
std::string unsupported_isas_line();

}  // namespace fer::cpu
