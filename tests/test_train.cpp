// End to end: fer_train's loop learns faces, and an interrupted run resumes on the same curve.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "apps/training/checkpoint.h"
#include "apps/training/evaluate.h"
#include "apps/training/resume_state.h"
#include "apps/training/trainer.h"
#include "data/fer2013.h"
#include "data/synthetic.h"
#include "tests/support/errors.h"

using namespace fer;
namespace fs = std::filesystem;
using fer::testing::throws_naming;

namespace {
fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("fer_test_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// The training log without its timing columns (seconds, images/s), which no rerun repeats.
std::string metrics_log(const fs::path& p) {
  std::ifstream f(p);
  std::string line, out;
  while (std::getline(f, line)) {
    for (int cut = 0; cut < 2; ++cut) line = line.substr(0, line.rfind(','));
    out += line + "\n";
  }
  return out;
}

TrainOptions small_run(const data::Dataset& d, const fs::path& out) {
  TrainOptions o;
  o.spec.name = "fer_vgg_small";
  o.spec.config.num_classes = d.num_classes();
  o.spec.class_names = d.class_names;
  o.batch_size = 32;
  o.optimizer = "adam";
  o.lr = 1e-3f;
  o.weight_decay = 0.0f;
  o.schedule = "cosine";
  o.out_dir = out.string();
  o.progress = false;
  o.workers = 2;
  o.seed = 3;
  o.augment.hflip = true;
  o.augment.crop = true;
  return o;
}
}  // namespace

// Two expressions with distinct shapes (a smile, an open mouth): what a few hundred steps can
// learn from a small sample of FER2013. (On all seven classes a small sample sits on the class
// prior for the first epochs: PyTorch shows the same plateau with the same network.)
TEST_CASE("a few hundred steps learn faces: the loss falls and held-out accuracy beats chance") {
  const char* root = std::getenv("FER_DATA");
  data::Dataset train_set, val_set;
  auto two_classes = [](data::Dataset d) {
    for (const char* c : {"angry", "disgust", "fear", "sad", "neutral"}) d = data::drop_class(d, c);
    return d;
  };
  if (root && fs::exists(fs::path(root) / "train")) {
    train_set = data::cap_per_class(two_classes(data::load_fer2013(root, data::Split::Train)), 600, 1);
    val_set = data::cap_per_class(two_classes(data::load_fer2013(root, data::Split::Val)), 200, 1);
  } else {
    MESSAGE("FER2013 not found at $FER_DATA: training on generated faces instead");
    train_set = data::make_synthetic_faces(150, 1);
    val_set = data::make_synthetic_faces(40, 2);
  }
  const fs::path out = temp_dir("learn");
  TrainOptions o = small_run(train_set, out);
  o.epochs = 6;  // ~220 steps of 32 on the real data
  const TrainResult r = train(o, std::make_shared<data::Dataset>(train_set),
                              std::make_shared<data::Dataset>(val_set));
  REQUIRE(r.history.size() == 6);
  CHECK(r.history.back().train_loss < r.history.front().train_loss);
  const double chance = 1.0 / train_set.num_classes();
  MESSAGE("held-out accuracy ", r.best_val_acc, " over ", train_set.num_classes(),
          " classes (chance ", chance, ")");
  CHECK(r.best_val_acc > chance + 0.5 * (1.0 - chance));  // 75% for two classes
  // The best checkpoint loads back into the same network with the same accuracy.
  LoadedCheckpoint ck = load_checkpoint(r.best_path);
  const Predictions p = predict_dataset(*ck.model, val_set, ck.spec.preprocess, Device::CPU);
  CHECK(p.accuracy == doctest::Approx(r.best_val_acc).epsilon(1e-6));
  CHECK(fs::exists(out / "train_log.csv"));
  CHECK(fs::exists(out / "train_log.jsonl"));
  fs::remove_all(out);
}

TEST_CASE("an interrupted run resumes exactly where it stopped") {
  const data::Dataset train_set = data::make_synthetic_faces(12, 5);  // 84 faces: 2 batches of 32
  const data::Dataset val_set = data::make_synthetic_faces(4, 6);
  auto tr = std::make_shared<data::Dataset>(train_set);
  auto va = std::make_shared<data::Dataset>(val_set);

  const fs::path straight = temp_dir("straight"), resumed = temp_dir("resumed");
  TrainOptions a = small_run(train_set, straight);
  a.epochs = 3;
  a.spec.config.dropout = 0.5f;  // the RNG state must survive the interruption too
  train(a, tr, va);

  TrainOptions b = a;
  b.out_dir = resumed.string();
  b.stop_at_step = 3;  // in the middle of epoch 2
  const TrainResult first = train(b, tr, va);
  CHECK(first.interrupted);
  b.stop_at_step = 0;
  b.resume = true;
  const TrainResult second = train(b, tr, va);
  CHECK(!second.interrupted);

  const std::string log = metrics_log(straight / "train_log.csv");
  CHECK(std::count(log.begin(), log.end(), '\n') == 4);  // header + 3 epochs
  CHECK(metrics_log(resumed / "train_log.csv") == log);
  const StateDict wa = load_checkpoint((straight / "last.safetensors").string()).model->state_dict();
  const StateDict wb = load_checkpoint((resumed / "last.safetensors").string()).model->state_dict();
  for (const auto& [name, t] : wa) CHECK_MESSAGE(wb.at(name).to_vector() == t.to_vector(), name);
  fs::remove_all(straight);
  fs::remove_all(resumed);
}

TEST_CASE("--save-every: a crash mid-epoch loses only the steps since the last save, and resumes exactly") {
  const data::Dataset train_set = data::make_synthetic_faces(12, 5);  // 84 faces: 5 batches of 16
  const data::Dataset val_set = data::make_synthetic_faces(4, 6);
  auto tr = std::make_shared<data::Dataset>(train_set);
  auto va = std::make_shared<data::Dataset>(val_set);
  const fs::path straight = temp_dir("save_every_straight"), crashed = temp_dir("save_every_crashed");
  TrainOptions a = small_run(train_set, straight);
  a.batch_size = 16;
  a.epochs = 2;
  a.spec.config.dropout = 0.5f;
  train(a, tr, va);

  TrainOptions b = a;
  b.out_dir = crashed.string();
  b.save_every_steps = 3;
  b.crash_at_step = 8;  // epoch 2, step 3: the last save was after global step 6
  // A temporary file as a killed save leaves it: removed when the run starts.
  std::ofstream(crashed / "last.safetensors.tmp.99999") << "partial";
  CHECK_THROWS_WITH(train(b, tr, va), doctest::Contains("simulated crash after step 8"));
  CHECK(!fs::exists(crashed / "last.safetensors.tmp.99999"));
  const SafetensorsFile saved = load_safetensors((crashed / "last.safetensors").string());
  CHECK(saved.metadata.at("train.global_step") == "6");
  CHECK(saved.metadata.at("train.step_in_epoch") == "1");
  b.crash_at_step = 0;
  b.resume = true;
  train(b, tr, va);
  CHECK(metrics_log(crashed / "train_log.csv") == metrics_log(straight / "train_log.csv"));
  const StateDict wa = load_checkpoint((straight / "last.safetensors").string()).model->state_dict();
  const StateDict wb = load_checkpoint((crashed / "last.safetensors").string()).model->state_dict();
  for (const auto& [name, t] : wa) CHECK_MESSAGE(wb.at(name).to_vector() == t.to_vector(), name);
  fs::remove_all(straight);
  fs::remove_all(crashed);
}

TEST_CASE("an epoch whose checkpoint cannot be written is not logged") {
  const data::Dataset train_set = data::make_synthetic_faces(4, 5);
  auto tr = std::make_shared<data::Dataset>(train_set);
  const fs::path out = temp_dir("unwritable");
  fs::create_directories(out / "last.safetensors");  // a directory: the rename onto it fails
  TrainOptions o = small_run(train_set, out);
  o.epochs = 1;
  CHECK_THROWS(train(o, tr, tr));
  CHECK(!fs::exists(out / "train_log.csv"));
  fs::remove_all(out);
}

TEST_CASE("checkpoints carry a CRC-32 of every tensor: damaged bytes are an error naming the tensor") {
  const fs::path dir = temp_dir("checksum");
  const std::string path = (dir / "ck.safetensors").string();
  ModelSpec spec;
  spec.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  manual_seed(3);
  save_checkpoint(path, *create_model(spec.name, spec.config), spec);
  CHECK(load_safetensors(path).metadata.count("crc32.classifier.3.weight") == 1);
  CHECK(load_checkpoint(path).spec.name == spec.name);
  {  // flip bytes inside the data section: the last tensor in name order holds the file's end
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-100, std::ios::end);
    const char junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    f.write(junk, sizeof junk);
  }
  CHECK_THROWS_WITH(load_checkpoint(path), doctest::Contains("is damaged: its bytes have CRC-32"));
  CHECK_THROWS_WITH(load_checkpoint(path), doctest::Contains(path.c_str()));
  setenv("FER_VERIFY_CHECKSUMS", "0", 1);
  CHECK_NOTHROW(load_checkpoint(path));
  unsetenv("FER_VERIFY_CHECKSUMS");
  fs::remove_all(dir);
}

