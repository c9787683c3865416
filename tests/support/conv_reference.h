// The bf16 convolution kernels' reference (tests/test_conv_bf16.cpp, test_conv_amx.cpp): the
// convolution's products enumerated one by one, so each test sums them in double precision on
// the bf16-rounded operands and keeps the sum of |products| as the scale of its rounding error.
#pragma once
#include <cstdint>

#include "engine/backend.h"

namespace fer::testing {

// Calls f(n, k, c, kh, kw, oh, ow, h, w) for every product of a stride-1, undilated convolution
// whose input pixel (h, w) lies inside the image.
template <class F>
void for_each_conv_product(const Conv2dGeometry& g, F f) {
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw)
            for (int64_t oh = 0; oh < g.OH; ++oh)
              for (int64_t ow = 0; ow < g.OW; ++ow) {
                const int64_t h = oh + kh - g.pad_h, w = ow + kw - g.pad_w;
                if (h >= 0 && h < g.H && w >= 0 && w < g.W) f(n, k, c, kh, kw, oh, ow, h, w);
              }
}

}  // namespace fer::testing
