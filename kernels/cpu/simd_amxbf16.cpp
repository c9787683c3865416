// The AMX-BF16 kernels: the tile loops of conv2d_amx_tiles.h on the real tile instructions,
// compiled with this set's flags (CMakeLists.txt) and called only when CPUID reports AMX-BF16 and
// Linux has granted the tile state to the process (isa.cpp).
#include <immintrin.h>

#include "kernels/cpu/conv2d_amx.h"
#include "kernels/cpu/conv2d_amx_tiles.h"

namespace fer::cpu {

namespace {

// LDTILECFG's 64-byte operand (palette 1): the shape of each of the eight tiles.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row
  uint8_t rows[16] = {};
};

// GCC's tile intrinsics paste their tile number into the assembly text, so it must be a literal:
// the template members below are specialised for each number, or each (C, A, B) the loops use.
struct NativeTiles {
  static void begin() {
    TileConfig config;
    for (int t = 0; t < 8; ++t) {
      config.colsb[t] = 64;
      config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
  }
  static void end() { _tile_release(); }
  template <int T>
  static void zero();
  template <int T>
  static void load(const void* p, int64_t stride);
  template <int T>
  static void store(void* p, int64_t stride);
  template <int C, int A, int B>
  static void dot();
};

// Tiles 0-3 accumulate (zeroed, loaded, stored), tiles 4-7 are operands (loaded).
#define FER_TILE_LOAD(T) \
  template <>            \
  void NativeTiles::load<T>(const void* p, int64_t stride) { _tile_loadd(T, p, stride); }
#define FER_TILE_ACCUMULATOR(T)                                                           \
  FER_TILE_LOAD(T)                                                                        \
  template <>                                                                             \
  void NativeTiles::zero<T>() { _tile_zero(T); }                                          \
  template <>                                                                             \
  void NativeTiles::store<T>(void* p, int64_t stride) { _tile_stored(T, p, stride); }
FER_TILE_ACCUMULATOR(0)
FER_TILE_ACCUMULATOR(1)
FER_TILE_ACCUMULATOR(2)
FER_TILE_ACCUMULATOR(3)
FER_TILE_LOAD(4)
FER_TILE_LOAD(5)
FER_TILE_LOAD(6)
FER_TILE_LOAD(7)
#undef FER_TILE_ACCUMULATOR
#undef FER_TILE_LOAD

#define FER_TILE_DOT(C, A, B) \
  template <>                 \
  void NativeTiles::dot<C, A, B>() { _tile_dpbf16ps(C, A, B); }
FER_TILE_DOT(0, 4, 6)
FER_TILE_DOT(1, 5, 6)
FER_TILE_DOT(2, 4, 7)
FER_TILE_DOT(3, 5, 7)
#undef FER_TILE_DOT

}  // namespace

AmxConvKernels amx_conv_kernels_native() {
  return {"amx", amx_forward_loop<NativeTiles>, amx_weight_grad_loop<NativeTiles>, amx_layout_avx512()};
}

}  // namespace fer::cpu
