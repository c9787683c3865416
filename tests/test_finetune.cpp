// Transfer learning: freezing, per-block learning rates, the feature cache, and fer_train's
// two-phase recipe end to end (apps/training/finetune.h, apps/training/feature_cache.h).
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/training/checkpoint.h"
#include "apps/training/evaluate.h"
#include "apps/training/feature_cache.h"
#include "apps/training/finetune.h"
#include "apps/training/trainer.h"
#include "data/fer2013.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "engine/autograd.h"
#include "engine/random.h"
#include "tests/support/errors.h"

using namespace fer;
namespace fs = std::filesystem;
using fer::testing::throws_naming;

namespace {
fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("fer_test_finetune_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::shared_ptr<Module> make(const std::string& name, float dropout = 0.5f, uint64_t seed = 11) {
  manual_seed(seed);
  ModelConfig c;
  c.dropout = dropout;
  return create_model(name, c);
}

// Names of the parameters that require grad.
std::set<std::string> trainable_names(const Module& m) {
  std::set<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) if (t.requires_grad()) out.insert(name);
  return out;
}

StateDict snapshot(const Module& m) {
  StateDict out;
  for (const auto& [name, t] : m.state_dict()) out[name] = t.clone();
  return out;
}

bool same_values(const Tensor& a, const Tensor& b) { return a.to_vector() == b.to_vector(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(x[i]) - y[i]));
  return d;
}

// One optimizer step of `model` (with its plan) on a batch of synthetic faces.
void train_steps(Module& model, const FinetunePlan& plan, Optimizer& opt, int steps) {
  const data::Dataset d = data::make_synthetic_faces(4, 21);
  const Tensor x = data::faces_to_tensor(d.image(0), d.size());
  std::vector<float> labels(d.labels.begin(), d.labels.end());
  const Tensor y = Tensor::from_vector({d.size()}, labels);
  for (int s = 0; s < steps; ++s) {
    set_train_mode(model, plan);
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
  }
}

TrainOptions small_run(const data::Dataset& d, const fs::path& out) {
  TrainOptions o;
  o.spec.name = "fer_vgg_small";
  o.spec.config.num_classes = d.num_classes();
  o.spec.config.dropout = 0.0f;
  o.spec.class_names = d.class_names;
  o.batch_size = 16;
  o.epochs = 1;
  o.optimizer = "adam";
  o.lr = 1e-3f;
  o.weight_decay = 0.0f;
  o.schedule = "cosine";
  o.out_dir = out.string();
  o.progress = false;
  o.workers = 2;
  o.seed = 7;
  return o;
}

std::string metrics_log(const fs::path& p) {  // the log without its timing columns
  std::ifstream f(p);
  std::string line, out;
  while (std::getline(f, line)) {
    for (int cut = 0; cut < 2; ++cut) line = line.substr(0, line.rfind(','));
    out += line + "\n";
  }
  return out;
}
}  // namespace

// ---- Blocks and freezing -------------------------------------------------------------------

TEST_CASE("blocks: a parameterised layer with its BatchNorm and the parameterless layers after it") {
  auto vgg = make("fer_vgg_small");
  const FinetunePlan p = plan_finetune(*vgg, {});
  REQUIRE(p.blocks.size() == 8);  // 8 x conv-BN-ReLU (+ pool)
  CHECK(p.blocks[0].name == "features.0..2");
  CHECK(p.blocks[1].name == "features.3..6");  // conv, BN, ReLU, MaxPool
  CHECK(p.blocks[0].params == 1 * 32 * 9 + 2 * 32);
  CHECK(p.total_params == vgg->parameter_count());
  CHECK(p.trainable_params == p.total_params);
  CHECK(p.trainable_blocks() == 8);

  auto seed = make("fer_seed_cnn");
  const FinetunePlan s = plan_finetune(*seed, {});
  REQUIRE(s.blocks.size() == 4);
  CHECK(s.blocks[1].name == "features.2..5");  // conv64, ReLU, pool, dropout
  CHECK(s.head_params == seed->child("classifier")->parameter_count());
}

