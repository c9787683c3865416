// fer_train's command as a library: its flag table and its run (apps/fer_train.cpp documents the
// app). The app is a main over TrainCommand::run; the Python module's train() calls the same run
// with the same flags.
#include "apps/cli/train_command.h"

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "apps/cli/args.h"
#include "apps/cli/shared_flags.h"
#include "apps/training/checkpoint.h"
#include "apps/training/finetune.h"
#include "data/fer2013.h"
#include "engine/backend.h"

namespace fer::cli {

namespace {
// With --init, the architecture comes from the checkpoint (fer_convert's output, or phase 1's
// best) unless given on the command line: a converted backbone's input size, head and BatchNorm
// epsilon are part of what its weights compute.
void inherit_architecture(const cli::Args& args, ModelSpec& spec) {
  const std::string& path = args.str("init");
  const LoadedCheckpoint init = load_checkpoint(path);
  const ModelConfig& c = init.spec.config;
  std::string taken;
  auto take = [&](const char* flag, auto& field, const auto& value, const std::string& shown) {
    if (args.given(flag)) return;
    field = value;
    taken += std::string(taken.empty() ? "" : ", ") + flag + " " + shown;
  };
  std::string hidden;
  for (int64_t h : c.hidden) hidden += (hidden.empty() ? "" : ",") + std::to_string(h);
  take("model", spec.name, init.spec.name, init.spec.name);
  take("input-size", spec.config.input_size, c.input_size, std::to_string(c.input_size));
  take("head", spec.config.head, c.head, c.head);
  take("hidden", spec.config.hidden, c.hidden, hidden.empty() ? "none" : hidden);
  take("dropout", spec.config.dropout, c.dropout, std::to_string(c.dropout));
  take("crop-size", spec.preprocess.crop, init.spec.preprocess.crop, std::to_string(init.spec.preprocess.crop));
  take("stage-dropout", spec.config.stage_dropout, c.stage_dropout, std::to_string(c.stage_dropout));
  spec.config.bn_eps = c.bn_eps;
  if (!taken.empty()) std::fprintf(stderr, "from %s: %s\n", path.c_str(), taken.c_str());
}

// "MIN" -> [MIN, 1]; "MIN,MAX" -> [MIN, MAX]: the random-resized crop's area range.
void parse_range(const std::string& text, const std::string& flag, float& lo, float& hi) {
  const std::vector<std::string> parts = split_list(text);
  FER_CHECK(parts.size() == 1 || parts.size() == 2, flag, ": expected MIN or MIN,MAX, got '", text, "'");
  try {
    lo = std::stof(parts[0]);
    hi = parts.size() == 2 ? std::stof(parts[1]) : 1.0f;
  } catch (...) {
    fail(flag, ": expected numbers, got '", text, "'");
  }
}

// "500" -> every 500 steps; "10m" or "10min" -> every 10 minutes; "0" -> off.
void parse_save_every(const std::string& text, TrainOptions& o) {
  size_t used = 0;
  double value = -1;
  try {
    value = std::stod(text, &used);
  } catch (...) {
  }
  const std::string unit = text.substr(std::min(used, text.size()));
  FER_CHECK(value >= 0 && (unit.empty() || unit == "m" || unit == "min"),
            "--save-every: expected a number of steps (500) or minutes (10m), got '", text, "'");
  o.save_every_steps = o.save_every_minutes = 0;
  if (unit.empty()) {
    FER_CHECK(value == static_cast<double>(static_cast<int64_t>(value)),
              "--save-every: a number of steps must be whole, got '", text, "'");
    o.save_every_steps = static_cast<int64_t>(value);
  } else {
    o.save_every_minutes = value;
  }
}

// Flags that change how a run is executed or reported, not what it computes: --resume may differ
// in them freely.
const std::set<std::string> kNotSettings{"threads", "workers", "progress", "out", "resume", "resume-force",
                                         "fresh", "save-every", "device", "cuda-graph", "tf32", "precision"};

// Where fer_train's flags go: the training options, and what the app itself does before training.
struct TrainFlags {
  TrainOptions train;
  cli::DatasetFlags dataset;
  std::string train_split, val_split;
  double val_fraction = 0;
  int64_t per_class_cap = 0, val_per_class_cap = 0;
  bool augment = true;             // the augmentation flags apply only when on
  data::AugmentOptions augment_options;
  int64_t threads = 0;
  std::string precision;  // --precision: fp32 | bf16 matrix products on the CPU
  std::string device;
  bool cuda_graph = false, tf32 = false;
};

// Every flag of fer_train, in --help order: name, default (as --help shows it), help, and where the
// value goes.
std::vector<cli::Flag> train_flags(TrainFlags& flags, const std::string& known_models) {
  TrainOptions& o = flags.train;
  ModelConfig& model = o.spec.config;
  data::AugmentOptions& a = flags.augment_options;
  std::vector<cli::Flag> table = cli::dataset_flags(flags.dataset);
  table.insert(table.end(), {
      {"train-split", "train", "split to train on", &flags.train_split},
      {"val-split", "val", "split for model selection ('none' to carve --val-fraction from train)", &flags.val_split},
      {"val-fraction", "0.1", "stratified fraction of train held out when there is no val split", &flags.val_fraction},
      {"per-class-cap", "0", "at most this many training images per class, seeded (0 = all)", &flags.per_class_cap},
      {"val-per-class-cap", "0", "at most this many validation images per class, seeded (0 = all; quick runs)",
       &flags.val_per_class_cap},
      {"model", "fer_vgg_small", "architecture (" + known_models + ")", &o.spec.name},
      {"input-size", "48", "backbones: the side faces are resized to (FER CNNs: 48)", &model.input_size},
      {"head", "gap", "backbones: gap (global average pooling) | flatten", &model.head},
      {"hidden", "", "backbones: hidden dense sizes of the head, e.g. 512 or 1024,256",
       [&model](const std::string& v) { model.hidden = parse_sizes(v, "--hidden"); }},
      {"dropout", "0.5", "dropout before the dense layers", &model.dropout},
      {"stage-dropout", "0.0", "dropout after each pooling stage", &model.stage_dropout},
      {"epochs", "40", "training epochs", &o.epochs},
      {"batch-size", "64", "images per step", &o.batch_size},
      {"optimizer", "sgd", "sgd | adam | adamw", &o.optimizer},
      {"lr", "0.01", "(peak) learning rate", &o.lr},
      {"momentum", "0.9", "SGD momentum", &o.momentum},
      {"nesterov", "true", "Nesterov momentum", &o.nesterov},
      {"weight-decay", "5e-4", "L2 (sgd, adam) or decoupled (adamw) weight decay", &o.weight_decay},
      {"schedule", "cosine", "none | step | cosine | onecycle | plateau", &o.schedule},
      {"warmup-epochs", "1", "linear warm-up epochs (cosine)", &o.warmup_epochs},
      {"step-size", "10", "epochs per decay (step)", &o.step_size},
      {"gamma", "0.1", "decay factor (step)", &o.gamma},
      {"plateau-factor", "0.5", "lr factor on a plateau (plateau)", &o.plateau_factor},
      {"plateau-patience", "3", "epochs without improvement before reducing (plateau)", &o.plateau_patience},
      {"label-smoothing", "0.0", "cross-entropy label smoothing", &o.label_smoothing},
      {"class-weights", "false", "balanced class weights in the loss", &o.class_weights},
      {"balanced-sampler", "false", "class-balanced sampling instead of shuffling", &o.balanced_sampler},
      {"clip-grad", "0", "clip the gradient norm to this value (0 = off)", &o.clip_grad},
      {"patience", "0", "early stopping: epochs without improvement (0 = off)", &o.patience},
      {"equalize", "true", "histogram equalisation of every face (at training and inference)",
       &o.spec.preprocess.equalize},
      {"augment", "true", "the default augmentation: crop, flip, rotation, shift, zoom, erasing", &flags.augment},
      {"crop-size", "0", "train on random crops of this side of the 48x48 face, evaluate on the centre "
                         "crop or (--tta tencrop) ten crops, e.g. 40 (0 = the whole face)",
       &o.spec.preprocess.crop},
      {"rrc-scale", "0", "random-resized crop: area range MIN or MIN,MAX of the face (e.g. 0.8,1.2; 0 = off)",
       [&a](const std::string& v) { parse_range(v, "--rrc-scale", a.rrc_scale_min, a.rrc_scale_max); }},
      {"crop", "true", "random crop with padding (part of --augment)", &a.crop},
      {"crop-padding", "4", "padding of the random crop, pixels", &a.crop_padding},
      {"flip", "true", "horizontal flip (part of --augment)", &a.hflip},
      {"rotation", "10", "rotation range, degrees (part of --augment)", &a.rotation_deg},
      {"shift", "0.1", "shift range, fraction of the side (part of --augment)", &a.shift_frac},
      {"zoom", "0.1", "zoom range, fraction (part of --augment)", &a.zoom_frac},
      {"shear", "0", "shear range, degrees", &a.shear_deg},
      {"brightness", "0", "brightness jitter, +-fraction", &a.brightness},
      {"contrast", "0", "contrast jitter, +-fraction", &a.contrast},
      {"erase", "true", "random erasing (part of --augment)", &a.erase},
      {"mixup", "0", "mixup: blend image pairs and their labels, lam ~ Beta(alpha, alpha) (0 = off; 0.2-1 usual)",
       &o.mix.mixup_alpha},
      {"cutmix", "0", "cutmix: paste a box of another image, labels by area, lam ~ Beta(alpha, alpha) (0 = off; 1 usual)",
       &o.mix.cutmix_alpha},
      {"mix-prob", "1", "chance that a batch is mixed (mixup or cutmix with equal odds when both are on)",
       &o.mix.prob},
      {"ema", "0", "exponential moving average of the weights with this decay (e.g. 0.999), "
                   "validated each epoch and saved as OUT/best_ema.safetensors (0 = off)", &o.ema_decay},
      {"swa-epochs", "0", "stochastic weight averaging of the last N epochs, batchnorm refreshed, "
                          "saved as OUT/swa.safetensors (0 = off)", &o.swa_epochs},
      {"teacher", "", "knowledge distillation from these checkpoints' mean soft labels (comma-separated, or an ensemble manifest)",
       [&o](const std::string& v) { o.teachers = v.empty() ? std::vector<std::string>{} : checkpoint_members(v); }},
      {"kd-temperature", "4", "distillation: softmax temperature of the soft labels", &o.kd_temperature},
      {"kd-weight", "0.5", "distillation: loss = (1 - w) cross-entropy + w T^2 KL(teacher || student)",
       &o.kd_weight},
      {"threads", "0", "CPU threads for the kernels (0 = FER_THREADS or all cores)", &flags.threads},
      cli::precision_flag(flags.precision),
      {"workers", "2", "data-loading threads", &o.workers},
      {"seed", "1", "random seed (same seed + same threads = same run)", &o.seed},
      {"device", "cpu", "cpu | cuda", &flags.device},
      {"cuda-graph", "false", "cuda: replay the training step from CUDA graphs (after one eager step)",
       &flags.cuda_graph},
      {"tf32", "false", "cuda: TF32 tensor-core math in convolutions and GEMMs (10-bit mantissa products)",
       &flags.tf32},
      {"out", "runs/fer", "output directory (checkpoints, logs)", &o.out_dir},
      {"resume", "false", "continue from OUT/last.safetensors (refused if it was written with other settings)",
       &o.resume},
      {"resume-force", "false", "with --resume: continue even though the settings differ (the differences are printed)",
       &o.resume_force},
      {"fresh", "false", "start a new run in OUT: delete its checkpoints and logs first (overrides --resume)",
       &o.fresh},
      {"init", "", "start from the weights of this checkpoint (fine-tuning, warm restarts); "
                   "its architecture (model, input size, head) unless given", &o.init_from},
      {"freeze-backbone", "false", "transfer learning: freeze every block of the model's features (eval mode, no gradients)",
       &o.finetune.freeze_backbone},
      {"unfreeze-top", "0", "freeze the features except their last N blocks (phase 2 of fine-tuning)",
       &o.finetune.unfreeze_top},
      {"backbone-lr-mult", "1", "learning rate of the trainable feature blocks = lr x this",
       &o.finetune.backbone_lr_mult},
      {"layer-decay", "1", "and x this per block below the top one (layer-wise lr decay)", &o.finetune.layer_decay},
      {"freeze-bn", "false", "batchnorm layers of the features keep their running statistics (eval mode) while "
                             "their scale and shift train (Keras's advice when fine-tuning)", &o.finetune.freeze_bn},
      {"cache-features", "false", "frozen backbone: compute its features once, then train the head on them",
       &o.cache_features},
      {"cache-aug-passes", "0", "with --cache-features: K augmented copies of every training face (epoch e uses copy e mod K)",
       &o.cache_aug_passes},
      {"cache-dtype", "float32", "feature cache storage: float32 | float16",
       [&o](const std::string& v) { o.cache_dtype = parse_cache_dtype(v); }},
      {"max-steps", "0", "stop each epoch after this many steps (0 = whole epoch; smoke tests)",
       &o.max_steps_per_epoch},
      {"save-every", "0", "also write OUT/last.safetensors inside epochs: every N steps (500) or M minutes (10m) "
                          "(0 = at the end of each epoch only)",
       [&o](const std::string& v) { parse_save_every(v, o); }},
      {"progress", "true", "progress: a live line on a terminal, a plain line every 30 s in a log", &o.progress},
  });
  return table;
}
}  // namespace

// The flags and their parser, together: the parser's rows point into the flags.
struct TrainCommand::State {
  TrainFlags flags;
  Args args{"fer_train", "Train a facial expression classifier on FER2013."};
  State() {
    std::string known_models;
    for (const std::string& n : model_names()) known_models += (known_models.empty() ? "" : ", ") + n;
    args.bind(train_flags(flags, known_models));
  }
};

TrainCommand::TrainCommand() = default;
TrainCommand::~TrainCommand() = default;

std::string TrainCommand::usage() { return State().args.usage(); }
std::map<std::string, std::string> TrainCommand::defaults() { return State().args.values(); }

void TrainCommand::parse(int argc, char** argv) {
  state_ = std::make_unique<State>();
  state_->args.parse(argc, argv);
  out_dir = state_->flags.train.out_dir;
}

int TrainCommand::run() {
  FER_CHECK(state_, "fer_train: run() before parse()");
  TrainFlags& flags = state_->flags;
  const Args& args = state_->args;
  TrainOptions& o = flags.train;
  o.on_progress = on_progress;
  // The flags that define the run's trajectory, stored in its checkpoints for --resume to compare.
  for (const auto& [name, value] : args.values())
    if (!kNotSettings.count(name)) o.settings[name] = value;

  if (flags.threads > 0) set_cpu_threads(static_cast<int>(flags.threads));
  cli::apply_cpu_kernels("fer_train", flags.precision);
  if (install_signal_handlers) install_stop_handlers();

  // Sizes are checked before 28,709 faces are read, and again once --init has set its own.
  auto check_sizes = [&o] {
    FER_CHECK(o.spec.preprocess.crop >= 0 && o.spec.preprocess.crop <= 48 &&
                  (o.spec.preprocess.crop == 0 || o.spec.preprocess.crop >= 16),
              "--crop-size: expected 0 or a side in 16..48, got ", o.spec.preprocess.crop);
    FER_CHECK(o.spec.config.input_size >= 16 && o.spec.config.input_size <= 1024,
              "--input-size: expected a side in 16..1024, got ", o.spec.config.input_size);
  };
  check_sizes();

  // ---- Data --------------------------------------------------------------------------------
  data::Dataset train_data = cli::load_split(flags.dataset, flags.train_split);
  if (flags.per_class_cap > 0) train_data = data::cap_per_class(train_data, flags.per_class_cap, o.seed);
  data::Dataset val_data;
  if (flags.val_split == "val" && !args.given("val-split") &&
      data::folder_root_lacks_split(flags.dataset.root, data::Split::Val)) {
    std::fprintf(stderr, "fer_train: %s has no val/ folder (Kaggle's layout: train/ and test/): holding out "
                 "%.0f%% of train/ for validation (--val-fraction); evaluate on test/ with "
                 "fer_eval --split test\n", flags.dataset.root.c_str(), 100.0 * flags.val_fraction);
    flags.val_split = "none";
  }
  if (flags.val_split != "none") {
    val_data = cli::load_split(flags.dataset, flags.val_split);
    if (flags.val_per_class_cap > 0) val_data = data::cap_per_class(val_data, flags.val_per_class_cap, o.seed);
  } else {
    auto tv = data::stratified_split(train_data, flags.val_fraction, o.seed);
    train_data = std::move(tv.train);
    val_data = std::move(tv.val);
    std::fprintf(stderr, "held out %lld of the training faces for validation\n",
                 static_cast<long long>(val_data.size()));
  }

  // ---- What the flags leave to the data, the --init checkpoint and the device -----------------
  o.spec.config.num_classes = train_data.num_classes();
  o.spec.class_names = train_data.class_names;
  if (!o.init_from.empty()) {
    inherit_architecture(args, o.spec);
    check_sizes();
  }
  // A FER CNN's input is the crop itself (the ImageNet backbones resize whatever they get).
  if (o.spec.preprocess.crop > 0 && o.spec.name.rfind("fer_", 0) == 0 && !args.given("input-size"))
    o.spec.config.input_size = o.spec.preprocess.crop;
  if (flags.augment) {
    o.augment = flags.augment_options;
    o.augment.validate();
  }
  o.device = cli::device_or_cpu("fer_train", flags.device);
  o.cuda_graph = flags.cuda_graph && o.device == Device::CUDA;
  if (flags.cuda_graph && !o.cuda_graph)
    std::fprintf(stderr, "fer_train: --cuda-graph applies to --device cuda only: the CPU runs eagerly\n");
  if (flags.tf32) {
    if (o.device == Device::CUDA) backend(Device::CUDA).set_allow_tf32(true);
    else std::fprintf(stderr, "fer_train: --tf32 applies to --device cuda only\n");
  }
  o.finetune.validate();

  {
    auto probe = create_model(o.spec.name, o.spec.config);
    std::fprintf(stderr, "model %s: %.3f M parameters, %.3f GFLOP per face (forward), %d threads\n",
                 o.spec.name.c_str(), probe->parameter_count() / 1e6,
                 forward_flops(*probe, 1, o.spec.config.input_size) / 1e9, cpu_threads());
    const FinetunePlan plan = plan_finetune(*probe, o.finetune);
    if (o.finetune.freezes() || o.finetune.freeze_bn || o.finetune.backbone_lr_mult != 1.0f ||
        o.finetune.layer_decay != 1.0f)
      std::fprintf(stderr, "%s", plan.describe().c_str());
    else
      std::fprintf(stderr, "trainable parameters: %lld (every layer)\n",
                   static_cast<long long>(plan.trainable_params));
    if (o.cache_features && !plan.backbone_frozen())
      fail("--cache-features needs the whole backbone frozen: use --freeze-backbone without --unfreeze-top");
  }
  auto train_ptr = std::make_shared<const data::Dataset>(std::move(train_data));
  auto val_ptr = std::make_shared<const data::Dataset>(std::move(val_data));
  result = train(o, train_ptr, val_ptr);
  const TrainResult& r = result;
  if (r.interrupted) return 130;
  if (r.already_complete) return 0;
  std::printf("best validation accuracy %.4f at epoch %lld: %s\n", r.best_val_acc,
              static_cast<long long>(r.best_epoch), r.best_path.c_str());
  if (o.ema_decay > 0)
    std::printf("best EMA validation accuracy %.4f at epoch %lld: %s/best_ema.safetensors\n",
                r.best_ema_val_acc, static_cast<long long>(r.best_ema_epoch), o.out_dir.c_str());
  if (!r.swa_path.empty())
    std::printf("SWA validation accuracy %.4f: %s\n", r.swa_val_acc, r.swa_path.c_str());
  return 0;
}

}  // namespace fer::cli
