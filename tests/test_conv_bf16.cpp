// The bf16 direct convolution (kernels/cpu/conv2d_bf16_microkernel.h): the forward with channel
// pairs interleaved and weights packed as pairs, the weight gradient with pixel pairs of a plain
// bf16 image against dy packed as pairs; VDPBF16PS sums. Each is checked against a plain loop on
// the bf16-rounded operands with double sums, for the emulated kernels on every AVX-512 CPU and
// for the native ones where the CPU has AVX512-BF16 (skipped visibly elsewhere), over geometries
// with odd channel counts, output channels that do not fill a tile, padding, non-square kernels
// and pixel counts that do not fill a tile or make an odd number of grid cells.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "engine/random.h"
#include "kernels/cpu/conv2d_bf16_microkernel.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/isa.h"
#include "tests/support/conv_reference.h"

using namespace fer;
using namespace fer::cpu;

namespace {
struct Case {
  int64_t N, C, H, W, K, KH, KW, pad_h, pad_w;
};

// y = conv(x, w) + bias on bf16-rounded x and w, double sums; also the sum of |products| per
// output (the scale of its rounding error).
void reference(const Conv2dGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& bias, std::vector<double>& y, std::vector<double>& scale) {
  y.assign(static_cast<size_t>(g.N * g.K * g.OH * g.OW), 0.0);
  scale = y;
  for (size_t i = 0; i < y.size(); ++i) {
    const float b = bias[i / static_cast<size_t>(g.OH * g.OW) % static_cast<size_t>(g.K)];
    y[i] = b;
    scale[i] = std::fabs(b);
  }
  testing::for_each_conv_product(g, [&](int64_t n, int64_t k, int64_t c, int64_t kh, int64_t kw, int64_t oh,
                                        int64_t ow, int64_t h, int64_t ww) {
    const double p = static_cast<double>(round_to_bf16(x[((n * g.C + c) * g.H + h) * g.W + ww])) *
                     round_to_bf16(w[((k * g.C + c) * g.KH + kh) * g.KW + kw]);
    const size_t i = static_cast<size_t>(((n * g.K + k) * g.OH + oh) * g.OW + ow);
    y[i] += p;
    scale[i] += std::fabs(p);
  });
}

// Grid cells (OH * padded width) odd in the first, fifth and last; the weight gradient's tile of
// 12 taps x 32 channels left partly empty by R and K in most; the last spans two image groups.
const std::vector<Case> kCases{{2, 5, 7, 9, 4, 3, 3, 1, 1},    {3, 6, 6, 6, 11, 3, 3, 1, 1},
                               {1, 1, 48, 48, 32, 3, 3, 1, 1},  {2, 33, 12, 12, 20, 3, 3, 1, 1},
                               {2, 7, 9, 5, 3, 5, 3, 2, 0},     {1, 16, 10, 10, 9, 1, 1, 0, 0},
                               {3, 3, 20, 19, 40, 2, 3, 0, 1}};

Conv2dGeometry geometry(const Case& t) {
  return {t.N, t.C, t.H, t.W, t.K, t.KH, t.KW, 1, 1, t.pad_h, t.pad_w, 1, 1, 1,
          t.H + 2 * t.pad_h - t.KH + 1, t.W + 2 * t.pad_w - t.KW + 1};
}

// Counts the values off their reference by more than 1e-5 of the sum of |terms|, naming the first.
int count_off(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref,
              const std::vector<double>& scale) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - ref[i]) <= 1e-5 * scale[i] + 1e-6)) {
      if (bad++ < 3) MESSAGE(what << " " << i << ": " << got[i] << " against " << ref[i]);
    }
  return bad;
}

void check_kernel(const Bf16ConvKernel& kernel) {
  for (const Case& t : kCases) {
    const Conv2dGeometry g = geometry(t);
    INFO(std::string(kernel.isa) << ": N " << t.N << " C " << t.C << " " << t.H << "x" << t.W << " K " << t.K << " "
                    << t.KH << "x" << t.KW << " pad " << t.pad_h << "," << t.pad_w);
    Generator gen(static_cast<uint64_t>(t.C * 131 + t.K));
    std::vector<float> x(static_cast<size_t>(g.N * g.C * g.H * g.W)), w(static_cast<size_t>(g.K * g.C * g.KH * g.KW)),
        bias(static_cast<size_t>(g.K));
    for (float& v : x) v = gen.uniform(-1, 1);
    for (float& v : w) v = gen.uniform(-1, 1);
    for (float& v : bias) v = gen.uniform(-1, 1);
    std::vector<float> y(static_cast<size_t>(g.N * g.K * g.OH * g.OW), std::nanf(""));
    conv2d_bf16_forward(kernel, g, x.data(), w.data(), ConvOutput(bias.data(), BnActivation::None), y.data());
    std::vector<double> ref, scale;
    reference(g, x, w, bias, ref, scale);
    CHECK(count_off("output", y, ref, scale) == 0);
  }
}

