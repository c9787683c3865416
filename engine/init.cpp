#include "engine/init.h"

#include <cmath>

namespace fer::init {

Fans fans(const Shape& s) {
  FER_CHECK(s.size() >= 2, "init: weight must have at least 2 dims, got ", shape_str(s));
  int64_t receptive = 1;
  for (size_t i = 2; i < s.size(); ++i) receptive *= s[i];
  return {s[1] * receptive, s[0] * receptive};
}

namespace {
void assign(Tensor& w, const Tensor& values) { w.copy_(values); }
}  // namespace

void kaiming_normal(Tensor& w, float gain, Generator& gen) {
  const float stddev = gain / std::sqrt(static_cast<float>(fans(w.shape()).in));
  assign(w, Tensor::normal(w.shape(), 0.0f, stddev, gen));
}

void kaiming_uniform(Tensor& w, float gain, Generator& gen) {
  uniform(w, gain * std::sqrt(3.0f / static_cast<float>(fans(w.shape()).in)), gen);
}

void xavier_uniform(Tensor& w, Generator& gen) {
  const Fans f = fans(w.shape());
  uniform(w, std::sqrt(6.0f / static_cast<float>(f.in + f.out)), gen);
}

void xavier_normal(Tensor& w, Generator& gen) {
  const Fans f = fans(w.shape());
  assign(w, Tensor::normal(w.shape(), 0.0f, std::sqrt(2.0f / static_cast<float>(f.in + f.out)), gen));
}

void uniform(Tensor& w, float bound, Generator& gen) {
  assign(w, Tensor::uniform(w.shape(), -bound, bound, gen));
}

}  // namespace fer::init
