// InceptionV3 (Szegedy et al., "Rethinking the Inception Architecture"), torchvision's layout and
// names without the auxiliary classifier (models/backbones.h). Block outputs are the channel
// concatenation of their branches, in torchvision's (and Keras's) order:
//   A  Mixed_5b/c/d  1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool3-1x1            35x35
//   B  Mixed_6a      3x3/2 | 1x1-3x3-3x3/2 | maxpool3/2                    35 -> 17
//   C  Mixed_6b..e   1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1  17x17
//   D  Mixed_7a      1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool3/2            17 -> 8
//   E  Mixed_7b/c    1x1 | 1x1-(1x3,3x1) | 1x1-3x3-(1x3,3x1) | avgpool-1x1  8x8
// Every convolution is a BasicConv2d: conv (no bias) + BatchNorm(eps 0.001) + ReLU. The branch
// average pools are 3x3/1 pad 1: torchvision counts the padding in the mean, Keras does not
// (AvgPool2dSame), which is the one computational difference of the Keras flavour.
#include "models/backbones.h"

namespace fer {

namespace {

using backbone_detail::window_out;

// BasicConv2d: children "conv", "bn", "relu" (torchvision applies the ReLU functionally; as a
// child it adds no tensor names).
std::shared_ptr<Sequential> basic(int64_t in, int64_t out, int64_t kh, int64_t kw, int64_t stride,
                                  int64_t ph, int64_t pw, float eps) {
  auto seq = std::make_shared<Sequential>();
  if (kh == kw && ph == pw)
    seq->add("conv", std::make_shared<Conv2d>(Conv2dConfig{in, out, kh, stride, ph, 1, 1, false}));
  else
    seq->add("conv", std::make_shared<FlexConv2d>(
                         FlexConv2dConfig{in, out, kh, kw, stride, ph, pw, false, 1, false}));
  seq->add("bn", std::make_shared<BatchNorm2d>(out, eps));
  seq->add("relu", ReLU());
  return seq;
}
std::shared_ptr<Sequential> basic(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                  float eps) {
  return basic(in, out, k, k, stride, pad, pad, eps);
}

// The shared machinery of blocks A-E: named children, and the 3x3/1 average pool of the flavour.
class InceptionBlock : public Module {
 protected:
  InceptionBlock(bool keras, float eps) : keras_(keras), eps_(eps) {}
  // The 3x3/1 average pool in front of branch_pool (blocks A, C, E), a parameterless child.
  void add_avgpool() {
    if (keras_)
      avgpool_ = register_module("avgpool", std::make_shared<AvgPool2dSame>(3));
    else
      avgpool_ = register_module("avgpool", std::make_shared<AvgPool2d>(3, 1, 1));
  }
  std::shared_ptr<Sequential> conv(const std::string& name, int64_t in, int64_t out, int64_t k,
                                   int64_t stride = 1, int64_t pad = 0) {
    return register_module(name, basic(in, out, k, stride, pad, eps_));
  }
  std::shared_ptr<Sequential> conv(const std::string& name, int64_t in, int64_t out, int64_t kh,
                                   int64_t kw, int64_t ph, int64_t pw) {
    return register_module(name, basic(in, out, kh, kw, 1, ph, pw, eps_));
  }
  static Tensor max_pool3s2(const Tensor& x) {
    Pool2dOptions o;
    o.kernel_h = o.kernel_w = 3;
    o.stride_h = o.stride_w = 2;
    return max_pool2d(x, o);
  }
  bool keras_;
  float eps_;
  std::shared_ptr<Module> avgpool_;
};

class InceptionA : public InceptionBlock {
 public:
  InceptionA(int64_t in, int64_t pool_features, bool keras, float eps) : InceptionBlock(keras, eps) {
    b1 = conv("branch1x1", in, 64, 1);
    b5_1 = conv("branch5x5_1", in, 48, 1);
    b5_2 = conv("branch5x5_2", 48, 64, 5, 1, 2);
    d1 = conv("branch3x3dbl_1", in, 64, 1);
    d2 = conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    d3 = conv("branch3x3dbl_3", 96, 96, 3, 1, 1);
    bp = conv("branch_pool", in, pool_features, 1);
    add_avgpool();
  }
  Tensor forward(const Tensor& x) override {
    return concat({(*b1)(x), (*b5_2)((*b5_1)(x)), (*d3)((*d2)((*d1)(x))),
                   (*bp)((*avgpool_)(x))}, 1);
  }
  std::string describe() const override { return "InceptionA()"; }

