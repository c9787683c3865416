// The op cases (see op_cases.h for what reads them and how to add one).
#include "tests/support/op_cases.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/random.h"
#include "models/registry.h"

namespace fer::testing {

CpuKernelsAs::CpuKernelsAs(cpu::Isa isa, int threads)
    : saved_isa_(cpu::active_isa()), saved_threads_(cpu_threads()) {
  cpu::set_active_isa(isa);
  set_cpu_threads(threads);
}

CpuKernelsAs::~CpuKernelsAs() {
  cpu::set_active_isa(saved_isa_);
  set_cpu_threads(saved_threads_);
}

// ---- Building blocks ---------------------------------------------------------------------------

Tensor make_input(const Input& in, uint64_t seed, Device dev) {
  Generator gen(seed);
  if (in.classes > 0) {
    std::vector<float> v(shape_numel(in.shape));
    for (float& x : v) x = static_cast<float>(gen.below(static_cast<uint64_t>(in.classes)));
    return Tensor::from_vector(in.shape, v, dev);
  }
  Tensor t = Tensor::uniform(in.shape, in.lo, in.hi, gen, dev);
  if (in.grad) t.set_requires_grad(true);
  return t;
}

std::vector<Tensor> make_inputs(const std::vector<Input>& inputs, Device dev, uint64_t first_seed) {
  std::vector<Tensor> xs;
  for (size_t k = 0; k < inputs.size(); ++k) xs.push_back(make_input(inputs[k], first_seed + k, dev));
  return xs;
}

namespace {
// The fields every kind of case sets; the builders below add what is particular to theirs.
OpCase make_case(const std::string& name, std::vector<std::string> ops,
                 std::function<Named(Device)> run, Tolerance tol) {
  OpCase c;
  c.name = name;
  c.ops = std::move(ops);
  c.run = std::move(run);
  c.tol = tol;
  return c;
}
}  // namespace

OpCase op_case(const std::string& name, std::vector<std::string> ops, std::vector<Input> inputs,
               OpFn fn, Tolerance tol, bool matmul_like) {
  auto run = [inputs, fn](Device dev) {
    std::vector<Tensor> xs = make_inputs(inputs, dev);
    manual_seed(77);  // dropout masks
    Tensor out = fn(xs);
    Named r{{"output", out.detach()}};
    if (out.requires_grad()) {
      Generator pg(999);
      Tensor probe = Tensor::uniform(out.shape(), -1.0f, 1.0f, pg, dev);
      sum(mul(out, probe)).backward();
      for (size_t k = 0; k < xs.size(); ++k)
        if (xs[k].requires_grad()) r.push_back({"gradient of input " + std::to_string(k), xs[k].grad()});
    }
    return r;
  };
  OpCase c = make_case(name, std::move(ops), run, tol);
  c.matmul_like = matmul_like;
  c.inputs = std::move(inputs);
  c.fn = std::move(fn);
  return c;
}

OpCase kernel_case(const std::string& name, std::vector<std::string> ops,
                   std::function<Named(Device, Backend&)> fn, Tolerance tol) {
  OpCase c = make_case(name, std::move(ops), [fn](Device dev) { return fn(dev, backend(dev)); }, tol);
  c.no_gradcheck = "backend kernels called directly: no autograd graph to differentiate";
  return c;
}

OpCase optimizer_case(const std::string& name, std::vector<std::string> ops,
                      std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make,
                      float clip) {
  auto run = [make, clip](Device dev) {
    Generator g(5);
    Tensor a = Tensor::uniform({37}, -1, 1, g, dev), b = Tensor::uniform({5, 7}, -1, 1, g, dev);
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    auto opt = make({a, b});
    Named r;
    for (int step = 0; step < 3; ++step) {
      a.set_grad(Tensor::uniform({37}, -1, 1, g, dev));
      b.set_grad(Tensor::uniform({5, 7}, -1, 1, g, dev));
      if (clip > 0) r.push_back({"norm before clipping, step " + std::to_string(step),
                                 Tensor::scalar(clip_grad_norm({a, b}, clip))});
      opt->step();
    }
    r.push_back({"parameter a", a.detach()});
    r.push_back({"parameter b", b.detach()});
    for (const auto& [key, t] : opt->state_dict()) r.push_back({key, t});
    return r;
  };
  OpCase c = make_case(name, std::move(ops), run, kOptimizer);
  c.no_gradcheck = "an optimizer step updates parameters in place: not a differentiable op";
  return c;
}

Conv2dOptions conv_opts(int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                        int64_t dil, int64_t groups) {
  Conv2dOptions o;
  o.stride_h = stride_h, o.stride_w = stride_w, o.pad_h = pad_h, o.pad_w = pad_w;
  o.dil_h = o.dil_w = dil;
  o.groups = groups;
  return o;
}

Pool2dOptions pool_opts(int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = k;
  o.stride_h = o.stride_w = s;
  o.pad_h = o.pad_w = p;
  o.ceil_mode = ceil_mode;
  return o;
}

Mismatch compare_values(const Tensor& ref, const Tensor& got, const Tolerance& tol) {
  const std::vector<float> a = ref.to_vector(), b = got.to_vector();
  double max_ref = 0.0;
  for (float v : a) max_ref = std::max(max_ref, static_cast<double>(std::abs(v)));
  Mismatch m;
  m.size = static_cast<int64_t>(a.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    const double allowed = tol.atol + tol.scaled_atol * max_ref + tol.rtol * std::abs(a[i]);
    if (!(d <= allowed)) {  // written so that a NaN on one side counts as a mismatch
      ++m.count;
      if (!(d <= worst)) worst = d, m.worst_index = static_cast<int64_t>(i);
    }
  }
  if (m.worst_index >= 0) m.ref = a[m.worst_index], m.got = b[m.worst_index];
  return m;
}

namespace {

// ---- Whole networks ----------------------------------------------------------------------------

// One training step of fer_vgg_small (dropout 0.5, class weights, label smoothing 0.1, SGD with
// Nesterov momentum and weight decay): loss, logits, every gradient, every updated parameter, the
// batchnorm buffers, and the eval-mode logits after the step.
Named fer_vgg_small_step(Device dev) {
  manual_seed(5);
  auto model = create_model("fer_vgg_small");
  model->to(dev);
  model->train();
  // Max pooling makes a network's gradients discontinuous: two values of a window within rounding
  // of each other route the gradient to either, and the whole lower network differs by percents.
  // This input (seed 14) has no window that close: perturbing it by 1 part in 10^6 moves every
  // gradient by ~1e-6 (seed 12, used before, flipped a window under any perturbation).
  Generator g(14);
  const int64_t N = 8;
  Tensor x = Tensor::uniform({N, 1, 48, 48}, 0.0f, 1.0f, g, dev);
  std::vector<float> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = static_cast<float>((i * 3) % 7);
  Tensor y = Tensor::from_vector({N}, labels, dev);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1f;
  ce.class_weights = Tensor::from_vector({7}, {1.0f, 2.0f, 0.5f, 1.0f, 1.5f, 1.0f, 0.8f}, dev);
  SGD opt(model->parameters(), 0.05f, 0.9f, 0.0f, 5e-4f, true);
  manual_seed(9);  // the dropout masks
  Tensor logits = model->forward(x);
  Tensor loss = cross_entropy(logits, y, ce);
  loss.backward();
  opt.step();
  Named r{{"loss", loss.detach()}, {"logits", logits.detach()}};
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"grad " + name, p.grad()});
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"updated " + name, p.detach()});
  for (const auto& [name, b] : model->named_buffers()) r.push_back({"buffer " + name, b});
  model->eval();
  NoGradGuard no_grad;
  r.push_back({"eval logits after the step", model->forward(x)});
  return r;
}

