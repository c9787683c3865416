// The AMX convolution (kernels/cpu/conv2d_amx.h): NHWC images, weights packed as B tiles, the
// weight gradient over pair-interleaved images. Its forward pass and weight gradient are checked
// against plain loops on the bf16-rounded operands with double sums, through the emulated tile
// instructions on every CPU and through the real ones where the CPU has AMX (skipped visibly
// elsewhere), over geometries with channel counts that are not multiples of the tiles', padding,
// non-square kernels, 1x1 kernels and grids that do not fill a tile. The bf16 op cases
// (test_op_cases) also run every convolution case through it on CPUs with AMX.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "engine/random.h"
#include "kernels/cpu/conv2d_amx.h"
#include "kernels/cpu/isa.h"
#include "tests/support/conv_reference.h"

using namespace fer;
using namespace fer::cpu;

namespace {

struct Case {
  int64_t N, C, H, W, K, KH, KW, pad_h, pad_w;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all{{2, 16, 7, 9, 16, 3, 3, 1, 1},  {1, 33, 6, 6, 20, 3, 3, 1, 1},
                                     {3, 32, 5, 5, 48, 1, 1, 0, 0},  {2, 20, 12, 12, 17, 5, 3, 2, 0},
                                     {1, 64, 3, 3, 32, 3, 3, 1, 1},  {2, 17, 1, 1, 31, 1, 1, 0, 0}};
  return all;
}

Conv2dGeometry geometry(const Case& t) {
  return {t.N, t.C, t.H, t.W, t.K, t.KH, t.KW, 1, 1, t.pad_h, t.pad_w, 1, 1, 1,
          t.H + 2 * t.pad_h - t.KH + 1, t.W + 2 * t.pad_w - t.KW + 1};
}

std::vector<float> random_values(size_t n, Generator& gen) {
  std::vector<float> v(n);
  for (float& x : v) x = gen.uniform(-1, 1);
  return v;
}

// |got - want| within float rounding of sums whose magnitude is `scale`.
int count_bad(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
              const char* what) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= 1e-5 * scale[i] + 1e-6) && bad++ < 3)
      MESSAGE(what << " " << i << ": " << got[i] << " against " << want[i]);
  return bad;
}

