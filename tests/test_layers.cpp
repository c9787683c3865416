// Layers and the Module API: PyTorch-style names, state dicts, modes, gradient checks of every
// layer through its parameters, and a small CNN that must overfit one batch.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "engine/autograd.h"
#include "layers/layers.h"
#include "models/registry.h"
#include "kernels/cpu/isa.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_cases.h"

using namespace fer;
using namespace fer::testing;

namespace {
std::shared_ptr<Sequential> tiny_cnn() {
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 4, 3, 1, 1, false), std::make_shared<BatchNorm2d>(4), ReLU(),
      std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(), std::make_shared<Dropout>(0.1f),
      std::make_shared<Linear>(4 * 4 * 4, 3)});
}
}  // namespace

TEST_CASE("parameter and buffer names follow PyTorch") {
  auto net = tiny_cnn();
  std::vector<std::string> names;
  for (auto& [name, t] : net->named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "6.weight", "6.bias"});
  StateDict sd = net->state_dict();
  CHECK(sd.count("1.running_mean"));
  CHECK(sd.count("1.running_var"));
  CHECK(sd.count("1.num_batches_tracked"));
  CHECK(sd.at("0.weight").shape() == Shape{4, 1, 3, 3});
  CHECK(net->parameter_count() == 4 * 9 + 4 + 4 + 64 * 3 + 3);

  auto model = create_model("fer_vgg_small");
  auto params = model->named_parameters();
  CHECK(params.front().first == "features.0.weight");
  CHECK(params.back().first == "classifier.3.bias");
  // convs 1,170,720 + BN 1,920 + dense 590,080 + 1,799: the 1.76 M of the reference network
  CHECK(model->parameter_count() == 1764519);
  CHECK(forward_flops(*model, 1, 48) == doctest::Approx(0.236e9).epsilon(0.01));
}

TEST_CASE("the larger FER CNNs: parameters by formula, logits for 48 and 40 pixel faces, gradients everywhere") {
  // fer_vgg (Khaireddin and Chen): convs 9,404,992 (incl. BN 3,840) + dense on 512 x side^2.
  const int64_t vgg_convs = 9*64 + 9*64*64 + 9*64*128 + 9*128*128 + 9*128*256 + 9*256*256 +
                            9*256*512 + 9*512*512 + 2 * 2 * (64 + 128 + 256 + 512);
  auto dense = [](int64_t in) { return in * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 7 + 7; };
  ModelConfig forty;
  forty.input_size = 40;
  CHECK(create_model("fer_vgg")->parameter_count() == vgg_convs + dense(512 * 3 * 3));
  CHECK(create_model("fer_vgg", forty)->parameter_count() == vgg_convs + dense(512 * 2 * 2));
  // fer_resnet18: stem 576 + 128 BN; per layer two blocks of 2 convs + 2 BNs; 1x1 shortcuts from
  // layer 2 on; dense 512 x 7 + 7.
  int64_t resnet = 9 * 64 + 2 * 64, in = 64;
  for (int64_t w : {64, 128, 256, 512}) {
    resnet += 9 * in * w + 9 * w * w + 4 * w + 9 * w * w + 9 * w * w + 4 * w;
    if (w != in) resnet += in * w + 2 * w;
    in = w;
  }
  auto net = create_model("fer_resnet18");
  CHECK(net->parameter_count() == resnet + 512 * 7 + 7);

  for (const auto& [name, size] : std::vector<std::pair<std::string, int64_t>>{{"fer_resnet18", 48}, {"fer_resnet18", 40}, {"fer_vgg", 40}}) {
    INFO(name << " at " << size);
    ModelConfig c;
    c.input_size = size;
    manual_seed(2);
    auto model = create_model(name, c);
    Generator gen(3);
    const Tensor x = Tensor::uniform({2, 1, size, size}, 0.0f, 1.0f, gen);
    const Tensor logits = model->forward(x);
    CHECK(logits.shape() == Shape{2, 7});
    cross_entropy(logits, Tensor::from_vector({2}, {1, 4})).backward();
    for (const auto& [pname, p] : model->named_parameters()) {
      INFO(pname);
      REQUIRE(p.grad().defined());
      double norm = 0;
      for (float g : p.grad().to_vector()) norm += static_cast<double>(g) * g;
      CHECK(norm > 0);
    }
  }
}