// AdamW on fer_vgg_small's real parameter shapes, from gradients computed on the CPU always with
// the same kernels: the best set on 1 thread, whatever set, thread count or device the case is
// run under (Adam normalises each gradient element, so a gradient near 0 that rounds to the other
// sign moves its weight by 2 lr: updates cannot be compared from gradients that differ by
// rounding). Two steps, to exercise the bias corrections.
Named fer_vgg_small_adamw(Device dev) {
  manual_seed(5);
  auto model = create_model("fer_vgg_small");
  model->train();
  {
    CpuKernelsAs fixed(cpu::best_isa(), 1);
    Generator g(13);
    Tensor x = Tensor::uniform({4, 1, 48, 48}, 0.0f, 1.0f, g);
    Tensor y = Tensor::from_vector({4}, {0, 3, 6, 2});
    manual_seed(9);
    cross_entropy(model->forward(x), y).backward();
  }
  model->to(dev);  // parameters and their gradients
  AdamW opt(model->parameters(), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f);
  opt.step();
  opt.step();
  Named r;
  for (const auto& [name, p] : model->named_parameters()) r.push_back({"updated " + name, p.detach()});
  return r;
}

OpCase network_case(const std::string& name, std::vector<std::string> ops,
                    std::function<Named(Device)> run, Tolerance tol) {
  OpCase c = make_case(name, std::move(ops), std::move(run), tol);
  c.no_gradcheck = "a whole training step (dropout, an optimizer update): every op in it has its own case";
  c.whole_network = true;
  return c;
}

// Why some op cases have no finite-difference check. Central differences with eps 1e-2 are only
// right where the function is smooth within eps of every input, and cost two forward runs per
// input element.
const char* kKinkAtZero =
    "a kink at 0 (relu6: and 6): inputs within eps of it break central differences; "
    "test_ops_grad.cpp checks the activations and batch_norm_relu on inputs kept away from the kinks";
