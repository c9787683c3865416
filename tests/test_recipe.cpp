// The training recipe's parts: mixup and cutmix (data/batch_mix.h), the mixed-label and
// distillation losses (apps/training/losses.h), the EMA and SWA weight averages and the batchnorm
// refresh (apps/training/weight_average.h), and all of them inside fer_train's loop, resumed.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "apps/training/checkpoint.h"
#include "apps/training/evaluate.h"
#include "apps/training/losses.h"
#include "apps/training/trainer.h"
#include "apps/training/weight_average.h"
#include "data/batch_mix.h"
#include "data/preprocess.h"
#include "data/synthetic.h"
#include "engine/autograd.h"
#include "layers/layers.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {
Tensor ramp(const Shape& shape, float start, float step) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + step * static_cast<float>(i);
  return Tensor::from_vector(shape, v);
}
}  // namespace

TEST_CASE("Beta(a, a) samples have the distribution's mean and variance") {
  for (float a : {0.2f, 1.0f, 3.0f}) {
    Generator gen(11);
    const int n = 40000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = data::sample_symmetric_beta(a, gen);
      REQUIRE((x >= 0 && x <= 1));
      s += x, s2 += x * x;
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
    CHECK(var == doctest::Approx(1.0 / (4.0 * (2.0 * a + 1.0))).epsilon(0.04));  // 1/(4(2a+1))
  }
}

TEST_CASE("a batch mix is a seeded permutation; cutmix's lambda is the share left unpasted") {
  data::MixOptions off;
  CHECK(!data::draw_batch_mix(off, 8, 48, 48, 1, 0).active());
  data::MixOptions never;
  never.mixup_alpha = 1.0f;
  never.prob = 0.0f;
  CHECK(!data::draw_batch_mix(never, 8, 48, 48, 1, 0).active());

  data::MixOptions both;
  both.mixup_alpha = 0.4f;
  both.cutmix_alpha = 1.0f;
  int mixups = 0, cutmixes = 0;
  for (uint64_t step = 0; step < 200; ++step) {
    const data::BatchMix m = data::draw_batch_mix(both, 16, 48, 40, 7, step);
    REQUIRE(m.active());
    std::vector<int64_t> sorted = m.partner;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> ids(16);
    std::iota(ids.begin(), ids.end(), 0);
    CHECK(sorted == ids);
    CHECK((m.lambda >= 0 && m.lambda <= 1));
    if (m.kind == data::BatchMix::Kind::CutMix) {
      ++cutmixes;
      CHECK((0 <= m.top && m.top <= m.bottom && m.bottom <= 48 && 0 <= m.left && m.left <= m.right && m.right <= 40));
      const double pasted = static_cast<double>((m.bottom - m.top) * (m.right - m.left)) / (48.0 * 40.0);
      CHECK(m.lambda == doctest::Approx(1.0 - pasted));
    } else {
      ++mixups;
    }
    const data::BatchMix again = data::draw_batch_mix(both, 16, 48, 40, 7, step);
    CHECK((again.partner == m.partner && again.lambda == m.lambda && again.top == m.top));
  }
  CHECK(mixups > 60);  // equal odds
  CHECK(cutmixes > 60);
}

TEST_CASE("mixup blends every pixel; cutmix pastes exactly its box") {
  const Tensor x = ramp({3, 1, 4, 5}, 0.0f, 1.0f);
  data::BatchMix m;
  m.kind = data::BatchMix::Kind::Mixup;
  m.lambda = 0.25f;
  m.partner = {2, 0, 1};
  const std::vector<float> in = x.to_vector(), mixed = data::apply_batch_mix(m, x).to_vector();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 20; ++k)
      CHECK(mixed[i * 20 + k] == doctest::Approx(0.25f * in[i * 20 + k] + 0.75f * in[m.partner[i] * 20 + k]));

  m.kind = data::BatchMix::Kind::CutMix;
  m.top = 1, m.bottom = 3, m.left = 2, m.right = 5;
  const std::vector<float> cut = data::apply_batch_mix(m, x).to_vector();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t c = 0; c < 5; ++c) {
        const bool inside = r >= 1 && r < 3 && c >= 2 && c < 5;
        CHECK(cut[i * 20 + r * 5 + c] == in[(inside ? m.partner[i] : i) * 20 + r * 5 + c]);
      }
  const Tensor labels = Tensor::from_vector({3}, {4, 5, 6});
  CHECK(data::partner_labels(m, labels).to_vector() == std::vector<float>{6, 4, 5});
}