TEST_CASE("state dict round trip, and load errors naming the tensor") {
  manual_seed(1);
  auto a = tiny_cnn();
  manual_seed(2);
  auto b = tiny_cnn();
  CHECK(a->state_dict().at("0.weight").to_vector() != b->state_dict().at("0.weight").to_vector());
  b->load_state_dict(a->state_dict());
  for (auto& [name, t] : a->state_dict()) CHECK(b->state_dict().at(name).to_vector() == t.to_vector());

  StateDict missing = a->state_dict();
  missing.erase("6.bias");
  CHECK_THROWS_WITH_AS(b->load_state_dict(missing), doctest::Contains("missing tensor '6.bias'"), fer::Error);
  StateDict extra = a->state_dict();
  extra["7.weight"] = Tensor::zeros({1});
  CHECK_THROWS_WITH_AS(b->load_state_dict(extra), doctest::Contains("unexpected tensor '7.weight'"), fer::Error);
  StateDict wrong = a->state_dict();
  wrong["6.weight"] = Tensor::zeros({3, 65});
  CHECK_THROWS_WITH_AS(b->load_state_dict(wrong),
                       doctest::Contains("'6.weight' has shape [3, 65] but the model expects [3, 64]"),
                       fer::Error);
  b->load_state_dict(missing, /*strict=*/false);  // non-strict loads what matches
}

TEST_CASE("train/eval switch dropout and batchnorm; freezing stops gradients") {
  auto net = tiny_cnn();
  Tensor x = random_input({2, 1, 8, 8}, 5, false);
  net->eval();
  CHECK(!net->is_training());
  Tensor y1 = (*net)(x), y2 = (*net)(x);
  CHECK(y1.to_vector() == y2.to_vector());  // deterministic in eval
  auto bn = std::dynamic_pointer_cast<BatchNorm>((*net)[1]);
  const auto rm_before = bn->running_mean.to_vector();
  (*net)(x);
  CHECK(bn->running_mean.to_vector() == rm_before);  // eval leaves running stats alone
  net->train();
  (*net)(x);
  CHECK(bn->running_mean.to_vector() != rm_before);
  CHECK(bn->num_batches_tracked.item() == 1.0f);

  (*net)[0]->set_requires_grad(false);  // freeze the first conv
  CHECK(net->parameters(true).size() == 4);
  sum((*net)(x)).backward();
  CHECK(!std::dynamic_pointer_cast<Conv2d>((*net)[0])->weight.grad().defined());
  CHECK(std::dynamic_pointer_cast<Linear>((*net)[6])->weight.grad().defined());
}

// freeze_for_inference: the logits of eval mode (the kept Winograd transforms compute what the
// plain call computes, up to the order of float sums; one face's 6x6 layers switch from the direct
// convolution to F(2x2)), for one face and a batch, at the call that makes the packed forms and
// the one that reads them; load_state_dict afterwards drops the forms (the logits follow the new
// weights); training a frozen model fails, naming the packed weights.
TEST_CASE("freeze_for_inference: eval's logits, packed weights dropped on reload, no training") {
  manual_seed(3);
  auto model = create_model("fer_vgg_small");
  manual_seed(4);
  auto other = create_model("fer_vgg_small");
  model->eval();
  other->eval();
  const Tensor face = random_input({1, 1, 48, 48}, 7, false), batch = random_input({5, 1, 48, 48}, 8, false);
  const Tensor ref_face = (*model)(face), ref_batch = (*model)(batch), other_face = (*other)(face);
  const Tolerance tol{1e-5, 1e-4, 1e-3};  // a whole network (kNetwork)
  model->freeze_for_inference();
  CHECK(!model->is_training());
  CHECK(model->parameters(/*trainable_only=*/true).empty());
  for (int call = 0; call < 2; ++call) {
    INFO("call " << call);
    CHECK(compare_values(ref_face, (*model)(face), tol).count == 0);
    CHECK(compare_values(ref_batch, (*model)(batch), tol).count == 0);
  }
  size_t packed_bytes = 0;
  {
    ForwardHook hook([&](const Module& m, const Tensor&, const Tensor&) {
      if (const auto* conv = dynamic_cast<const Conv2d*>(&m)) packed_bytes += conv->packed_weight_bytes();
    });
    (*model)(face);
  }
  if (cpu::active_isa() != cpu::Isa::Scalar) CHECK(packed_bytes > 0);  // the scalar set has no Winograd path
  else MESSAGE("scalar kernels: no Winograd path, nothing packed");

  model->load_state_dict(other->state_dict());
  CHECK(compare_values(other_face, (*model)(face), tol).count == 0);

  model->train();
  model->set_requires_grad(true);
  CHECK(throws_naming([&] { (*model)(batch); }, "packed"));
}