const char* kMaxTies =
    "two values of a window within eps of each other swap the argmax; "
    "test_ops_grad.cpp checks max pooling on distinct values with a finer eps";
const char* kTooLarge =
    "too many elements to perturb one by one in a unit test; a smaller case of the same op "
    "checks its gradient";

}  // namespace

// ---- The cases ---------------------------------------------------------------------------------

std::vector<OpCase> all_op_cases() {
  const Shape img{3, 5, 7, 9};  // N=3, C=5, H=7, W=9: odd everywhere
  std::vector<OpCase> c;

  // Elementwise and reductions.
  c.push_back(op_case("add", {"add"}, {{img}, {img}}, [](auto& x) { return add(x[0], x[1]); }, kExact));
  c.push_back(op_case("mul", {"mul"}, {{img}, {img}}, [](auto& x) { return mul(x[0], x[1]); }, kExact));
  c.push_back(op_case("scale", {"scale"}, {{img}}, [](auto& x) { return scale(x[0], -2.5f); }, kExact));
  c.push_back(op_case("sum", {"sum"}, {{img}}, [](auto& x) { return sum(x[0]); }));
  c.push_back(op_case("mean", {"mean"}, {{{1000003}}}, [](auto& x) { return mean(x[0]); })
                  .without_gradcheck(kTooLarge));
  c.push_back(op_case("mean small", {"mean"}, {{img}}, [](auto& x) { return mean(x[0]); }));

  // Activations (relu6 over [-8, 8] to reach both clips). Each calls activation() underneath.
  c.push_back(op_case("relu", {"relu", "activation"}, {{img}}, [](auto& x) { return relu(x[0]); }, kExact)
                  .without_gradcheck(kKinkAtZero));
  c.push_back(op_case("relu6", {"relu6", "activation"}, {{img, -8, 8}}, [](auto& x) { return relu6(x[0]); }, kExact)
                  .without_gradcheck(kKinkAtZero));
  c.push_back(op_case("leaky_relu", {"leaky_relu", "activation"}, {{img}},
                      [](auto& x) { return leaky_relu(x[0], 0.1f); }, kExact)
                  .without_gradcheck(kKinkAtZero));
  c.push_back(op_case("sigmoid", {"sigmoid", "activation"}, {{img, -6, 6}}, [](auto& x) { return sigmoid(x[0]); }));
  c.push_back(op_case("tanh", {"tanh", "activation"}, {{img, -3, 3}}, [](auto& x) { return fer::tanh(x[0]); }));

  // Dense.
  c.push_back(op_case("matmul", {"matmul"}, {{{7, 9}}, {{9, 5}}}, [](auto& x) { return matmul(x[0], x[1]); },
                      kMatmul, true));
  c.push_back(op_case("matmul 64x300x129", {"matmul"}, {{{64, 300}}, {{300, 129}}},
                      [](auto& x) { return matmul(x[0], x[1]); }, kMatmul, true)
                  .without_gradcheck(kTooLarge));
  c.push_back(op_case("linear", {"linear"}, {{{3, 11}}, {{5, 11}}, {{5}}},
                      [](auto& x) { return linear(x[0], x[1], x[2]); }, kMatmul, true));
  c.push_back(op_case("linear without bias", {"linear"}, {{{6, 2304}}, {{13, 2304}}},
                      [](auto& x) { return linear(x[0], x[1], Tensor()); }, kMatmul, true)
                  .without_gradcheck(kTooLarge));

  // Convolution: stride, padding, groups, dilation, bias, non-square kernels, 1x1.
  auto conv = [&](const std::string& name, Shape x, Shape w, bool bias, Conv2dOptions o,
                  bool small = true) {
    std::vector<Input> in{{x}, {w}};
    if (bias) in.push_back({{w[0]}});
    OpCase k = op_case("conv2d " + name, {"conv2d"}, in, [o, bias](auto& t) {
      return conv2d(t[0], t[1], bias ? t[2] : Tensor(), o);
    }, kMatmul, true);
    c.push_back(small ? k : k.without_gradcheck(kTooLarge));
  };
  conv("3x3 pad 1 + bias", img, {4, 5, 3, 3}, true, conv_opts(1, 1, 1, 1));
  conv("3x3 stride 2 pad 1 + bias", img, {6, 5, 3, 3}, true, conv_opts(2, 2, 1, 1));
  conv("3x3 no padding", img, {4, 5, 3, 3}, false, conv_opts(1, 1, 0, 0));
  conv("groups 2", {3, 6, 7, 9}, {4, 3, 3, 3}, true, conv_opts(1, 1, 1, 1, 1, 2));
  conv("depthwise stride 2", {3, 6, 7, 9}, {6, 1, 3, 3}, false, conv_opts(2, 2, 1, 1, 1, 6));
  conv("depthwise 3x3 pad 1 + bias", {2, 5, 6, 37}, {5, 1, 3, 3}, true, conv_opts(1, 1, 1, 1, 1, 5));
  conv("depthwise stride 2 even, wide", {2, 4, 8, 40}, {4, 1, 3, 3}, true, conv_opts(2, 2, 1, 1, 1, 4));
  conv("depthwise 5x5 pad 2", {1, 3, 9, 20}, {3, 1, 5, 5}, false, conv_opts(1, 1, 2, 2, 1, 3));
  // Stride 1 without padding (the input gradient's taps reach past the grid's first rows on both
  // sides) and a 3x5 kernel padded 1x2 (the taps of the weight gradient in two passes of 9 and 6).
  conv("depthwise 3x3 no padding + bias", {2, 4, 7, 11}, {4, 1, 3, 3}, true, conv_opts(1, 1, 0, 0, 1, 4));
  conv("depthwise 3x5 pad 1x2", {1, 3, 8, 9}, {3, 1, 3, 5}, false, conv_opts(1, 1, 1, 2, 1, 3));
  // A channel multiplier (the grouped products), and a grayscale stem (the direct convolution of
  // depth 9: on one plane it beat the depthwise kernels run as a multiplier of K, 3.6-3.9 against
  // 4.3-5.1 ms at batch 64 on the Zen 1-class EPYC: each input load feeds a whole row of outputs).
  conv("depthwise multiplier 4 + bias", {2, 3, 7, 10}, {12, 1, 3, 3}, true, conv_opts(1, 1, 1, 1, 1, 3));
  conv("depthwise multiplier 2, stride 2", {2, 3, 8, 9}, {6, 1, 3, 3}, false, conv_opts(2, 2, 1, 1, 1, 3));
  conv("grayscale stem 1->8 + bias", {3, 1, 9, 11}, {8, 1, 3, 3}, true, conv_opts(1, 1, 1, 1));
  conv("dilation 2", img, {4, 5, 3, 3}, true, conv_opts(1, 1, 2, 2, 2));
  conv("5x3 stride 2x1 pad 2x0", img, {3, 5, 5, 3}, true, conv_opts(2, 1, 2, 0));
  conv("1x1", img, {7, 5, 1, 1}, true, conv_opts(1, 1, 0, 0));
  // Pixels that fill whole panels of both micro-kernels (48), 24 output channels, no bias: the
  // direct convolution reads the image and writes the output in place (MobileNet's pointwise).
  conv("1x1 16->24, 6x8, no bias", {2, 16, 6, 8}, {24, 16, 1, 1}, false, conv_opts(1, 1, 0, 0), false);
  // Shapes the Winograd path takes under every vector set (conv2d_winograd.h: 3x3 stride 1,
  // >= 64 channels in and out, tiles overhanging the map by at most half, >= 72 output tiles in
  // the batch, 1.5 panels of the widest micro-kernel's 48): maps that are not multiples of 4, padding 0/1/2, channel counts
  // that are not multiples of the micro-kernel's rows, more input channels than one depth block
  // (128), and two layers of fer_vgg_small. Their input gradients are stride-1 convolutions with
  // the channel counts swapped, so the backward runs through the same path.
  conv("3x3 Winograd 64->72, 13x11 pad 1 + bias", {16, 64, 13, 11}, {72, 64, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd 65->64, 10x10 no padding", {48, 65, 10, 10}, {64, 65, 3, 3}, false,
       conv_opts(1, 1, 0, 0), false);
  conv("3x3 Winograd 64->80, 10x12 pad 2 + bias", {16, 64, 10, 12}, {80, 64, 3, 3}, true,
       conv_opts(1, 1, 2, 2), false);
  conv("3x3 Winograd 130->64, 8x8 pad 1", {48, 130, 8, 8}, {64, 130, 3, 3}, false,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd 64->64, 24x24 pad 1 (fer_vgg_small)", {6, 64, 24, 24}, {64, 64, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd 128->128, 12x12 pad 1 (fer_vgg_small)", {22, 128, 12, 12}, {128, 128, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd 128->136, 10x10 pad 1 + bias", {22, 128, 10, 10}, {136, 128, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  // F(2x2, 3x3), where 4x4 tiles would overhang by more than half: 6x6 and 5x5 maps.
  // (216 tiles: the weight gradient's products run in several chunks of tiles on one thread.)
  conv("3x3 Winograd F(2x2) 128->128, 6x6 pad 1", {24, 128, 6, 6}, {128, 128, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd F(2x2) 64->64, 6x6 pad 1 (fer_vgg_small)", {22, 64, 6, 6}, {64, 64, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd F(2x2) 64->70, 5x5 pad 1", {22, 64, 5, 5}, {70, 64, 3, 3}, false,
       conv_opts(1, 1, 1, 1), false);
  // Fewer tiles than one and a half panels (one face's 12x12 layers): the products transposed,
  // tiles as the micro-kernel's rows (9 and 27 tiles: partly empty last panels; 27 in two groups
  // of the input transform under avx2), output channels that end inside a vector (70, and 64 for
  // the input gradient of the second), three images, and more input channels than one depth
  // block of the transposed products (130: two under avx2, four under avx512). The weight
  // gradient takes the direct convolution.
  conv("3x3 Winograd few tiles 64->70, 12x12 pad 1 + bias (one face)", {1, 64, 12, 12}, {70, 64, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("3x3 Winograd few tiles 130->64, 11x10 pad 1", {3, 130, 11, 10}, {64, 130, 3, 3}, false,
       conv_opts(1, 1, 1, 1), false);
  conv("1x1 stride 2", img, {7, 5, 1, 1}, false, conv_opts(2, 2, 0, 0));
  conv("fer first layer", {4, 1, 48, 48}, {32, 1, 3, 3}, false, conv_opts(1, 1, 1, 1), false);
  // One input channel, whose weight gradient sums every tap in one pass per output channel
  // (conv2d_direct.cpp's few taps): no padding with a bias, and a 2x3 kernel of six taps.
  conv("one input channel 3x3 no padding + bias", {3, 1, 13, 11}, {7, 1, 3, 3}, true, conv_opts(1, 1, 0, 0));
  conv("one input channel 2x3 pad 1x0", {2, 1, 9, 10}, {5, 1, 2, 3}, false, conv_opts(1, 1, 1, 0));
  // One image, fewer than the threads: one-face inference, whose direct convolution splits the
  // output channels (and the padding of the input channels) over the threads.
  conv("one image 20->70, 9x11 pad 1 + bias", {1, 20, 9, 11}, {70, 20, 3, 3}, true, conv_opts(1, 1, 1, 1), false);
  conv("one image 64->64, 12x12 pad 1 (fer_vgg_small)", {1, 64, 12, 12}, {64, 64, 3, 3}, false,
       conv_opts(1, 1, 1, 1), false);
  // One image of a small map (one face's last stage), a quarter of the grid's columns dropped
  // (20 input channels: the direct convolution under every set, not Winograd's few tiles).
  conv("one image 20->36, 6x6 pad 1 + bias", {1, 20, 6, 6}, {36, 20, 3, 3}, true, conv_opts(1, 1, 1, 1), false);
  // From 32 channels: one face's 24x24 layers, 36 tiles, whose products run transposed (twelve
  // panels of three tiles, in two groups of the input transform); and 100 tiles of a 40x40 map
  // untransposed, in blocks of tiles, the last partly empty; output channels that are not a
  // multiple of the micro-kernel's rows.
  conv("one image 32->35, 24x24 pad 1, few tiles (Winograd)", {1, 32, 24, 24}, {35, 32, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  conv("one image 32->35, 40x40 pad 1 (Winograd)", {1, 32, 40, 40}, {35, 32, 3, 3}, true,
       conv_opts(1, 1, 1, 1), false);
  // A frozen layer's convolution (Module::freeze_for_inference): the kernels' Winograd transforms
  // made at the first call and kept (engine/backend.h's PackedWeights), read by the second, whose
  // output the case returns. The standard products (A panels), the transposed ones (B panels, 9
  // tiles of 4x4), and F(2x2) transposed: one face's 6x6 layers, and two images of 5x7 (24 tiles)
  // with more input channels than a depth block (the kernels of every panel and block packed side
  // by side). Inference only: nothing takes gradients.
  auto conv_packed = [&](const std::string& name, Shape x, Shape w, bool bias, Conv2dOptions o) {
    std::vector<Input> in{{x, -1, 1, false}, {w, -1, 1, false}};
    if (bias) in.push_back({{w[0]}, -1, 1, false});
    c.push_back(op_case("conv2d packed " + name, {"conv2d"}, in, [o, bias](auto& t) {
      PackedWeights packed;
      Conv2dOptions kept = o;
      kept.packed = &packed;
      conv2d(t[0], t[1], bias ? t[2] : Tensor(), kept);
      return conv2d(t[0], t[1], bias ? t[2] : Tensor(), kept);
    }, kMatmul, true).without_gradcheck("frozen weights take no gradient"));
  };
  conv_packed("3x3 Winograd 64->72, 13x11 pad 1 + bias", {16, 64, 13, 11}, {72, 64, 3, 3}, true, conv_opts(1, 1, 1, 1));
  conv_packed("3x3 Winograd few tiles 64->70, 12x12 pad 1 + bias (one face)", {1, 64, 12, 12}, {70, 64, 3, 3}, true,
              conv_opts(1, 1, 1, 1));
  conv_packed("3x3 Winograd few tiles F(2x2) 64->70, 6x6 pad 1 + bias (one face)", {1, 64, 6, 6}, {70, 64, 3, 3}, true,
              conv_opts(1, 1, 1, 1));
  conv_packed("3x3 Winograd few tiles F(2x2) 180->64, 5x7 pad 1", {2, 180, 5, 7}, {64, 180, 3, 3}, false,
              conv_opts(1, 1, 1, 1));
  // A frozen convolution's fused activation (Conv2dOptions::activation, after conv-bn folding):
  // applied in the kernels' output stores without gradients, as a node of its own with them (the
  // gradient check).
  Conv2dOptions relu6_fused = conv_opts(1, 1, 1, 1), relu_fused = conv_opts(1, 1, 1, 1);
  relu6_fused.activation = BnActivation::ReLU6;
  relu_fused.activation = BnActivation::ReLU;
  c.push_back(op_case("conv2d 3x3 pad 1 + bias, relu6 fused", {"conv2d"}, {{img}, {{4, 5, 3, 3}}, {{4}}},
                      [relu6_fused](auto& t) { return conv2d(t[0], t[1], t[2], relu6_fused); }, kMatmul, true)
                  .without_gradcheck(kKinkAtZero));
  conv_packed("3x3 Winograd few tiles 64->70, 12x12 pad 1 + bias, relu fused (one face, frozen)", {1, 64, 12, 12},
              {70, 64, 3, 3}, true, relu_fused);
  conv("fer 64 channels", {2, 64, 12, 12}, {64, 64, 3, 3}, false, conv_opts(1, 1, 1, 1), false);
  // 160 x 15 = 2400 taps, forward and backward: the direct convolution's passes over the taps
  // (576 each), several and a partial one (3x3 kernels of this many channels go to Winograd).
  conv("160 channels 5x3 pad 2x1, 6x6", {2, 160, 6, 6}, {160, 160, 5, 3}, false, conv_opts(1, 1, 2, 1), false);

  // Pooling (bit-identical by construction).
  auto pool = [&](const std::string& name, Shape x, bool max, Pool2dOptions o) {
    OpCase k = op_case(std::string(max ? "max_pool2d " : "avg_pool2d ") + name,
                       {max ? "max_pool2d" : "avg_pool2d"}, {{x}},
                       [o, max](auto& t) { return max ? max_pool2d(t[0], o) : avg_pool2d(t[0], o); },
                       kExact);
    c.push_back(max ? k.without_gradcheck(kMaxTies) : k);
  };
  pool("2x2", img, true, pool_opts(2, 2, 0));
  pool("3x3 stride 2 pad 1", img, true, pool_opts(3, 2, 1));
  pool("3x3 stride 2 ceil", img, true, pool_opts(3, 2, 0, true));
  pool("3x3 stride 1 pad 1 (overlapping)", img, true, pool_opts(3, 1, 1));
  pool("2x2", img, false, pool_opts(2, 2, 0));
  pool("3x3 stride 2 pad 1", img, false, pool_opts(3, 2, 1));
  pool("3x3 stride 2 pad 1 ceil", img, false, pool_opts(3, 2, 1, true));
  pool("5x5 stride 1 pad 2 (overlapping)", img, false, pool_opts(5, 1, 2));
  c.push_back(op_case("global_avg_pool", {"global_avg_pool"}, {{img}}, [](auto& x) { return global_avg_pool(x[0]); }));

  // Batch normalisation: training (4-d and 2-d; output, gradients and the running buffers,
  // unbiased variance), evaluation (running statistics; Backend::batchnorm_backward_eval). Inputs
  // x, gamma, beta, running_mean, running_var from seeds 1..5; the buffers are updated in place,
  // so they are results too. Frozen gamma and beta (fine-tuning), or an input that needs no
  // gradient (the first layer), leave those gradients out: the kernels skip them. The same cases
  // again for batch_norm_relu and batch_norm_relu6 (the kernels' fused activation), whose kinks
  // (at 0, and 6) leave finite differences to test_ops_grad.cpp (which also requires them to
  // equal relu(batch_norm(x)) and relu6(batch_norm(x)) bit for bit). ReLU6's cases scale and
  // shift z (gamma in [3, 5], beta in [1, 3]) so that it crosses both 0 and 6.
  struct BnGrads {
    bool x = true, params = true;
  };
  auto bn = [&](const std::string& name, Shape x, bool training, bool small = true,
                BnGrads want = {}, BnActivation act = BnActivation::None) {
    const int64_t C = x[1];
    const bool relu6 = act == BnActivation::ReLU6;
    std::vector<Input> in{{x}, {{C}, relu6 ? 3.0f : 0.5f, relu6 ? 5.0f : 1.5f}, {{C}, relu6 ? 1.0f : -1.0f, relu6 ? 3.0f : 1.0f},
                          {{C}, -0.5f, 0.5f, false}, {{C}, 0.5f, 2.0f, false}};
    in[0].grad = want.x;
    in[1].grad = in[2].grad = want.params;
    const OpFn fn = [training, act](const std::vector<Tensor>& t) {
      Tensor running_mean = t[3], running_var = t[4];  // handles: updates reach the inputs
      auto op = act == BnActivation::ReLU ? batch_norm_relu : act == BnActivation::ReLU6 ? batch_norm_relu6 : batch_norm;
      return op(t[0], t[1], t[2], running_mean, running_var, training, 0.1f, 1e-5f);
    };
    const std::string op = act == BnActivation::ReLU ? "batch_norm_relu" : relu6 ? "batch_norm_relu6" : "batch_norm";
    OpCase k;
    k.name = op + " " + name;
    k.ops = {op};
    k.run = [in, fn](Device dev) {
      const std::vector<Tensor> t = make_inputs(in, dev, 1);
      Tensor y = fn(t);
      Generator pg(999);
      sum(mul(y, Tensor::uniform(y.shape(), -1, 1, pg, dev))).backward();
      Named r{{"output", y.detach()}};
      const char* grad_names[] = {"dx", "dgamma", "dbeta"};
      for (int i = 0; i < 3; ++i)
        if (t[i].requires_grad()) r.push_back({grad_names[i], t[i].grad()});
      r.push_back({"running_mean", t[3]});
      r.push_back({"running_var", t[4]});
      return r;
    };
    k.inputs = in;
    k.fn = fn;
    k.first_seed = 1;
    c.push_back(act != BnActivation::None ? k.without_gradcheck(kKinkAtZero)
                                          : small ? k : k.without_gradcheck(kTooLarge));
  };
  bn("train [3, 5, 7, 9]", img, true);
  bn("train [6, 5]", {6, 5}, true);
  bn("train [64, 32, 6, 6]", {64, 32, 6, 6}, true, false);
  bn("train [3, 5, 7, 9], gamma and beta frozen", img, true, true, {.x = true, .params = false});
  bn("eval [3, 5, 7, 9]", img, false);
  bn("eval [6, 5]", {6, 5}, false);
  bn("eval [64, 32, 6, 6]", {64, 32, 6, 6}, false, false);
  for (BnActivation act : {BnActivation::ReLU, BnActivation::ReLU6}) {
    bn("train [3, 5, 7, 9]", img, true, true, {}, act);
    bn("train [6, 5]", {6, 5}, true, true, {}, act);
    bn("train [64, 32, 6, 6]", {64, 32, 6, 6}, true, false, {}, act);
    bn("train [3, 5, 7, 9], gamma and beta frozen", img, true, true, {.x = true, .params = false}, act);
    bn("eval [3, 5, 7, 9]", img, false, true, {}, act);
    bn("eval [64, 32, 6, 6]", {64, 32, 6, 6}, false, false, {}, act);
  }
  bn("eval [3, 5, 7, 9], gamma and beta frozen", img, false, true, {.x = true, .params = false});
  bn("eval [3, 5, 7, 9], input without gradient", img, false, true, {.x = false, .params = true});

  // Dropout: the same counter-based masks on every backend (and, reseeded before every forward
  // run, the same mask for every finite difference).
  c.push_back(op_case("dropout p=0.3", {"dropout"}, {{img}}, [](auto& x) { return dropout(x[0], 0.3f, true); }, kExact));
  c.push_back(op_case("dropout p=0.5 large", {"dropout"}, {{{3, 70001}}},
                      [](auto& x) { return dropout(x[0], 0.5f, true); }, kExact)
                  .without_gradcheck(kTooLarge));

  // Softmax family and losses (weights, label smoothing).
  c.push_back(op_case("softmax", {"softmax"}, {{{6, 7}, -4, 4}}, [](auto& x) { return softmax(x[0]); }));
  c.push_back(op_case("log_softmax", {"log_softmax"}, {{{6, 7}, -4, 4}}, [](auto& x) { return log_softmax(x[0]); }));
  c.push_back(op_case("softmax 1000 classes", {"softmax"}, {{{5, 1000}, -4, 4}}, [](auto& x) { return softmax(x[0]); }));
  c.push_back(op_case("nll_loss", {"nll_loss"}, {{{9, 7}, -4, 0}, {{9}, 0, 0, false, 7}},
                      [](auto& x) { return nll_loss(x[0], x[1]); }));
  c.push_back(op_case("cross_entropy weights + smoothing", {"cross_entropy"},
                      {{{9, 7}, -3, 3}, {{9}, 0, 0, false, 7}, {{7}, 0.2f, 2.0f, false}},
                      [](auto& x) {
                        CrossEntropyOptions o;
                        o.class_weights = x[2];
                        o.label_smoothing = 0.1f;
                        return cross_entropy(x[0], x[1], o);
                      }));
  c.push_back(op_case("cross_entropy smoothing, batch 300", {"cross_entropy"},
                      {{{300, 7}, -3, 3}, {{300}, 0, 0, false, 7}},
                      [](auto& x) {
                        CrossEntropyOptions o;
                        o.label_smoothing = 0.2f;
                        return cross_entropy(x[0], x[1], o);
                      }));

  // Shape ops.
  c.push_back(op_case("concat channels", {"concat"}, {{{3, 2, 4, 5}}, {{3, 3, 4, 5}}},
                      [](auto& x) { return concat({x[0], x[1]}, 1); }, kExact));
  c.push_back(op_case("concat batch", {"concat"}, {{{2, 3, 4}}, {{3, 3, 4}}},
                      [](auto& x) { return concat({x[0], x[1]}, 0); }, kExact));
  c.push_back(op_case("concat last dim", {"concat"}, {{{2, 3, 4}}, {{2, 3, 1}}, {{2, 3, 6}}},
                      [](auto& x) { return concat({x[0], x[1], x[2]}, -1); }, kExact));
  c.push_back(op_case("resize_bilinear up", {"resize_bilinear"}, {{{2, 3, 5, 7}}},
                      [](auto& x) { return resize_bilinear(x[0], 11, 13); }));
  c.push_back(op_case("resize_bilinear down", {"resize_bilinear"}, {{{2, 3, 9, 11}}},
                      [](auto& x) { return resize_bilinear(x[0], 4, 3); }));
  c.push_back(op_case("pad2d", {"pad2d"}, {{img}}, [](auto& x) { return pad2d(x[0], 1, 2, 3, 0); }, kExact));
  c.push_back(op_case("reshape, flatten, slice_batch", {"Tensor::reshape", "Tensor::flatten", "Tensor::slice_batch"}, {{img}},
                      [](auto& x) { return x[0].slice_batch(1, 3).flatten(1).reshape({-1, 9}); }, kExact));

  // Kernels no op reaches with these arguments.
  c.push_back(kernel_case("copy_2d accumulate, sum_rows accumulate, axpby, fill",
                          {"Backend::copy_2d", "Backend::sum_rows", "Backend::axpby", "Backend::fill"}, [](Device dev, Backend& be) {
    Generator g(3);
    Tensor src = Tensor::uniform({6, 10}, -1, 1, g, dev), dst = Tensor::uniform({6, 8}, -1, 1, g, dev);
    be.copy_2d(src.data() + 1, 10, dst.data() + 2, 8, 6, 5, true);
    Tensor bias = Tensor::uniform({10}, -1, 1, g, dev);
    be.sum_rows(src.data(), bias.data(), 6, 10, true);
    Tensor y = Tensor::uniform({60}, -1, 1, g, dev);
    be.axpby(0.7f, src.data(), -1.3f, y.data(), 60);
    Tensor f = Tensor::empty({13}, dev);
    be.fill(f.data(), 13, -2.25f);
    return Named{{"copy_2d", dst}, {"sum_rows", bias}, {"axpby", y}, {"fill", f}};
  }));
  c.push_back(kernel_case("sum and sum_squares, 3 million values", {"Backend::sum", "Backend::sum_squares"},
                          [](Device dev, Backend& be) {
    Generator g(4);
    Tensor x = Tensor::uniform({3000017}, -1, 1, g, dev);
    return Named{{"sum", Tensor::scalar(static_cast<float>(be.sum(x.data(), x.numel())))},
                 {"sum_squares", Tensor::scalar(static_cast<float>(be.sum_squares(x.data(), x.numel())))}};
  }));

  // Optimizers (fused update kernels) and gradient clipping.
  c.push_back(optimizer_case("SGD plain", {"SGD"}, [](std::vector<Tensor> p) { return std::make_unique<SGD>(p, 0.1f); }));
  c.push_back(optimizer_case("SGD momentum, nesterov, weight decay", {"SGD"}, [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, 0.1f, 0.9f, 0.0f, 1e-2f, true);
  }));
  c.push_back(optimizer_case("SGD momentum, dampening", {"SGD"}, [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, 0.05f, 0.8f, 0.3f, 0.0f, false);
  }));
  c.push_back(optimizer_case("Adam with L2", {"Adam"}, [](std::vector<Tensor> p) {
    return std::make_unique<Adam>(p, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f);
  }));
  c.push_back(optimizer_case("AdamW, clip_grad_norm", {"AdamW", "clip_grad_norm"}, [](std::vector<Tensor> p) {
    return std::make_unique<AdamW>(p, 1e-2f, 0.9f, 0.99f, 1e-8f, 5e-2f);
  }, 0.5f));

  // Whole networks: the ops composed as training composes them, where rounding differences
  // compound (and, for AdamW, are amplified by the per-element normalisation).
  c.push_back(network_case("fer_vgg_small SGD step",
                           {"conv2d", "batch_norm_relu", "relu", "max_pool2d", "dropout", "linear",
                            "cross_entropy", "SGD"},
                           fer_vgg_small_step, kNetwork));
  c.push_back(network_case("fer_vgg_small AdamW", {"AdamW"}, fer_vgg_small_adamw, Tolerance{1e-6, 1e-5, 1e-4}));
  return c;
}

}  // namespace fer::testing