TEST_CASE("the mixed-label loss is the cross-entropy against the mixed one-hot labels") {
  const Tensor z = ramp({3, 4}, -1.0f, 0.37f);
  const Tensor y = Tensor::from_vector({3}, {0, 3, 1}), y2 = Tensor::from_vector({3}, {2, 3, 0});
  const float lam = 0.3f, eps = 0.1f;
  CrossEntropyOptions o;
  o.label_smoothing = eps;
  const float loss = mixed_cross_entropy(z, y, y2, lam, o).item();
  // By hand: q = lam smooth(onehot y) + (1 - lam) smooth(onehot y'), loss = mean_i -sum_c q log p.
  const std::vector<float> zv = z.to_vector(), yv = y.to_vector(), y2v = y2.to_vector();
  double expected = 0;
  for (int i = 0; i < 3; ++i) {
    double mx = -1e30, se = 0;
    for (int c = 0; c < 4; ++c) mx = std::max(mx, static_cast<double>(zv[i * 4 + c]));
    for (int c = 0; c < 4; ++c) se += std::exp(zv[i * 4 + c] - mx);
    for (int c = 0; c < 4; ++c) {
      const double q = lam * ((1 - eps) * (c == yv[i]) + eps / 4) + (1 - lam) * ((1 - eps) * (c == y2v[i]) + eps / 4);
      expected -= q * (zv[i * 4 + c] - mx - std::log(se));
    }
  }
  CHECK(loss == doctest::Approx(expected / 3).epsilon(1e-5));
}

TEST_CASE("distillation: zero at the teacher's logits, gradient T (softmax(z/T) - p) / N") {
  const float T = 3.0f;
  const Tensor t = ramp({2, 5}, 0.5f, -0.21f);
  Tensor teacher_probs;
  {
    NoGradGuard ng;
    teacher_probs = softmax(scale(t, 1.0f / T));
  }
  CHECK(distillation_loss(t, teacher_probs, T).item() == doctest::Approx(0.0).epsilon(1e-6));

  Tensor z = ramp({2, 5}, -0.3f, 0.17f);
  z.set_requires_grad(true);
  const Tensor loss = distillation_loss(z, teacher_probs, T);
  CHECK(loss.item() > 0);
  loss.backward();
  const std::vector<float> g = z.grad().to_vector(), p = teacher_probs.to_vector();
  const std::vector<float> q = softmax(scale(z.detach(), 1.0f / T)).to_vector();
  for (size_t k = 0; k < g.size(); ++k) CHECK(g[k] == doctest::Approx(T * (q[k] - p[k]) / 2).epsilon(1e-4));
}