namespace {
// Statistics and affine parameters away from BatchNorm's initial 0/1, so that a folding that
// dropped any term of the batchnorm's map would show.
void randomize_batchnorms(Module& model, uint64_t seed) {
  Generator g(seed);
  NoGradGuard no_grad;
  for (auto& [name, t] : model.state_dict()) {
    if (name.find("running_mean") != std::string::npos || name.find(".bias") != std::string::npos)
      t.copy_(Tensor::uniform(t.shape(), -0.5f, 0.5f, g));
    else if (name.find("running_var") != std::string::npos || (name.find(".weight") != std::string::npos && t.dim() == 1))
      t.copy_(Tensor::uniform(t.shape(), 0.5f, 2.0f, g));
  }
}
}  // namespace

// Conv-BN folding (Conv2d::fold_batchnorm): a frozen Sequential computes eval mode's outputs
// with each convolution absorbing the batchnorm after it and its ReLU or ReLU6 (a conv with a
// bias, one without, a 1x1 one with no activation after its batchnorm; a batchnorm after a pool
// stays itself); a hook sees every module again; reloaded statistics are folded anew; a model
// put back in training mode folds nothing.
TEST_CASE("freeze_for_inference folds each convolution's batchnorm and activation") {
  auto make = [] {
    return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(3, 8, 3, 1, 1, true), std::make_shared<BatchNorm2d>(8), ReLU(),
        std::make_shared<Conv2d>(8, 16, 3, 2, 1, false), std::make_shared<BatchNorm2d>(16), ReLU6(),
        std::make_shared<Conv2d>(16, 4, 1, 1, 0, false), std::make_shared<BatchNorm2d>(4),
        std::make_shared<MaxPool2d>(2), std::make_shared<BatchNorm2d>(4), ReLU()});
  };
  manual_seed(5);
  auto model = make();
  randomize_batchnorms(*model, 6);
  manual_seed(7);
  auto other = make();
  randomize_batchnorms(*other, 8);
  model->eval();
  other->eval();
  Generator g(9);
  const Tensor x = Tensor::uniform({2, 3, 12, 12}, -4.0f, 4.0f, g);  // some outputs above 6
  const Tensor ref = (*model)(x), ref_other = (*other)(x);
  const Tolerance tol{1e-5, 1e-4, 1e-3};
  model->freeze_for_inference();
  auto conv = [&](size_t i) { return std::dynamic_pointer_cast<Conv2d>((*model)[i]); };
  CHECK(conv(0)->absorbed_layers() == 2);
  CHECK(conv(3)->absorbed_layers() == 2);
  CHECK(conv(6)->absorbed_layers() == 1);
  for (int call = 0; call < 2; ++call) {
    INFO("call " << call);
    CHECK(compare_values(ref, (*model)(x), tol).count == 0);
  }
  {
    std::vector<std::string> seen;
    ForwardHook hook([&](const Module& m, const Tensor&, const Tensor&) { seen.push_back(m.describe()); });
    CHECK(conv(0)->absorbed_layers() == 0);
    CHECK(compare_values(ref, (*model)(x), tol).count == 0);
    CHECK(seen.size() == model->size() + 1);  // every layer and the Sequential itself
  }
  model->load_state_dict(other->state_dict());
  CHECK(compare_values(ref_other, (*model)(x), tol).count == 0);
  model->train();
  CHECK(conv(0)->absorbed_layers() == 0);
}

TEST_CASE("Sequential fuses a BatchNorm and its ReLU, and runs them apart for a hook") {
  // Same outputs and gradients either way; the fused run leaves num_batches_tracked counted once
  // per BatchNorm; a hook sees the BatchNorm's own output (negative values) and the ReLU's.
  auto run = [](bool hooked) {
    manual_seed(3);
    auto model = tiny_cnn();
    Generator g(4);
    Tensor x = Tensor::uniform({3, 1, 8, 8}, -1.0f, 1.0f, g);
    std::vector<std::string> seen;
    float bn_min = 0.0f;
    Tensor y;
    {
      std::optional<ForwardHook> hook;
      if (hooked)
        hook.emplace([&](const Module& m, const Tensor&, const Tensor& out) {
          seen.push_back(m.describe());
          if (dynamic_cast<const BatchNorm*>(&m))
            for (float v : out.to_vector()) bn_min = std::min(bn_min, v);
        });
      y = (*model)(x);
    }
    sum(y).backward();
    std::vector<float> grads;
    for (const Tensor& p : model->parameters()) {
      const std::vector<float> gp = p.grad().to_vector();
      grads.insert(grads.end(), gp.begin(), gp.end());
    }
    const auto* bn = dynamic_cast<const BatchNorm*>(model->child("1").get());
    CHECK(bn->num_batches_tracked.to_vector()[0] == 1.0f);
    return std::tuple(y.to_vector(), grads, seen, bn_min);
  };
  const auto [y_fused, g_fused, seen_fused, min_fused] = run(false);
  const auto [y_apart, g_apart, seen_apart, min_apart] = run(true);
  CHECK(y_fused == y_apart);
  CHECK(g_fused == g_apart);
  CHECK(std::count(seen_apart.begin(), seen_apart.end(), "ReLU()") == 1);
  CHECK(min_apart < 0.0f);
}

