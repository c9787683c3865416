// CPUID-based detection of the kernel sets, and the one global choice the kernels read.
//
// A feature counts only when both the CPU reports it (CPUID) and the OS saves its registers on a
// context switch (XGETBV reads XCR0: bits 1-2 for SSE/AVX state, 5-7 for the AVX-512 mask and
// upper registers). AMX tile data is a dynamically enabled state: Linux hands it out per process
// on request, arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), and kills a process that uses
// the tiles without asking. The request is made here, once, before amx is reported as supported.
#include "kernels/cpu/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "engine/backend.h"
#include "engine/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fma_peak.h"

namespace fer::cpu {

namespace {

struct Features {
  bool avx2_fma = false, avx512 = false, avx512_bf16 = false, amx_bf16 = false;
};

uint64_t read_xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Linux: ask for permission to use the AMX tile data state (kernel 5.16+). False when refused.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr long kXfeatureXtiledata = 18;     // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  const unsigned max_subleaf = a;
  bool avx512_bf16 = false;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    avx512_bf16 = a & (1u << 5);
  }
  f.avx2_fma = os_avx && avx2 && fma;
  f.avx512 = f.avx2_fma && os_avx512 && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_bf16 = f.avx512 && avx512_bf16;
  f.amx_bf16 = f.avx512_bf16 && os_amx && amx_tile && amx_bf16 && request_amx_permission();
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

Isa initial_isa() {
  const Isa best = best_isa();
  const char* forced = std::getenv("FER_ISA");
  if (!forced || !*forced) return best;
  const auto isa = parse_isa(forced);
  FER_CHECK(isa.has_value(), "FER_ISA=", forced,
            ": unknown kernel set (expected scalar, avx2, avx512, avx512-bf16 or amx)");
  FER_CHECK(isa_supported(*isa), "FER_ISA=", forced, ": this CPU lacks that kernel set (best: ",
            isa_name(best), ")");
  return *isa;
}

Isa& active() {
  static Isa isa = initial_isa();
  return isa;
}

Precision& precision() {
  static Precision p = [] {
    const char* env = std::getenv("FER_PRECISION");
    if (!env || !*env) return Precision::FP32;
    const auto parsed = parse_precision(env);
    FER_CHECK(parsed.has_value(), "FER_PRECISION=", env, ": unknown precision (expected fp32 or bf16)");
    return *parsed;
  }();
  return p;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512-bf16";
    case Isa::Amx: return "amx";
  }
  return "?";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : all_isas())
    if (name == isa_name(isa)) return isa;
  return std::nullopt;
}

std::vector<Isa> all_isas() { return {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}; }

bool isa_supported(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2_fma;
    case Isa::Avx512: return f.avx512;
    case Isa::Avx512Bf16: return f.avx512_bf16;
    case Isa::Amx: return f.amx_bf16;
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : all_isas())
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() { return active(); }

void set_active_isa(Isa isa) {
  FER_CHECK(isa_supported(isa), "kernel set ", isa_name(isa), " is not supported by this CPU (best: ",
            isa_name(best_isa()), ")");
  active() = isa;
}

Isa fp32_isa() {
  const Isa isa = active_isa();
  return isa >= Isa::Avx512 ? Isa::Avx512 : isa;
}

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

std::optional<Precision> parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "bf16") return Precision::BF16;
  return std::nullopt;
}

Precision matmul_precision() { return precision(); }
void set_matmul_precision(Precision p) { precision() = p; }

void round_operands(float* x, int64_t n) {
  if (precision() != Precision::BF16) return;
  for (int64_t i = 0; i < n; ++i) x[i] = round_to_bf16(x[i]);
}

bool bf16_dot_isa() { return active_isa() == Isa::Avx512Bf16 || active_isa() == Isa::Amx; }

std::string cpu_kernels_summary() {
  std::string s = "cpu kernels: ";
  s += isa_name(active_isa());
  if (active_isa() != fp32_isa()) s += std::string(" (") + isa_name(fp32_isa()) + " fp32)";
  s += std::string(", ") + precision_name(matmul_precision()) + " products";
  // Without VDPBF16PS (the CPU lacks it, or FER_ISA chose a lower set) the bf16 products are fp32 instructions on rounded operands: bf16's
  // accuracy at more than fp32's cost. Say so where the choice is made.
  if (matmul_precision() == Precision::BF16 && !bf16_dot_isa())
    s += " (emulated: no AVX512-BF16 in this kernel set, so they run slower than fp32)";
  s += ", " + std::to_string(cpu_threads()) + (cpu_threads() == 1 ? " thread" : " threads");
  return s;
}

std::string unsupported_isas_line() {
  std::string missing;
  for (Isa isa : all_isas())
    if (!isa_supported(isa)) missing += std::string(missing.empty() ? "" : ", ") + isa_name(isa);
  return missing.empty() ? "" : "SKIPPED: kernel sets not on this CPU: " + missing;
}

double fma_peak_run(Isa isa, int64_t iterations) {
  FER_CHECK(isa_supported(isa), "fma_peak_run: this CPU lacks ", isa_name(isa));
  if (isa == Isa::Avx2) return fma_peak_avx2(iterations);
  FER_CHECK(isa >= Isa::Avx512, "fma_peak_run: no FMA loop for ", isa_name(isa));
  return fma_peak_avx512(iterations);
}

// ---- The CPU backend's controls (engine/backend.h) -----------------------------------------

void CpuBackend::set_matmul_precision(const std::string& name) {
  const auto p = parse_precision(name);
  FER_CHECK(p.has_value(), "precision '", name, "': expected fp32 or bf16");
  cpu::set_matmul_precision(*p);
}
std::string CpuBackend::matmul_precision() const { return precision_name(cpu::matmul_precision()); }
std::string CpuBackend::kernels_summary() const { return cpu_kernels_summary(); }

}  // namespace fer::cpu