 private:
  std::shared_ptr<Sequential> b1, b5_1, b5_2, d1, d2, d3, bp;
};

class InceptionB : public InceptionBlock {
 public:
  InceptionB(int64_t in, bool keras, float eps) : InceptionBlock(keras, eps) {
    b3 = conv("branch3x3", in, 384, 3, 2);
    d1 = conv("branch3x3dbl_1", in, 64, 1);
    d2 = conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    d3 = conv("branch3x3dbl_3", 96, 96, 3, 2);
  }
  Tensor forward(const Tensor& x) override {
    return concat({(*b3)(x), (*d3)((*d2)((*d1)(x))), max_pool3s2(x)}, 1);
  }
  std::string describe() const override { return "InceptionB()"; }

 private:
  std::shared_ptr<Sequential> b3, d1, d2, d3;
};

class InceptionC : public InceptionBlock {
 public:
  InceptionC(int64_t in, int64_t c7, bool keras, float eps) : InceptionBlock(keras, eps) {
    b1 = conv("branch1x1", in, 192, 1);
    s1 = conv("branch7x7_1", in, c7, 1);
    s2 = conv("branch7x7_2", c7, c7, 1, 7, 0, 3);
    s3 = conv("branch7x7_3", c7, 192, 7, 1, 3, 0);
    d1 = conv("branch7x7dbl_1", in, c7, 1);
    d2 = conv("branch7x7dbl_2", c7, c7, 7, 1, 3, 0);
    d3 = conv("branch7x7dbl_3", c7, c7, 1, 7, 0, 3);
    d4 = conv("branch7x7dbl_4", c7, c7, 7, 1, 3, 0);
    d5 = conv("branch7x7dbl_5", c7, 192, 1, 7, 0, 3);
    bp = conv("branch_pool", in, 192, 1);
    add_avgpool();
  }
  Tensor forward(const Tensor& x) override {
    Tensor s = (*s3)((*s2)((*s1)(x)));
    Tensor d = (*d5)((*d4)((*d3)((*d2)((*d1)(x)))));
    return concat({(*b1)(x), s, d, (*bp)((*avgpool_)(x))}, 1);
  }
  std::string describe() const override { return "InceptionC()"; }

 private:
  std::shared_ptr<Sequential> b1, s1, s2, s3, d1, d2, d3, d4, d5, bp;
};

class InceptionD : public InceptionBlock {
 public:
  InceptionD(int64_t in, bool keras, float eps) : InceptionBlock(keras, eps) {
    t1 = conv("branch3x3_1", in, 192, 1);
    t2 = conv("branch3x3_2", 192, 320, 3, 2);
    s1 = conv("branch7x7x3_1", in, 192, 1);
    s2 = conv("branch7x7x3_2", 192, 192, 1, 7, 0, 3);
    s3 = conv("branch7x7x3_3", 192, 192, 7, 1, 3, 0);
    s4 = conv("branch7x7x3_4", 192, 192, 3, 2);
  }
  Tensor forward(const Tensor& x) override {
    return concat({(*t2)((*t1)(x)), (*s4)((*s3)((*s2)((*s1)(x)))), max_pool3s2(x)}, 1);
  }
  std::string describe() const override { return "InceptionD()"; }