TEST_CASE("gradient check of every layer through its parameters") {
  manual_seed(3);
  auto check_layer = [](const std::string& name, std::shared_ptr<Module> layer, Shape in_shape) {
    Tensor x = random_input(in_shape, 11);
    std::vector<Tensor> inputs{x};
    for (Tensor& p : layer->parameters()) inputs.push_back(p);
    gradcheck(name, [layer](auto& in) { return layer->forward(in[0]); }, inputs);
  };
  check_layer("Conv2d", std::make_shared<Conv2d>(2, 3, 3, 2, 1), {2, 2, 5, 5});
  check_layer("Conv2d depthwise", std::make_shared<Conv2d>(Conv2dConfig{4, 4, 3, 1, 1, 4, 1, true}), {1, 4, 4, 4});
  check_layer("BatchNorm2d", std::make_shared<BatchNorm2d>(3), {3, 3, 2, 2});
  check_layer("BatchNorm1d", std::make_shared<BatchNorm1d>(4), {5, 4});
  check_layer("Linear", std::make_shared<Linear>(5, 3), {4, 5});
  check_layer("Dropout", std::make_shared<Dropout>(0.4f), {4, 6});
  check_layer("AvgPool2d", std::make_shared<AvgPool2d>(2), {1, 2, 4, 4});
  check_layer("GlobalAvgPool", std::make_shared<GlobalAvgPool>(), {2, 3, 3, 3});
  check_layer("Tanh", Tanh(), {2, 5});
  check_layer("Sigmoid", Sigmoid(), {2, 5});
  check_layer("LeakyReLU", LeakyReLU(0.2f), {2, 5});
  check_layer("Flatten", std::make_shared<Flatten>(), {2, 2, 2, 2});
  check_layer("Sequential(conv, bn, relu6, pool, flatten, linear)",
              std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
                  std::make_shared<Conv2d>(1, 2, 3, 1, 1), std::make_shared<BatchNorm2d>(2), ReLU6(),
                  std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
                  std::make_shared<Linear>(8, 3)}),
              {3, 1, 4, 4});
}

TEST_CASE("a small CNN overfits one batch to 100% accuracy") {
  manual_seed(4);
  auto net = tiny_cnn();
  Generator gen(9);
  Tensor x = Tensor::normal({12, 1, 8, 8}, 0.0f, 1.0f, gen);
  std::vector<float> labels(12);
  for (int i = 0; i < 12; ++i) labels[i] = static_cast<float>(i % 3);
  Tensor y = Tensor::from_vector({12}, labels);
  auto params = net->parameters();
  std::vector<Tensor> momentum;
  for (auto& p : params) momentum.push_back(Tensor::zeros(p.shape()));
  float first_loss = 0, last_loss = 0;
  for (int step = 0; step < 150; ++step) {
    net->zero_grad();
    Tensor loss = cross_entropy((*net)(x), y);
    loss.backward();
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
    NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i)
      backend(Device::CPU).sgd_update(params[i].data(), params[i].grad().data(), momentum[i].data(),
                                      params[i].numel(), SgdHyper{0.05f, 0.9f, 0.0f, 0.0f, false, step == 0});
  }
  net->eval();
  NoGradGuard no_grad;
  const std::vector<float> logits = (*net)(x).to_vector();
  int correct = 0;
  for (int i = 0; i < 12; ++i) {
    int best = 0;
    for (int c = 1; c < 3; ++c)
      if (logits[i * 3 + c] > logits[i * 3 + best]) best = c;
    correct += best == static_cast<int>(labels[i]);
  }
  CHECK(last_loss < 0.1f * first_loss);
  CHECK(correct == 12);
}