void check_kernels(const AmxConvKernels& kernels, int threads) {
  const int saved_threads = cpu_threads();
  set_cpu_threads(threads);
  for (const Case& t : cases()) {
    const Conv2dGeometry g = geometry(t);
    INFO(kernels.name << ", " << threads << " threads: N " << t.N << " C " << t.C << " " << t.H << "x" << t.W
                      << " K " << t.K << " " << t.KH << "x" << t.KW << " pad " << t.pad_h << "," << t.pad_w);
    REQUIRE(conv2d_amx_applies(g));
    Generator gen(static_cast<uint64_t>(t.C * 131 + t.K));
    const auto x = random_values(static_cast<size_t>(g.N * g.C * g.H * g.W), gen);
    const auto w = random_values(static_cast<size_t>(g.K * g.C * g.KH * g.KW), gen);
    const auto bias = random_values(static_cast<size_t>(g.K), gen);
    const auto dy = random_values(static_cast<size_t>(g.N * g.K * g.OH * g.OW), gen);
    auto xi = [&](int64_t n, int64_t c, int64_t h, int64_t w_) { return ((n * g.C + c) * g.H + h) * g.W + w_; };
    auto wi = [&](int64_t k, int64_t c, int64_t kh, int64_t kw) { return ((k * g.C + c) * g.KH + kh) * g.KW + kw; };
    auto yi = [&](int64_t n, int64_t k, int64_t oh, int64_t ow) { return ((n * g.K + k) * g.OH + oh) * g.OW + ow; };

    // Forward: y = conv(x, w) + bias.
    std::vector<double> y_ref(dy.size()), y_scale(dy.size());
    for (int64_t i = 0; i < static_cast<int64_t>(y_ref.size()); ++i) {
      const int64_t k = i / (g.OH * g.OW) % g.K;
      y_ref[i] = bias[k];
      y_scale[i] = std::fabs(bias[k]);
    }
    testing::for_each_conv_product(g, [&](int64_t n, int64_t k, int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                            int64_t h, int64_t w_) {
      const double p = static_cast<double>(round_to_bf16(x[xi(n, c, h, w_)])) * round_to_bf16(w[wi(k, c, kh, kw)]);
      y_ref[yi(n, k, oh, ow)] += p;
      y_scale[yi(n, k, oh, ow)] += std::fabs(p);
    });
    std::vector<float> y(dy.size(), std::nanf(""));
    conv2d_amx_forward(kernels, g, x.data(), w.data(), bias.data(), y.data());
    CHECK(count_bad(y, y_ref, y_scale, "output") == 0);

    // Weight gradient: dw = sum of x * dy over images and pixels; dbias = sum of dy (fp32).
    std::vector<double> dw_ref(w.size(), 0.0), dw_scale(w.size(), 0.0), db_ref(bias.size(), 0.0),
        db_scale(bias.size(), 0.0);
    testing::for_each_conv_product(g, [&](int64_t n, int64_t k, int64_t c, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                            int64_t h, int64_t w_) {
      const double p = static_cast<double>(round_to_bf16(x[xi(n, c, h, w_)])) * round_to_bf16(dy[yi(n, k, oh, ow)]);
      dw_ref[wi(k, c, kh, kw)] += p;
      dw_scale[wi(k, c, kh, kw)] += std::fabs(p);
    });
    for (size_t i = 0; i < dy.size(); ++i) {
      const size_t k = i / static_cast<size_t>(g.OH * g.OW) % static_cast<size_t>(g.K);
      db_ref[k] += dy[i];
      db_scale[k] += std::fabs(dy[i]);
    }
    std::vector<float> dw(w.size(), std::nanf("")), db(bias.size(), std::nanf(""));
    conv2d_amx_backward_weight(kernels, g, dy.data(), x.data(), dw.data(), db.data());
    CHECK(count_bad(dw, dw_ref, dw_scale, "weight gradient") == 0);
    CHECK(count_bad(db, db_ref, db_scale, "bias gradient") == 0);
  }
  set_cpu_threads(saved_threads);
}

}  // namespace

TEST_CASE("AMX convolution through emulated tiles (any CPU), against the rounded-operand reference") {
  check_kernels(amx_conv_kernels_emulated(amx_layout_reference()), 1);
  check_kernels(amx_conv_kernels_emulated(amx_layout_reference()), 2);
  if (!isa_supported(Isa::Avx512)) {
    MESSAGE("SKIPPED: the AVX-512 layouts (this CPU has no AVX-512)");
    return;
  }
  check_kernels(amx_conv_kernels_emulated(amx_layout_avx512()), 1);
  check_kernels(amx_conv_kernels_emulated(amx_layout_avx512()), 2);
}