// dW[k, c, kh, kw] = sum over n, oh, ow of x[n, c, oh + kh - pad_h, ow + kw - pad_w] * dy[n, k, oh, ow]
// on bf16-rounded x and dy, double sums, with the sum of |products| per weight; dbias[k] = the
// sum of the unrounded dy[n, k] (the bias gradient stays fp32), with the sum of |dy|.
void reference_weight_grad(const Conv2dGeometry& g, const std::vector<float>& x, const std::vector<float>& dy,
                           std::vector<double>& dw, std::vector<double>& dw_scale, std::vector<double>& db,
                           std::vector<double>& db_scale) {
  dw.assign(static_cast<size_t>(g.K * g.C * g.KH * g.KW), 0.0);
  dw_scale = dw;
  db.assign(static_cast<size_t>(g.K), 0.0);
  db_scale = db;
  for (size_t i = 0; i < dy.size(); ++i) {
    const size_t k = i / static_cast<size_t>(g.OH * g.OW) % static_cast<size_t>(g.K);
    db[k] += dy[i];
    db_scale[k] += std::fabs(dy[i]);
  }
  testing::for_each_conv_product(g, [&](int64_t n, int64_t k, int64_t c, int64_t kh, int64_t kw, int64_t oh,
                                        int64_t ow, int64_t h, int64_t ww) {
    const double p = static_cast<double>(round_to_bf16(x[((n * g.C + c) * g.H + h) * g.W + ww])) *
                     round_to_bf16(dy[static_cast<size_t>(((n * g.K + k) * g.OH + oh) * g.OW + ow)]);
    const size_t i = static_cast<size_t>(((k * g.C + c) * g.KH + kh) * g.KW + kw);
    dw[i] += p;
    dw_scale[i] += std::fabs(p);
  });
}

void check_weight_grad_kernel(const Bf16ConvWeightGradKernel& kernel) {
  for (const Case& t : kCases) {
    const Conv2dGeometry g = geometry(t);
    INFO(std::string(kernel.isa) << " weight gradient: N " << t.N << " C " << t.C << " " << t.H << "x" << t.W << " K "
                    << t.K << " " << t.KH << "x" << t.KW << " pad " << t.pad_h << "," << t.pad_w);
    Generator gen(static_cast<uint64_t>(t.C * 137 + t.K));
    std::vector<float> x(static_cast<size_t>(g.N * g.C * g.H * g.W)), dy(static_cast<size_t>(g.N * g.K * g.OH * g.OW));
    for (float& v : x) v = gen.uniform(-1, 1);
    for (float& v : dy) v = gen.uniform(-1, 1);
    std::vector<float> dw(static_cast<size_t>(g.K * g.C * g.KH * g.KW), std::nanf("")),
        db(static_cast<size_t>(g.K), std::nanf(""));
    conv2d_bf16_backward_weight(kernel, g, dy.data(), x.data(), dw.data(), db.data());
    std::vector<double> dw_ref, dw_scale, db_ref, db_scale;
    reference_weight_grad(g, x, dy, dw_ref, dw_scale, db_ref, db_scale);
    CHECK(count_off("dW", dw, dw_ref, dw_scale) == 0);
    CHECK(count_off("dbias", db, db_ref, db_scale) == 0);
    // Without a bias: the same dW, bit for bit (one thread count, one order of sums).
    std::vector<float> again(dw.size(), std::nanf(""));
    conv2d_bf16_backward_weight(kernel, g, dy.data(), x.data(), again.data(), nullptr);
    CHECK(again == dw);
  }
}
}  // namespace

TEST_CASE("bf16 direct convolution and weight gradient, emulated VDPBF16PS (any AVX-512 CPU), against the rounded-operand reference") {
  if (!isa_supported(Isa::Avx512)) {
    MESSAGE("SKIPPED: no AVX-512 on this CPU");
    return;
  }
  check_kernel(bf16_conv_kernel_emulated());
  check_weight_grad_kernel(bf16_conv_weight_grad_kernel_emulated());
}