TEST_CASE("--unfreeze-top N makes exactly the last N blocks of features trainable") {
  auto model = make("fer_vgg_small");
  Classifier& cls = as_classifier(*model);
  const auto children = cls.features->named_children();
  const int64_t n = static_cast<int64_t>(plan_finetune(*model, {}).blocks.size());
  for (int64_t top = 0; top <= n; ++top) {
    FinetuneOptions f;
    f.freeze_backbone = top == 0;
    f.unfreeze_top = top;
    const FinetunePlan plan = plan_finetune(*model, f);
    apply_freezing(*model, plan);
    CHECK(plan.trainable_blocks() == top);
    std::set<std::string> expected;
    int64_t expected_count = plan.head_params;
    for (int64_t b = n - top; b < n; ++b) {
      for (size_t c : plan.blocks[static_cast<size_t>(b)].children)
        for (const auto& [name, t] : children[c].second->named_parameters())
          expected.insert("features." + children[c].first + "." + name);
      expected_count += plan.blocks[static_cast<size_t>(b)].params;
    }
    for (const auto& [name, t] : cls.classifier->named_parameters()) expected.insert("classifier." + name);
    INFO("unfreeze-top " << top);
    CHECK(trainable_names(*model) == expected);
    CHECK(plan.trainable_params == expected_count);
    CHECK(model->parameter_count(true) == expected_count);
  }
  FinetuneOptions too_many;
  too_many.unfreeze_top = n + 1;
  CHECK(throws_naming([&] { plan_finetune(*model, too_many); }, "only 8 blocks"));
  FinetuneOptions bad;
  bad.backbone_lr_mult = 0.0f;
  CHECK(throws_naming([&] { bad.validate(); }, "--backbone-lr-mult"));
}

TEST_CASE("frozen parameters get no gradient, do not change, and frozen BN statistics stay put") {
  auto model = make("fer_vgg_small", 0.0f);
  FinetuneOptions f;
  f.unfreeze_top = 2;
  const FinetunePlan plan = plan_finetune(*model, f);
  apply_freezing(*model, plan);
  const StateDict before = snapshot(*model);
  auto opt = std::make_unique<SGD>(param_groups(*model, plan, 0.05f), 0.05f, 0.9f);
  train_steps(*model, plan, *opt, 3);

  const auto children = as_classifier(*model).features->named_children();
  std::set<std::string> frozen_prefixes, trainable_prefixes;
  for (const FinetuneBlock& b : plan.blocks)
    for (size_t c : b.children)
      (b.trainable ? trainable_prefixes : frozen_prefixes).insert("features." + children[c].first + ".");
  int frozen_checked = 0, trainable_changed = 0, frozen_bn = 0, trainable_bn_moved = 0;
  for (const auto& [name, t] : model->state_dict()) {
    const std::string prefix = name.substr(0, name.rfind('.') + 1);
    const bool is_stat = name.find("running_") != std::string::npos;
    if (frozen_prefixes.count(prefix)) {
      INFO(name);
      CHECK(same_values(t, before.at(name)));
      if (!is_stat && name.find("num_batches") == std::string::npos) {
        CHECK_FALSE(t.grad().defined());
        ++frozen_checked;
      } else if (is_stat) {
        ++frozen_bn;
      }
    } else if (!is_stat && name.find("num_batches") == std::string::npos) {
      trainable_changed += !same_values(t, before.at(name));
    } else if (is_stat) {
      trainable_bn_moved += !same_values(t, before.at(name));
    }
  }
  CHECK(frozen_checked == 6 * 3);  // 6 frozen blocks: conv weight, BN weight and bias
  CHECK(frozen_bn == 6 * 2);
  CHECK(trainable_changed == 2 * 3 + 4);  // 2 trainable blocks + the head's two Linear layers
  CHECK(trainable_bn_moved == 2 * 2);     // the control: unfrozen BN statistics do move
}