TEST_CASE("EMA and SWA average the weights; swapping an average in is undone") {
  Linear layer(2, 1);
  layer.weight.copy_(Tensor::from_vector({1, 2}, {1, 2}));
  layer.bias.copy_(Tensor::from_vector({1}, {0}));
  WeightAverage ema(layer), swa(layer);
  // Step 0: d = min(0.9, 1/10) = 0.1; step 1: d = min(0.9, 2/11).
  layer.weight.copy_(Tensor::from_vector({1, 2}, {3, 2}));
  ema.update_ema(layer, 0.9f, 0);
  CHECK(ema.state().at("weight").to_vector()[0] == doctest::Approx(0.1 * 1 + 0.9 * 3));
  layer.weight.copy_(Tensor::from_vector({1, 2}, {5, 2}));
  ema.update_ema(layer, 0.9f, 1);
  CHECK(ema.state().at("weight").to_vector()[0] == doctest::Approx((2.0 / 11) * 2.8 + (9.0 / 11) * 5));
  CHECK(ema.state().at("weight").to_vector()[1] == doctest::Approx(2.0));

  for (float w : {1.0f, 4.0f, 10.0f}) {
    layer.weight.copy_(Tensor::from_vector({1, 2}, {w, 0}));
    swa.add_snapshot(layer);
  }
  CHECK(swa.count() == 3);
  CHECK(swa.state().at("weight").to_vector()[0] == doctest::Approx(5.0));
  {
    SwappedWeights swap(layer, swa.state());
    CHECK(layer.weight.to_vector()[0] == doctest::Approx(5.0));
  }
  CHECK(layer.weight.to_vector()[0] == 10.0f);

  WeightAverage restored(layer);
  CHECK(restored.from_tensors(swa.to_tensors("swa."), "swa.", swa.count()));
  CHECK(restored.state().at("weight").to_vector()[0] == doctest::Approx(5.0));
  CHECK(!restored.from_tensors(swa.to_tensors("swa."), "ema.", 1));
}

TEST_CASE("the batchnorm refresh sets the running statistics to the mean over the batches") {
  BatchNorm bn(2);
  bn.eval();
  const std::vector<Tensor> batches = {ramp({4, 2}, 0.0f, 1.0f), ramp({4, 2}, 10.0f, 0.5f)};
  size_t next = 0;
  const int64_t seen = refresh_batchnorm_statistics(bn, [&]() { return next < batches.size() ? batches[next++] : Tensor(); });
  CHECK(seen == 2);
  CHECK(!bn.is_training());  // mode restored
  // Channel 0: batch means 3 and 11.5 (values 0,2,4,6 and 10,11,12,13); unbiased variances 20/3, 5/3.
  const std::vector<float> mean = bn.running_mean.to_vector(), var = bn.running_var.to_vector();
  CHECK(mean[0] == doctest::Approx((3.0 + 11.5) / 2));
  CHECK(var[0] == doctest::Approx((20.0 / 3 + 5.0 / 3) / 2));
  CHECK(bn.momentum == doctest::Approx(0.1f));
}

namespace {
// A short Adam run of fer_vgg_small on `d`, writing to `out`, without progress lines.
TrainOptions short_run(const data::Dataset& d, const fs::path& out, int64_t batch_size) {
  TrainOptions o;
  o.spec.name = "fer_vgg_small";
  o.spec.config.num_classes = d.num_classes();
  o.spec.class_names = d.class_names;
  o.batch_size = batch_size;
  o.optimizer = "adam";
  o.lr = 1e-3f;
  o.epochs = 1;
  o.progress = false;
  o.out_dir = out.string();
  return o;
}
}  // namespace

