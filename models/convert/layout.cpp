#include "models/convert/layout.h"

#include <vector>

namespace fer::convert {

Tensor hwio_to_oihw(const Tensor& k, const std::string& name) {
  FER_CHECK(k.dim() == 4, name, ": a convolution kernel must be [KH, KW, In, Out], got ", k.shape_str());
  const int64_t KH = k.size(0), KW = k.size(1), I = k.size(2), O = k.size(3);
  const std::vector<float> src = k.to_vector();
  std::vector<float> dst(src.size());
  for (int64_t h = 0; h < KH; ++h)
    for (int64_t w = 0; w < KW; ++w)
      for (int64_t i = 0; i < I; ++i)
        for (int64_t o = 0; o < O; ++o)
          dst[((o * I + i) * KH + h) * KW + w] = src[((h * KW + w) * I + i) * O + o];
  return Tensor::from_vector({O, I, KH, KW}, dst);
}

Tensor depthwise_to_oihw(const Tensor& k, const std::string& name) {
  FER_CHECK(k.dim() == 4, name, ": a depthwise kernel must be [KH, KW, C, M], got ", k.shape_str());
  const int64_t KH = k.size(0), KW = k.size(1), C = k.size(2), M = k.size(3);
  const std::vector<float> src = k.to_vector();
  std::vector<float> dst(src.size());
  for (int64_t h = 0; h < KH; ++h)
    for (int64_t w = 0; w < KW; ++w)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t m = 0; m < M; ++m)
          dst[((c * M + m) * KH + h) * KW + w] = src[((h * KW + w) * C + c) * M + m];
  return Tensor::from_vector({C * M, 1, KH, KW}, dst);
}

Tensor dense_to_out_in(const Tensor& k, const std::string& name) {
  FER_CHECK(k.dim() == 2, name, ": a dense kernel must be [In, Out], got ", k.shape_str());
  const int64_t I = k.size(0), O = k.size(1);
  const std::vector<float> src = k.to_vector();
  std::vector<float> dst(src.size());
  for (int64_t i = 0; i < I; ++i)
    for (int64_t o = 0; o < O; ++o) dst[o * I + i] = src[i * O + o];
  return Tensor::from_vector({O, I}, dst);
}

}  // namespace fer::convert