TEST_CASE("AMX layouts: the AVX-512 conversions write exactly the reference's bits") {
  if (!isa_supported(Isa::Avx512)) {
    MESSAGE("SKIPPED: this CPU has no AVX-512");
    return;
  }
  const AmxLayoutKernels ref = amx_layout_reference(), vec = amx_layout_avx512();
  for (const Case& t : cases()) {
    const Conv2dGeometry g = geometry(t);
    INFO("C " << t.C << " " << t.H << "x" << t.W << " K " << t.K << " " << t.KH << "x" << t.KW);
    const AmxGrid grid(g);
    const int64_t ntaps = g.KH * g.KW;
    Generator gen(static_cast<uint64_t>(t.C * 7 + t.K));
    auto x = random_values(static_cast<size_t>(g.C * g.H * g.W), gen);
    x[0] = std::nanf("");  // NaN keeps its high half in both
    x.back() = 1.00390625f;  // 1 + 2^-8, halfway between two bfloat16s: rounds to even (1)
    const auto w = random_values(static_cast<size_t>(g.K * g.C * ntaps), gen);
    const auto dy = random_values(static_cast<size_t>(g.K * g.OH * g.OW), gen);
    const auto out = random_values(static_cast<size_t>(grid.cells * grid.k_pad), gen);
    const auto bias = random_values(static_cast<size_t>(g.K), gen);

    std::vector<uint16_t> xs_ref(static_cast<size_t>(grid.pixels * grid.channels), 1), xs_vec(xs_ref.size(), 2);
    ref.pack_image(g, grid, x.data(), xs_ref.data());
    vec.pack_image(g, grid, x.data(), xs_vec.data());
    CHECK(xs_ref == xs_vec);

    std::vector<uint32_t> x2_ref(static_cast<size_t>(2 * grid.pair_rows() * grid.channels), 1), x2_vec(x2_ref.size(), 2);
    ref.pair_image(grid, xs_ref.data(), x2_ref.data());
    vec.pair_image(grid, xs_ref.data(), x2_vec.data());
    CHECK(x2_ref == x2_vec);

    std::vector<uint16_t> rows_ref(static_cast<size_t>(grid.k_pad * grid.cells), 1), rows_vec(rows_ref.size(), 2);
    ref.pack_rows(g, grid, dy.data(), rows_ref.data());
    vec.pack_rows(g, grid, dy.data(), rows_vec.data());
    CHECK(rows_ref == rows_vec);

    for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
      std::vector<float> y_ref(dy.size(), 1.0f), y_vec(dy.size(), 2.0f);
      ref.copy_out(g, grid, out.data(), b, y_ref.data());
      vec.copy_out(g, grid, out.data(), b, y_vec.data());
      CHECK(y_ref == y_vec);
    }

    // Output-channel tiles [1, end) only: tile 0 must stay as it was.
    const int64_t kb_end = grid.k_pad / 16, tile_u16 = ntaps * grid.channels / 32 * 512;
    std::vector<uint16_t> packed_ref(static_cast<size_t>(kb_end * tile_u16), 7), packed_vec(packed_ref.size(), 7);
    ref.pack_weights(g, grid, w.data(), 1, kb_end, packed_ref.data());
    vec.pack_weights(g, grid, w.data(), 1, kb_end, packed_vec.data());
    CHECK(packed_ref == packed_vec);
    CHECK(packed_vec[0] == 7);

    const int64_t part = ntaps * grid.k_pad * grid.channels + g.K;
    const auto parts = random_values(static_cast<size_t>(3 * part), gen);
    std::vector<float> dw_ref(w.size(), 1.0f), dw_vec(w.size(), 1.0f);
    ref.sum_weight_grads(g, grid, parts.data(), part, 3, 1, g.K, dw_ref.data());
    vec.sum_weight_grads(g, grid, parts.data(), part, 3, 1, g.K, dw_vec.data());
    CHECK(dw_ref == dw_vec);
    CHECK(dw_vec[0] == 1.0f);  // output channel 0 was not asked for
  }
}

TEST_CASE("AMX convolution on the CPU's tiles, against the rounded-operand reference") {
  if (!isa_supported(Isa::Amx)) {
    MESSAGE("SKIPPED: this CPU has no AMX-BF16 (the bf16 op cases run it through conv2d where it does)");
    return;
  }
  check_kernels(amx_conv_kernels_native(), 1);
  check_kernels(amx_conv_kernels_native(), 2);
}

TEST_CASE("the AMX convolution is chosen only for bf16 products on the amx set") {
  const PrecisionScope bf16(Precision::BF16);
  CHECK((active_amx_conv_kernels() != nullptr) == (active_isa() == Isa::Amx));
  const PrecisionScope fp32(Precision::FP32);
  CHECK(active_amx_conv_kernels() == nullptr);
  Conv2dGeometry g = geometry({1, 16, 8, 8, 16, 3, 3, 1, 1});
  CHECK(conv2d_amx_applies(g));
  g.C = 8;  // too few channels to fill a tile's pairs usefully
  CHECK_FALSE(conv2d_amx_applies(g));
  g = geometry({1, 16, 8, 8, 16, 3, 3, 1, 1});
  g.stride_h = g.stride_w = 2;
  CHECK_FALSE(conv2d_amx_applies(g));
}
