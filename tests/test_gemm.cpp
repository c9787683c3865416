// The engine's GEMM (kernels/cpu/gemm.h) on every kernel set this CPU has, against the plain
// reference product: shapes that are not multiples of the micro-tile or cache blocks, all four
// transpose combinations, alpha and beta, leading dimensions wider than the matrix, prepacked
// left operands, and 1 thread against 2. Sets the CPU lacks are named on a SKIPPED line.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/random.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

using namespace fer;
using namespace fer::cpu;

namespace {

struct IsaGuard {
  Isa saved = active_isa();
  int threads = cpu_threads();
  Precision precision = matmul_precision();
  ~IsaGuard() {
    set_active_isa(saved);
    set_cpu_threads(threads);
    set_matmul_precision(precision);
  }
};

std::vector<float> random_vector(size_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = g.uniform(-1.0f, 1.0f);
  return v;
}

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad;  // extra columns in every leading dimension
};

std::string describe(const Problem& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s%s M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%lld", p.ta ? "At" : "A",
                p.tb ? "Bt" : "B", (long long)p.M, (long long)p.N, (long long)p.K, p.alpha, p.beta,
                (long long)p.pad);
  return buf;
}

// Runs one product with the active set (optionally through PackedA) and checks it against the
// reference: |got - ref| <= 1e-5 * sum_k |a_ik b_kj| + 1e-6, the error bound of a float sum.
void check_problem(const Problem& p, bool prepacked) {
  const int64_t lda = (p.ta ? p.M : p.K) + p.pad, ldb = (p.tb ? p.K : p.N) + p.pad, ldc = p.N + p.pad;
  const auto A = random_vector((p.ta ? p.K : p.M) * lda, 1), B = random_vector((p.tb ? p.N : p.K) * ldb, 2);
  const auto C0 = random_vector(p.M * ldc, 3);
  std::vector<float> ref = C0, got = C0;
  if (p.beta == 0.0f)  // beta == 0 must not read C: poison it
    for (float& x : got) x = std::nanf("");
  sgemm_reference(p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta, ref.data(), ldc);
  if (prepacked) {
    PackedA packed(p.ta, p.M, p.K, A.data(), lda);
    sgemm_packed(packed, p.tb, p.N, p.alpha, B.data(), ldb, p.beta, got.data(), ldc);
  } else {
    sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta, got.data(), ldc);
  }
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const float r = ref[i * ldc + j], g = got[i * ldc + j];
      if (j >= p.N) {  // outside C: must be untouched
        if (!(g == C0[i * ldc + j]) && bad++ == 0) first = "wrote outside C at column " + std::to_string(j);
        continue;
      }
      double magnitude = std::abs(p.beta * C0[i * ldc + j]);
      for (int64_t k = 0; k < p.K; ++k)
        magnitude += std::abs(p.alpha * (p.ta ? A[k * lda + i] : A[i * lda + k]) *
                              (p.tb ? B[j * ldb + k] : B[k * ldb + j]));
      if (!(std::abs(g - r) <= 1e-5 * magnitude + 1e-6) && bad++ == 0)
        first = "C(" + std::to_string(i) + "," + std::to_string(j) + "): " + std::to_string(g) +
                " vs reference " + std::to_string(r);
    }
  CHECK_MESSAGE(bad == 0, isa_name(active_isa()), " ", precision_name(matmul_precision()), " ",
                cpu_threads(), " thread(s)",
                prepacked ? " prepacked " : " ", describe(p), ": ", bad, " bad values, first ", first);
}

std::vector<Problem> problems() {
  std::vector<Problem> out;
  // Awkward sizes around the micro-tiles (4x24, 8x48) and cache blocks (KC 256, MC 128, NC 16 panels).
  const int64_t sizes[][3] = {{1, 1, 1},   {1, 7, 3},    {7, 1, 5},    {5, 13, 1},   {8, 48, 16},
                              {9, 49, 17}, {17, 23, 31}, {31, 97, 257}, {130, 50, 300}, {3, 800, 9},
                              {64, 7, 2304}, {129, 770, 260}};
  for (const auto& s : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) out.push_back({ta, tb, s[0], s[1], s[2], 1.0f, 0.0f, 0});
  out.push_back({false, false, 37, 61, 43, 0.5f, 1.0f, 3});
  out.push_back({true, true, 37, 61, 43, -2.0f, 0.25f, 5});
  out.push_back({false, true, 20, 100, 0, 1.0f, 0.5f, 1});  // K == 0: C = beta * C
  return out;
}

}  // namespace