TEST_CASE("fer_train with mixup, cutmix, distillation, EMA and SWA resumes exactly") {
  const data::Dataset train_set = data::make_synthetic_faces(12, 5);  // 84 faces: 2 batches of 32
  const data::Dataset val_set = data::make_synthetic_faces(4, 6);
  auto tr = std::make_shared<data::Dataset>(train_set);
  auto va = std::make_shared<data::Dataset>(val_set);
  const fs::path root = fs::temp_directory_path() / ("fer_test_recipe_" + std::to_string(::getpid()));
  fs::remove_all(root);

  // A teacher: the weights of a short plain run.
  const TrainOptions t = short_run(train_set, root / "teacher", 32);
  train(t, tr, va);

  TrainOptions a = t;
  a.epochs = 3;
  a.augment.hflip = true;
  a.mix.mixup_alpha = 0.4f;
  a.mix.cutmix_alpha = 1.0f;
  a.ema_decay = 0.9f;
  a.swa_epochs = 2;
  a.teachers = {(root / "teacher" / "best.safetensors").string()};
  a.out_dir = (root / "straight").string();
  const TrainResult straight = train(a, tr, va);
  CHECK(fs::exists(root / "straight" / "best_ema.safetensors"));
  CHECK(fs::exists(root / "straight" / "swa.safetensors"));
  CHECK(straight.best_ema_epoch >= 1);
  // A checkpoint of an average loads as a plain model; last.safetensors carries the averages.
  CHECK(load_checkpoint(straight.swa_path).spec.name == "fer_vgg_small");
  const SafetensorsFile last = load_safetensors((root / "straight" / "last.safetensors").string());
  size_t ema_tensors = 0;
  for (const auto& [name, tensor] : last.tensors) ema_tensors += name.rfind("ema.", 0) == 0;
  CHECK(ema_tensors == load_checkpoint(straight.best_path).model->state_dict().size());

  TrainOptions b = a;
  b.out_dir = (root / "resumed").string();
  b.stop_at_step = 3;  // in the middle of epoch 2
  CHECK(train(b, tr, va).interrupted);
  b.stop_at_step = 0;
  b.resume = true;
  const TrainResult resumed = train(b, tr, va);
  CHECK(resumed.best_ema_val_acc == straight.best_ema_val_acc);
  CHECK(resumed.swa_val_acc == straight.swa_val_acc);
  for (const char* file : {"last.safetensors", "best_ema.safetensors", "swa.safetensors"}) {
    const SafetensorsFile x = load_safetensors((root / "straight" / file).string());
    const SafetensorsFile y = load_safetensors((root / "resumed" / file).string());
    for (const auto& [name, tensor] : x.tensors)
      CHECK_MESSAGE(y.tensors.at(name).to_vector() == tensor.to_vector(), file, ": ", name);
  }
  fs::remove_all(root);
}

TEST_CASE("training on 40x40 crops: the model reads crops, the checkpoint remembers, evaluation crops too") {
  const data::Dataset train_set = data::make_synthetic_faces(10, 5);
  const data::Dataset val_set = data::make_synthetic_faces(3, 6);
  auto tr = std::make_shared<data::Dataset>(train_set);
  auto va = std::make_shared<data::Dataset>(val_set);
  const fs::path root = fs::temp_directory_path() / ("fer_test_crops_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainOptions o = short_run(train_set, root, 16);
  o.spec.config.input_size = 40;
  o.spec.preprocess.crop = 40;
  const TrainResult r = train(o, tr, va);
  REQUIRE(!r.history.empty());
  LoadedCheckpoint ck = load_checkpoint(r.best_path);
  CHECK(ck.spec.preprocess.crop == 40);
  CHECK(ck.spec.config.input_size == 40);
  // Evaluation: the centre crop of each 48x48 face; ten crops average the corners and centre.
  const Tensor faces = data::faces_to_tensor(val_set.image(0), 2, ck.spec.preprocess);
  const std::vector<float> centre = predict_batch(*ck.model, faces, Tta::None, 40).to_vector();
  std::vector<float> by_hand;
  {
    NoGradGuard ng;
    const std::vector<float> v = faces.to_vector();
    std::vector<float> c(2 * 1600);
    for (int n = 0; n < 2; ++n)
      for (int y = 0; y < 40; ++y)
        for (int x = 0; x < 40; ++x) c[n * 1600 + y * 40 + x] = v[n * 2304 + (4 + y) * 48 + 4 + x];
    by_hand = softmax(ck.model->forward(Tensor::from_vector({2, 1, 40, 40}, c))).to_vector();
  }
  for (size_t k = 0; k < centre.size(); ++k) CHECK(centre[k] == doctest::Approx(by_hand[k]).epsilon(1e-5));
  const std::vector<float> ten = predict_batch(*ck.model, faces, Tta::TenCrop, 40).to_vector();
  CHECK(ten.size() == centre.size());
  CHECK(ten != centre);
  fs::remove_all(root);
}