 private:
  std::shared_ptr<Sequential> t1, t2, s1, s2, s3, s4;
};

class InceptionE : public InceptionBlock {
 public:
  InceptionE(int64_t in, bool keras, float eps) : InceptionBlock(keras, eps) {
    b1 = conv("branch1x1", in, 320, 1);
    t1 = conv("branch3x3_1", in, 384, 1);
    t2a = conv("branch3x3_2a", 384, 384, 1, 3, 0, 1);
    t2b = conv("branch3x3_2b", 384, 384, 3, 1, 1, 0);
    d1 = conv("branch3x3dbl_1", in, 448, 1);
    d2 = conv("branch3x3dbl_2", 448, 384, 3, 1, 1);
    d3a = conv("branch3x3dbl_3a", 384, 384, 1, 3, 0, 1);
    d3b = conv("branch3x3dbl_3b", 384, 384, 3, 1, 1, 0);
    bp = conv("branch_pool", in, 192, 1);
    add_avgpool();
  }
  Tensor forward(const Tensor& x) override {
    Tensor t = (*t1)(x);
    Tensor d = (*d2)((*d1)(x));
    return concat({(*b1)(x), (*t2a)(t), (*t2b)(t), (*d3a)(d), (*d3b)(d),
                   (*bp)((*avgpool_)(x))}, 1);
  }
  std::string describe() const override { return "InceptionE()"; }

 private:
  std::shared_ptr<Sequential> b1, t1, t2a, t2b, d1, d2, d3a, d3b, bp;
};

}  // namespace

std::shared_ptr<Module> inception_v3(const ModelConfig& c, WeightsFlavor flavor) {
  const bool keras = flavor == WeightsFlavor::keras;
  const std::string name = keras ? "inception_v3_keras" : "inception_v3";
  const float eps = backbone_detail::bn_eps(c, 1e-3f);
  auto f = backbone_detail::start_features(c, name, 75, keras ? tf_normalization() : imagenet_normalization());
  f->add("Conv2d_1a_3x3", basic(3, 32, 3, 2, 0, eps));
  f->add("Conv2d_2a_3x3", basic(32, 32, 3, 1, 0, eps));
  f->add("Conv2d_2b_3x3", basic(32, 64, 3, 1, 1, eps));
  f->add("maxpool1", std::make_shared<MaxPool2d>(3, 2));
  f->add("Conv2d_3b_1x1", basic(64, 80, 1, 1, 0, eps));
  f->add("Conv2d_4a_3x3", basic(80, 192, 3, 1, 0, eps));
  f->add("maxpool2", std::make_shared<MaxPool2d>(3, 2));
  int64_t side = window_out(window_out(c.input_size, 3, 2, 0), 3, 1, 0);  // 1a, 2a
  side = window_out(window_out(window_out(side, 3, 2, 0), 3, 1, 0), 3, 2, 0);  // pool, 4a, pool
  f->add("Mixed_5b", std::make_shared<InceptionA>(192, 32, keras, eps));
  f->add("Mixed_5c", std::make_shared<InceptionA>(256, 64, keras, eps));
  f->add("Mixed_5d", std::make_shared<InceptionA>(288, 64, keras, eps));
  f->add("Mixed_6a", std::make_shared<InceptionB>(288, keras, eps));
  f->add("Mixed_6b", std::make_shared<InceptionC>(768, 128, keras, eps));
  f->add("Mixed_6c", std::make_shared<InceptionC>(768, 160, keras, eps));
  f->add("Mixed_6d", std::make_shared<InceptionC>(768, 160, keras, eps));
  f->add("Mixed_6e", std::make_shared<InceptionC>(768, 192, keras, eps));
  f->add("Mixed_7a", std::make_shared<InceptionD>(768, keras, eps));
  f->add("Mixed_7b", std::make_shared<InceptionE>(1280, keras, eps));
  f->add("Mixed_7c", std::make_shared<InceptionE>(2048, keras, eps));
  side = window_out(window_out(side, 3, 2, 0), 3, 2, 0);  // Mixed_6a, Mixed_7a
  return backbone_detail::finish(f, 2048, side, c, name);
}

}  // namespace fer