TEST_CASE("gemm: every kernel set, thread count and precision against the reference") {
  IsaGuard guard;
  const std::string skipped = unsupported_isas_line();
  if (!skipped.empty()) std::printf("%s\n", skipped.c_str());
  for (Isa isa : supported_isas()) {
    set_active_isa(isa);
    for (int threads : {1, 2})
    for (Precision precision : {Precision::FP32, Precision::BF16}) {
      set_matmul_precision(precision);
      set_cpu_threads(threads);
      for (const Problem& p : problems()) {
        check_problem(p, false);
        if (!p.ta || p.M < 100) check_problem(p, true);
      }
    }
  }
}

TEST_CASE("gemm: a PackedA is refused under another kernel set") {
  IsaGuard guard;
  const auto sets = supported_isas();
  if (sets.size() < 2) return;
  set_active_isa(sets.back());
  const std::vector<float> A(12, 1.0f), B(12, 1.0f);
  std::vector<float> C(9);
  PackedA packed(false, 3, 4, A.data(), 4);
  set_active_isa(Isa::Scalar);
  CHECK_THROWS_WITH_AS(sgemm_packed(packed, false, 3, 1.0f, B.data(), 3, 0.0f, C.data(), 3),
                       doctest::Contains("packed for another kernel set"), Error);
}

TEST_CASE("bf16 rounding: nearest, ties to even, NaN and infinities kept") {
  auto bits = [](float x) { uint32_t b; std::memcpy(&b, &x, 4); return b; };
  auto from = [](uint32_t b) { float x; std::memcpy(&x, &b, 4); return x; };
  CHECK(round_to_bf16(1.0f) == 1.0f);
  CHECK(bits(round_to_bf16(from(0x3F808000u))) == 0x3F800000u);  // tie, even below: down
  CHECK(bits(round_to_bf16(from(0x3F818000u))) == 0x3F820000u);  // tie, odd below: up
  CHECK(bits(round_to_bf16(from(0x3F808001u))) == 0x3F810000u);  // above the tie: up
  CHECK(round_to_bf16(3.14159265f) == 3.140625f);
  CHECK(std::isinf(round_to_bf16(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(round_to_bf16(std::nanf(""))));
  CHECK(parse_precision("bf16") == Precision::BF16);
  CHECK_FALSE(parse_precision("fp16").has_value());
}

TEST_CASE("isa: names round-trip and the scalar set is always there") {
  for (Isa isa : all_isas()) CHECK(parse_isa(isa_name(isa)) == isa);
  CHECK_FALSE(parse_isa("sse9").has_value());
  CHECK(isa_supported(Isa::Scalar));
  CHECK(supported_isas().front() == Isa::Scalar);
  CHECK(cpu_kernels_summary().find(isa_name(active_isa())) != std::string::npos);
  // bf16 without VDPBF16PS is emulated, and the summary the apps print says so.
  const Precision before = matmul_precision();
  set_matmul_precision(Precision::BF16);
  const bool said = cpu_kernels_summary().find("emulated") != std::string::npos;
  set_matmul_precision(Precision::FP32);
  CHECK(cpu_kernels_summary().find("emulated") == std::string::npos);
  set_matmul_precision(before);
  CHECK(said == (active_isa() != Isa::Avx512Bf16 && active_isa() != Isa::Amx));
}

TEST_CASE("parallel_for_parts: every part of every item exactly once, cut into enough pieces") {
  IsaGuard guard;
  set_cpu_threads(2);
  struct Case {
    int64_t items, extent, pieces, parts;  // parts: what each item must be cut into
  };
  // Enough items: no cut; a few: cut along the extent; never more parts than the extent has.
  for (const Case c : {Case{8, 10, 4, 1}, Case{3, 36, 4, 2}, Case{1, 5, 4, 4}, Case{1, 3, 4, 3},
                       Case{2, 1, 4, 1}, Case{3, 64, 2, 1}, Case{1, 7, 1, 1}}) {
    CAPTURE(c.items);
    CAPTURE(c.extent);
    CAPTURE(c.pieces);
    std::vector<std::atomic<int>> seen(static_cast<size_t>(c.items * c.extent));
    std::vector<std::atomic<int>> calls(static_cast<size_t>(c.items));
    std::atomic<int> out_of_range{0};  // (no assertions on the worker threads: counted, checked after)
    parallel_for_parts(c.items, c.extent, c.pieces, [&](int64_t item, int64_t begin, int64_t end) {
      if (item < 0 || item >= c.items || begin < 0 || begin >= end || end > c.extent) {
        out_of_range++;
        return;
      }
      calls[static_cast<size_t>(item)]++;
      for (int64_t e = begin; e < end; ++e) seen[static_cast<size_t>(item * c.extent + e)]++;
    });
    CHECK(out_of_range.load() == 0);
    for (const auto& s : seen) CHECK(s.load() == 1);
    for (const auto& n : calls) CHECK(n.load() == c.parts);
  }
  parallel_for_parts(0, 5, 4, [&](int64_t, int64_t, int64_t) { FAIL("no items, no calls"); });
}