TEST_CASE("--freeze-bn: every batchnorm keeps its statistics while its scale, shift and the convs train") {
  auto model = make("mobilenet_v2_keras", 0.0f);  // BNs nested inside blocks, as in the backbones
  FinetuneOptions f;
  f.unfreeze_top = 3;
  f.freeze_bn = true;
  const FinetunePlan plan = plan_finetune(*model, f);
  CHECK(plan.describe().find("--freeze-bn") != std::string::npos);
  CHECK(plan.to_metadata().at("finetune.freeze_bn") == "1");
  apply_freezing(*model, plan);
  const StateDict before = snapshot(*model);
  auto opt = std::make_unique<SGD>(param_groups(*model, plan, 0.05f), 0.05f, 0.9f);
  train_steps(*model, plan, *opt, 2);

  int stats = 0, bn_affine_changed = 0;
  for (const auto& [name, t] : model->state_dict()) {
    INFO(name);
    if (name.find("running_") != std::string::npos) {
      CHECK(same_values(t, before.at(name)));
      ++stats;
    }
  }
  // The trainable blocks' batchnorm scales and shifts do train (they are parameters).
  for (const auto& [name, t] : model->named_parameters())
    if (t.requires_grad() && t.dim() == 1 && name.rfind("features.", 0) == 0)
      bn_affine_changed += !same_values(t, before.at(name));
  CHECK(stats > 100);
  CHECK(bn_affine_changed > 0);

  // A checkpoint written with --freeze-bn does not resume without it, and vice versa.
  FinetuneOptions without = f;
  without.freeze_bn = false;
  const FinetunePlan other = plan_finetune(*model, without);
  CHECK(throws_naming([&] { other.check_matches(plan.to_metadata(), "a.safetensors"); },
                      "a.safetensors was written with --freeze-bn"));
  CHECK_NOTHROW(plan.check_matches(plan.to_metadata(), "a.safetensors"));
}

TEST_CASE("param groups: head at lr, trainable blocks at lr x mult x decay^k, only trainable params") {
  auto model = make("fer_vgg_small");
  SUBCASE("plain run: one unnamed group of every parameter, in model order") {
    const FinetunePlan plan = plan_finetune(*model, {});
    const auto groups = param_groups(*model, plan, 0.01f);
    REQUIRE(groups.size() == 1);
    const std::vector<Tensor> all = model->parameters(true);
    REQUIRE(groups[0].params.size() == all.size());
    for (size_t i = 0; i < all.size(); ++i) CHECK(groups[0].params[i].same(all[i]));
  }
  SUBCASE("layer decay: one group per trainable block") {
    FinetuneOptions f;
    f.unfreeze_top = 3;
    f.backbone_lr_mult = 0.1f;
    f.layer_decay = 0.5f;
    const FinetunePlan plan = plan_finetune(*model, f);
    apply_freezing(*model, plan);
    AdamW opt(param_groups(*model, plan, 0.01f), 0.01f);
    const auto& g = opt.groups();
    REQUIRE(g.size() == 4);
    CHECK(g[0].name == "features.block5");
    CHECK(g[1].name == "features.block6");
    CHECK(g[2].name == "features.block7");
    CHECK(g[3].name == "head");
    CHECK(g[0].lr == doctest::Approx(0.01 * 0.1 * 0.25));
    CHECK(g[1].lr == doctest::Approx(0.01 * 0.1 * 0.5));
    CHECK(g[2].lr == doctest::Approx(0.01 * 0.1));
    CHECK(g[3].lr == doctest::Approx(0.01));
    int64_t n = 0;
    for (const Tensor& t : opt.params()) {
      CHECK(t.requires_grad());
      n += t.numel();
    }
    CHECK(n == plan.trainable_params);
    CHECK(g[0].params.size() == 3);  // conv weight, BN weight, BN bias
    opt.set_lr(0.001f);              // a schedule keeps the ratios
    CHECK(g[0].lr == doctest::Approx(0.001 * 0.1 * 0.25));
    CHECK(g[3].lr == doctest::Approx(0.001));
  }
  SUBCASE("a multiplier without decay: one 'features' group and the head") {
    FinetuneOptions f;
    f.backbone_lr_mult = 0.1f;
    const auto groups = param_groups(*model, plan_finetune(*model, f), 0.01f);
    REQUIRE(groups.size() == 2);
    CHECK(groups[0].name == "features");
    CHECK(groups[0].lr == doctest::Approx(0.001));
    CHECK(groups[0].params.size() == 8 * 3);
    CHECK(groups[1].name == "head");
  }
  SUBCASE("frozen backbone with a multiplier: only the head") {
    FinetuneOptions f;
    f.freeze_backbone = true;
    f.backbone_lr_mult = 0.1f;
    const auto groups = param_groups(*model, plan_finetune(*model, f), 0.01f);
    REQUIRE(groups.size() == 1);
    CHECK(groups[0].params.size() == 4);
  }
}