TEST_CASE("a run's position read from a checkpoint: counts in range, the generator's state unsigned") {
  RunPosition p;
  p.epoch = 3;
  p.step_in_epoch = 17;
  p.global_step = 1400;
  p.best_val_acc = 0.5;
  p.correct = 500;
  p.seen = 1088;
  p.rng = 18446744073709551615ull;  // the whole uint64 range
  const RunPosition back = position_from(position_metadata(p));
  CHECK(back.epoch == 3);
  CHECK(back.step_in_epoch == 17);
  CHECK(back.rng == p.rng);

  // A damaged or crafted checkpoint: each bad value is a fer::Error naming its key (std::stoull
  // took "-1" as 2^64 - 1 and threw std::invalid_argument on "x"; a negative step in the epoch
  // would have been a negative position in the epoch's order).
  const std::pair<const char*, const char*> crafted[] = {
      {"train.rng", "x"}, {"train.rng", "-1"}, {"train.rng", "18446744073709551616"}, {"train.rng", ""},
      {"train.step_in_epoch", "-1"}, {"train.epoch", "9223372036854775807"}, {"train.seen", "-5"},
      {"train.correct", "2000"}, {"train.loss_sum", "nan"}, {"train.best_val_acc", "inf"}};
  for (const auto& [key, value] : crafted) {
    Metadata m = position_metadata(p);
    m[key] = value;
    INFO(key << " = '" << value << "'");
    CHECK(throws_naming([&] { position_from(m); }, key));
  }
}