TEST_CASE("bf16 direct convolution and weight gradient on the CPU's VDPBF16PS, against the rounded-operand reference") {
  if (!isa_supported(Isa::Avx512Bf16)) {
    MESSAGE("SKIPPED: this CPU has no AVX512-BF16 (the op-case tests run it through conv2d where it does)");
    return;
  }
  check_kernel(bf16_conv_kernel_avx512bf16());
  check_weight_grad_kernel(bf16_conv_weight_grad_kernel_avx512bf16());
}

TEST_CASE("bf16 direct convolution: the AVX-512 conversions write exactly the reference's bits") {
  if (!isa_supported(Isa::Avx512)) {
    MESSAGE("SKIPPED: this CPU has no AVX-512");
    return;
  }
  const Bf16PackKernels ref = bf16_pack_reference(), vec = bf16_pack_avx512();
  Generator gen(5);
  for (const int64_t n : {1, 5, 16, 17, 48, 50}) {
    INFO("row of " << n);
    std::vector<float> even(static_cast<size_t>(n)), odd(even.size());
    for (float& v : even) v = gen.uniform(-3, 3);
    for (float& v : odd) v = gen.uniform(-3, 3);
    even[0] = std::nanf("");          // NaN keeps its high half in both
    odd.back() = 1.00390625f;         // 1 + 2^-8, halfway between two bfloat16s: rounds to even (1)
    if (n > 2) even[1] = 1.01171875f;  // 1 + 3 * 2^-8: halfway, rounds up to even (1 + 2^-6)
    // One word past the row must stay as it was.
    for (const float* o : {static_cast<const float*>(odd.data()), static_cast<const float*>(nullptr)}) {
      std::vector<uint32_t> a(static_cast<size_t>(n + 1), 7u), b(a);
      ref.pair_rows(even.data(), o, n, a.data());
      vec.pair_rows(even.data(), o, n, b.data());
      CHECK(a == b);
      CHECK(b.back() == 7u);
    }
    std::vector<uint16_t> a(static_cast<size_t>(n + 1), 7), b(a);
    ref.round_row(even.data(), n, a.data());
    vec.round_row(even.data(), n, b.data());
    CHECK(a == b);
    CHECK(b.back() == 7);
  }
  // dy of 20 channels on grids with two dropped columns per row: 5x3 pixels on a grid 5 wide cut
  // after 23 cells (12 pairs, the last cell past the grid: runs too short for the vector path's
  // eight cells), and rows that hold such runs, even and odd (whole runs, runs cut by a row's
  // end, runs across two rows); panels of 32 and 16 channels, full and partial.
  struct Grid {
    int64_t OH, OW, Wp, cells;
  };
  for (const Grid& grid : {Grid{5, 3, 5, 5 * 5 - 2}, Grid{3, 13, 15, 3 * 15}, Grid{3, 12, 14, 3 * 14},
                           Grid{2, 6, 8, 2 * 8}, Grid{2, 24, 26, 2 * 26 - 1}}) {
    const int64_t P = grid.OH * grid.OW;
    std::vector<float> dy(static_cast<size_t>(20 * P));
    for (float& v : dy) v = gen.uniform(-3, 3);
    dy[3] = std::nanf("");
    std::vector<int32_t> pixel(static_cast<size_t>(grid.cells + 1), -1);
    for (int64_t oh = 0; oh < grid.OH; ++oh)
      for (int64_t ow = 0; ow < grid.OW; ++ow)
        if (oh * grid.Wp + ow < grid.cells)
          pixel[static_cast<size_t>(oh * grid.Wp + ow)] = static_cast<int32_t>(oh * grid.OW + ow);
    const int64_t pairs = (grid.cells + 1) / 2;
    for (const auto& [nr, channels] : {std::pair{32, 20}, std::pair{32, 7}, std::pair{16, 16}, std::pair{16, 3}}) {
      INFO("dy pairs: " << grid.OW << " pixels a row on a grid " << grid.Wp << " wide, nr " << nr << ", "
                        << channels << " channels");
      std::vector<uint32_t> a(static_cast<size_t>(pairs * nr + 1), 7u), b(a);
      ref.pair_cells(dy.data(), P, channels, pixel.data(), pairs, nr, a.data());
      vec.pair_cells(dy.data(), P, channels, pixel.data(), pairs, nr, b.data());
      CHECK(a == b);
      CHECK(b.back() == 7u);
    }
  }
}