// ---- The feature cache ---------------------------------------------------------------------

TEST_CASE("binary16 conversion: known values, ties to even, every half round-trips") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(0.1f) == 0x2e66);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65519.0f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00);
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie: to even
  CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: to even
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);             // smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(float_to_half(std::ldexp(1.0f, -14) * 0.99999f) == 0x0400);  // rounds up to the normal
  CHECK(std::isnan(half_to_float(float_to_half(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    if (float_to_half(f) != h) {
      FAIL("half ", h, " -> ", f, " -> ", float_to_half(f));
      break;
    }
  }
}

TEST_CASE("cached features are the frozen features of the (augmented) images") {
  auto model = make("fer_vgg_small");
  Classifier& cls = as_classifier(*model);
  auto train = std::make_shared<const data::Dataset>(data::make_synthetic_faces(3, 4));  // 21
  auto val = std::make_shared<const data::Dataset>(data::make_synthetic_faces(1, 5));
  FeatureCacheOptions o;
  o.batch_size = 8;  // batches of another size than the check below
  o.progress = false;
  o.aug_passes = 2;
  o.augment.hflip = true;
  o.augment.rotation_deg = 10;
  o.seed = 9;
  const FeatureCache c = build_feature_cache(cls, train, val, o);
  REQUIRE(c.train_passes.size() == 2);
  CHECK(c.train_passes[0].rows() == 21);
  CHECK(c.train_passes[0].dim() == 256 * 3 * 3);
  CHECK(c.val.rows() == 7);
  CHECK(c.bytes() == (2 * 21 + 7) * 2304 * 4);
  CHECK(&c.train_for_epoch(3) == &c.train_passes[1]);

  // Pass k, row i: the loader's item i of epoch k of the unshuffled set, through features.
  data::LoaderOptions lo;
  lo.batch_size = 21;
  lo.shuffle = false;
  lo.workers = 0;
  lo.seed = 9;
  lo.augment = o.augment;
  data::BatchLoader loader(train, lo);
  std::vector<int64_t> rows(21);
  for (int64_t i = 0; i < 21; ++i) rows[static_cast<size_t>(i)] = i;
  NoGradGuard no_grad;
  model->eval();
  for (int64_t k = 0; k < 2; ++k) {
    const Tensor ref = cls.features->forward(loader.make_batch(loader.epoch_order(k), k, 0).images).flatten(1);
    CHECK(max_abs_diff(c.train_passes[static_cast<size_t>(k)].gather(rows), ref) < 1e-5);
  }
  // The two passes hold different augmentations (the control: the check above could not pass
  // by comparing a pass with itself).
  const std::vector<float> p0 = c.train_passes[0].gather(rows).to_vector();
  float scale = 0;
  for (float v : p0) scale = std::max(scale, std::fabs(v));
  CHECK(max_abs_diff(c.train_passes[0].gather(rows), c.train_passes[1].gather(rows)) > 0.01 * scale);
  const Tensor val_ref = cls.features->forward(data::faces_to_tensor(val->image(0), 7)).flatten(1);
  CHECK(max_abs_diff(c.val.gather({0, 1, 2, 3, 4, 5, 6}), val_ref) < 1e-5);

  // float16 storage: the same values to binary16 precision, half the bytes.
  FeatureCacheOptions h = o;
  h.dtype = CacheDtype::F16;
  const FeatureCache c16 = build_feature_cache(cls, train, nullptr, h);
  CHECK(c16.train_passes[0].bytes() == 21 * 2304 * 2);
  const std::vector<float> a = c.train_passes[0].gather(rows).to_vector();
  const std::vector<float> b = c16.train_passes[0].gather(rows).to_vector();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::fabs(a[i] - b[i]) > 1e-3f * std::fabs(a[i]) + 1e-6f) FAIL("float16 row value ", i, ": ", a[i], " vs ", b[i]);
}

TEST_CASE("a float16 table counts the values binary16 cannot hold") {
  FeatureTable t(1, 4, CacheDtype::F16);
  t.set_rows(0, Tensor::from_vector({1, 4}, {1e-9f, 0.0f, 1e5f, 0.5f}));
  CHECK(t.lost_values() == 2);  // 1e-9 -> 0 and 1e5 -> inf; 0 and 0.5 are exact
  CHECK(t.gather({0}).to_vector() == std::vector<float>{0.0f, 0.0f, INFINITY, 0.5f});
  FeatureTable f(1, 4, CacheDtype::F32);
  f.set_rows(0, Tensor::from_vector({1, 4}, {1e-9f, 0.0f, 1e5f, 0.5f}));
  CHECK(f.lost_values() == 0);
  CHECK(f.gather({0}).to_vector() == std::vector<float>{1e-9f, 0.0f, 1e5f, 0.5f});
}

// The key correctness test: the cached path must be the same computation as the uncached one.
TEST_CASE("cached-feature training gives the same head update as uncached training") {
  const data::Dataset d = data::make_synthetic_faces(8, 12);  // 56 faces: 3 batches of 16
  auto tr = std::make_shared<data::Dataset>(d);
  auto va = std::make_shared<data::Dataset>(data::make_synthetic_faces(3, 13));
  for (const float dropout : {0.0f, 0.5f}) {
    const fs::path plain = temp_dir("plain"), cached = temp_dir("cached");
    TrainOptions a = small_run(d, plain);
    a.spec.config.dropout = dropout;
    a.finetune.freeze_backbone = true;
    a.max_steps_per_epoch = dropout == 0.0f ? 1 : 3;
    a.epochs = dropout == 0.0f ? 1 : 2;
    const TrainResult ra = train(a, tr, va);
    TrainOptions b = a;
    b.out_dir = cached.string();
    b.cache_features = true;
    const TrainResult rb = train(b, tr, va);
    INFO("dropout " << dropout);
    REQUIRE(ra.history.size() == rb.history.size());
    for (size_t e = 0; e < ra.history.size(); ++e) {
      CHECK(rb.history[e].train_loss == doctest::Approx(ra.history[e].train_loss).epsilon(1e-5));
      CHECK(rb.history[e].val_loss == doctest::Approx(ra.history[e].val_loss).epsilon(1e-5));
      CHECK(rb.history[e].val_acc == ra.history[e].val_acc);
    }
    const StateDict init = snapshot(*make("fer_vgg_small", dropout, a.seed));
    const StateDict wa = load_checkpoint(ra.last_path).model->state_dict();
    const StateDict wb = load_checkpoint(rb.last_path).model->state_dict();
    int head_tensors = 0;
    for (const auto& [name, t] : wa) {
      INFO(name);
      CHECK(max_abs_diff(wb.at(name), t) <= 1e-6);
      if (name.rfind("classifier.", 0) == 0) {
        ++head_tensors;
        CHECK(max_abs_diff(t, init.at(name)) > 1e-6);  // the head did move
      }
    }
    CHECK(head_tensors == 4);
    fs::remove_all(plain);
    fs::remove_all(cached);
  }
}

TEST_CASE("a cached run's checkpoint is the full model: it loads and evaluates as trained") {
  const data::Dataset d = data::make_synthetic_faces(10, 14);
  auto tr = std::make_shared<data::Dataset>(d);
  auto va = std::make_shared<data::Dataset>(data::make_synthetic_faces(4, 15));
  const fs::path out = temp_dir("cached_ckpt");
  TrainOptions o = small_run(d, out);
  o.epochs = 3;
  o.spec.config.dropout = 0.5f;
  o.finetune.freeze_backbone = true;
  o.cache_features = true;
  o.cache_aug_passes = 2;
  o.augment.hflip = true;
  o.augment.crop = true;
  const TrainResult r = train(o, tr, va);
  REQUIRE(r.history.size() == 3);
  CHECK(r.cache_seconds > 0);
  LoadedCheckpoint ck = load_checkpoint(r.best_path);
  const Predictions p = predict_dataset(*ck.model, *va, ck.spec.preprocess, Device::CPU);
  CHECK(p.accuracy == doctest::Approx(r.best_val_acc).epsilon(1e-9));
  const Predictions last = predict_dataset(*load_checkpoint(r.last_path).model, *va, ck.spec.preprocess, Device::CPU);
  CHECK(last.loss == doctest::Approx(r.history.back().val_loss).epsilon(1e-5));
  // The backbone in the checkpoint is the untouched initialisation.
  const StateDict init = snapshot(*make("fer_vgg_small", 0.5f, o.seed));
  for (const auto& [name, t] : ck.model->state_dict())
    if (name.rfind("features.", 0) == 0 && name.find("num_batches") == std::string::npos) {
      INFO(name);
      CHECK(same_values(t, init.at(name)));
    }
  fs::remove_all(out);
}

TEST_CASE("the cache needs a frozen backbone; aug passes need the cache") {
  const data::Dataset d = data::make_synthetic_faces(4, 16);
  auto tr = std::make_shared<data::Dataset>(d);
  const fs::path out = temp_dir("bad_flags");
  TrainOptions o = small_run(d, out);
  o.cache_features = true;
  o.finetune.unfreeze_top = 1;
  CHECK(throws_naming([&] { train(o, tr, nullptr); }, "--cache-features needs the whole backbone frozen"));
  o.finetune.unfreeze_top = 0;
  CHECK(throws_naming([&] { train(o, tr, nullptr); }, "--cache-features needs the whole backbone frozen"));
  o.cache_features = false;
  o.cache_aug_passes = 2;
  CHECK(throws_naming([&] { train(o, tr, nullptr); }, "--cache-aug-passes needs --cache-features"));
  fs::remove_all(out);
}

// ---- Resume ---------------------------------------------------------------------------------

TEST_CASE("an interrupted fine-tuning run resumes exactly (groups, frozen blocks, cache)") {
  const data::Dataset d = data::make_synthetic_faces(8, 17);  // 56 faces: 3 batches of 16
  auto tr = std::make_shared<data::Dataset>(d);
  auto va = std::make_shared<data::Dataset>(data::make_synthetic_faces(3, 18));
  struct Variant {
    const char* name;
    bool cache;
  };
  for (const Variant v : {Variant{"partial", false}, Variant{"cached", true}}) {
    INFO(v.name);
    const fs::path straight = temp_dir(std::string("straight_") + v.name);
    const fs::path resumed = temp_dir(std::string("resumed_") + v.name);
    TrainOptions a = small_run(d, straight);
    a.epochs = 3;
    a.spec.config.dropout = 0.5f;
    a.augment.hflip = true;
    if (v.cache) {
      a.finetune.freeze_backbone = true;
      a.cache_features = true;
      a.cache_aug_passes = 2;
    } else {
      a.finetune.unfreeze_top = 2;
      a.finetune.backbone_lr_mult = 0.1f;
      a.finetune.layer_decay = 0.5f;
      a.max_steps_per_epoch = 2;
    }
    train(a, tr, va);
    TrainOptions b = a;
    b.out_dir = resumed.string();
    b.stop_at_step = v.cache ? 4 : 3;  // in the middle of epoch 2
    CHECK(train(b, tr, va).interrupted);

    TrainOptions other = b;  // another split cannot continue this run
    other.stop_at_step = 0;
    other.resume = true;
    other.finetune.unfreeze_top = v.cache ? 1 : 3;
    other.cache_features = false;
    other.cache_aug_passes = 0;
    CHECK(throws_naming([&] { train(other, tr, va); }, "finetune.trainable"));

    b.stop_at_step = 0;
    b.resume = true;
    CHECK(!train(b, tr, va).interrupted);
    const std::string log = metrics_log(straight / "train_log.csv");
    CHECK(std::count(log.begin(), log.end(), '\n') == 4);
    CHECK(metrics_log(resumed / "train_log.csv") == log);
    const StateDict wa = load_checkpoint((straight / "last.safetensors").string()).model->state_dict();
    const StateDict wb = load_checkpoint((resumed / "last.safetensors").string()).model->state_dict();
    for (const auto& [name, t] : wa) CHECK_MESSAGE(same_values(wb.at(name), t), name);
    fs::remove_all(straight);
    fs::remove_all(resumed);
  }
}

// ---- fer_train end to end -------------------------------------------------------------------

namespace {
// The directory holding the built apps: $FER_BUILD_DIR (set by CTest), else this test's own.
fs::path build_dir() {
  if (const char* d = std::getenv("FER_BUILD_DIR")) return d;
  return fs::read_symlink("/proc/self/exe").parent_path();
}

int run_command(const std::string& cmd, std::string& output) {
  const std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  output.clear();
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("fer_train: phase 1 on cached frozen features, then phase 2 from its checkpoint") {
  const fs::path bin = build_dir() / "fer_train";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED: no fer_train binary in ", build_dir().string(), " (set FER_BUILD_DIR)");
    return;
  }
  const fs::path dir = temp_dir("e2e");
  {
    std::ofstream csv(dir / "fer2013.csv");
    csv << data::format_fer_csv(data::make_synthetic_faces(6, 31), data::Split::Train)
        << data::format_fer_csv(data::make_synthetic_faces(2, 32), data::Split::Val, false);
  }
  const std::string common = bin.string() + " --data " + (dir / "fer2013.csv").string() +
                             " --model fer_vgg_small --batch-size 8 --optimizer adam --lr 0.001"
                             " --threads 2 --workers 1 --warmup-epochs 0 --no-progress";
  std::string out;
  const int rc1 = run_command(common + " --epochs 2 --freeze-backbone --cache-features --cache-aug-passes 2"
                                       " --cache-dtype float16 --out " + (dir / "p1").string(), out);
  INFO(out);
  REQUIRE(rc1 == 0);
  CHECK(out.find("features: 8 blocks, none trainable") != std::string::npos);
  CHECK(out.find("feature cache: 2 x 42 x 2304 float16 train + 14 val") != std::string::npos);
  CHECK(out.find("epoch 2:") != std::string::npos);
  CHECK(fs::exists(dir / "p1" / "best.safetensors"));

  std::string out2;
  const int rc2 = run_command(common + " --epochs 1 --max-steps 2 --init " + (dir / "p1" / "best.safetensors").string() +
                                  " --unfreeze-top 2 --backbone-lr-mult 0.1 --out " + (dir / "p2").string(), out2);
  INFO(out2);
  REQUIRE(rc2 == 0);
  CHECK(out2.find("starting from the weights of") != std::string::npos);
  // The architecture not given on the command line comes from the --init checkpoint.
  CHECK(out2.find("best.safetensors: input-size 48, head gap, hidden none") != std::string::npos);
  CHECK(out2.find("features: 8 blocks, 2 trainable") != std::string::npos);
  CHECK(out2.find("trainable, lr x0.1") != std::string::npos);
  CHECK(fs::exists(dir / "p2" / "last.safetensors"));

  std::string out3;  // the cache with a trainable block is refused, naming the flag
  CHECK(run_command(common + " --epochs 1 --unfreeze-top 1 --cache-features --out " + (dir / "p3").string(), out3) != 0);
  CHECK(out3.find("--cache-features needs the whole backbone frozen") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("fer_train: the recipe flags end to end (mixup, cutmix, EMA, SWA, a teacher ensemble, crops)") {
  const fs::path bin = build_dir() / "fer_train";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED: no fer_train binary in ", build_dir().string(), " (set FER_BUILD_DIR)");
    return;
  }
  const fs::path dir = temp_dir("recipe");
  {
    std::ofstream csv(dir / "fer2013.csv");
    csv << data::format_fer_csv(data::make_synthetic_faces(6, 41), data::Split::Train)
        << data::format_fer_csv(data::make_synthetic_faces(2, 42), data::Split::Val, false);
  }
  const std::string common = bin.string() + " --data " + (dir / "fer2013.csv").string() +
                             " --model fer_vgg_small --batch-size 8 --optimizer adam --lr 0.001"
                             " --threads 2 --workers 1 --warmup-epochs 0 --no-progress --crop-size 40";
  std::string out;
  REQUIRE(run_command(common + " --epochs 1 --max-steps 2 --out " + (dir / "teacher").string(), out) == 0);
  std::ofstream(dir / "teachers.json") << R"({"members": ["teacher/best.safetensors"]})";
  const int rc = run_command(common + " --epochs 2 --max-steps 2 --mixup 0.2 --cutmix 1 --ema 0.99"
                                      " --swa-epochs 2 --rrc-scale 0.8,1.2 --teacher " +
                                 (dir / "teachers.json").string() + " --out " + (dir / "student").string(), out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("distillation from 1 teacher(s)") != std::string::npos);
  CHECK(out.find("ema val loss") != std::string::npos);
  CHECK(out.find("SWA validation accuracy") != std::string::npos);
  CHECK(out.find("best EMA validation accuracy") != std::string::npos);
  for (const char* f : {"best.safetensors", "best_ema.safetensors", "swa.safetensors", "last.safetensors"})
    CHECK_MESSAGE(fs::exists(dir / "student" / f), f);
  CHECK(load_checkpoint((dir / "student" / "swa.safetensors").string()).spec.preprocess.crop == 40);
  // A teacher that reads faces differently from the student is refused, naming it.
  const int bad = run_command(common + " --crop-size 0 --epochs 1 --max-steps 1 --teacher " +
                                  (dir / "teacher" / "best.safetensors").string() + " --out " + (dir / "bad").string(), out);
  CHECK(bad != 0);
  CHECK(out.find("teacher/best.safetensors: its model reads 1x40x40 faces") != std::string::npos);
  CHECK(run_command(common + " --rrc-scale 0.9,0.5 --epochs 1 --out " + (dir / "bad2").string(), out) != 0);
  CHECK(out.find("random-resized-crop scale range") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("fer_train: resume refuses other settings, says when a run is complete, --fresh starts over; Kaggle's layout; typos") {
  const fs::path bin = build_dir() / "fer_train";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED: no fer_train binary in ", build_dir().string(), " (set FER_BUILD_DIR)");
    return;
  }
  const fs::path dir = temp_dir("first_hour");
  {
    std::ofstream csv(dir / "fer2013.csv");
    csv << data::format_fer_csv(data::make_synthetic_faces(6, 51), data::Split::Train)
        << data::format_fer_csv(data::make_synthetic_faces(2, 52), data::Split::Val, false);
  }
  const std::string run = bin.string() + " --data " + (dir / "fer2013.csv").string() +
                          " --batch-size 8 --threads 1 --workers 1 --no-progress --out " + (dir / "run").string();
  std::string out;
  REQUIRE(run_command(run + " --epochs 1 --max-steps 2 --resume", out) == 0);
  // A trial's checkpoint and the real command: refused, the differences named.
  CHECK(run_command(run + " --epochs 3 --max-steps 2 --lr 0.02 --resume", out) != 0);
  CHECK(out.find("was written by a run with other settings: --epochs 1 (now 3), --lr 0.01 (now 0.02)") != std::string::npos);
  CHECK(out.find("--resume-force") != std::string::npos);
  // The same command again: complete, nothing trained.
  REQUIRE(run_command(run + " --epochs 1 --max-steps 2 --resume", out) == 0);
  CHECK(out.find("this run is complete (1 epochs") != std::string::npos);
  CHECK(out.find("epoch 1:") == std::string::npos);
  // Extended on purpose: it goes on from epoch 2.
  REQUIRE(run_command(run + " --epochs 2 --max-steps 2 --resume --resume-force", out) == 0);
  CHECK(out.find("continuing") != std::string::npos);
  CHECK(out.find("epoch 2:") != std::string::npos);
  // --fresh: a new run in the same folder.
  REQUIRE(run_command(run + " --epochs 1 --max-steps 2 --lr 0.02 --resume --fresh", out) == 0);
  CHECK(out.find("--fresh: removed the previous run") != std::string::npos);
  CHECK(out.find("epoch 1:") != std::string::npos);

  // Kaggle's image download: train/ and test/, no val/.
  const data::Dataset faces = data::make_synthetic_faces(3, 53);
  for (const char* split : {"train", "test"})
    for (int64_t i = 0; i < faces.size(); ++i) {
      const fs::path cls = dir / "kaggle" / split / faces.class_names[faces.labels[i]];
      fs::create_directories(cls);
      data::GrayImage g{48, 48, std::vector<uint8_t>(faces.image(i), faces.image(i) + 48 * 48)};
      data::write_png((cls / (std::to_string(i) + ".png")).string(), g);
    }
  REQUIRE(run_command(bin.string() + " --data " + (dir / "kaggle").string() +
                          " --epochs 1 --max-steps 1 --batch-size 4 --threads 1 --workers 1 --no-progress --out " +
                          (dir / "kaggle_run").string(), out) == 0);
  CHECK(out.find("has no val/ folder (Kaggle's layout: train/ and test/): holding out 10% of train/") != std::string::npos);

  CHECK(run_command(run + " --learning-rate 0.1", out) != 0);
  CHECK(out.find("unknown option '--learning-rate'") != std::string::npos);
  CHECK(run_command(run + " --epoch 2", out) != 0);
  CHECK(out.find("did you mean --epochs?") != std::string::npos);
  fs::remove_all(dir);
}
