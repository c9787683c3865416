// fer_train: train a facial expression classifier on FER2013.
//
//   fer_train --data ../shared/fer2013 --model fer_vgg_small --epochs 40 --out runs/vgg
//
// Reads ROOT/train (and ROOT/val for model selection, or carves --val-fraction out of train),
// prints the model's parameters and FLOPs, trains with a live progress line, logs every epoch,
// keeps OUT/best.safetensors (by validation accuracy) and OUT/last.safetensors, and stops
// cleanly on Ctrl-C (resume with --resume).
//
// Transfer learning (apps/common/finetune.h) is two runs:
//   phase 1 (head only):  fer_train --model vgg16 --freeze-backbone --cache-features --out runs/p1
//   phase 2 (top blocks): fer_train --model vgg16 --init runs/p1/best.safetensors --unfreeze-top 2
//                                   --lr 1e-4 --backbone-lr-mult 0.1 --out runs/p2
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/common/checkpoint.h"
#include "apps/common/cli.h"
#include "apps/common/dataset_args.h"
#include "apps/common/finetune.h"
#include "apps/common/trainer.h"
#include "engine/backend.h"

using namespace fer;

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
  take("stage-dropout", spec.config.stage_dropout, c.stage_dropout, std::to_string(c.stage_dropout));
  spec.config.bn_eps = c.bn_eps;
  if (!taken.empty()) std::fprintf(stderr, "from %s: %s\n", path.c_str(), taken.c_str());
}

int run(int argc, char** argv) {
  std::string known_models;
  for (const std::string& n : model_names()) known_models += (known_models.empty() ? "" : ", ") + n;
  cli::Args args("fer_train", "Train a facial expression classifier on FER2013.");
  declare_dataset_flags(args);
  args.option("train-split", "train", "split to train on")
      .option("val-split", "val", "split for model selection ('none' to carve --val-fraction from train)")
      .option("val-fraction", "0.1", "stratified fraction of train held out when there is no val split")
      .option("per-class-cap", "0", "at most this many training images per class, seeded (0 = all)")
      .option("val-per-class-cap", "0", "at most this many validation images per class, seeded (0 = all; quick runs)")
      .option("model", "fer_vgg_small", "architecture (" + known_models + ")")
      .option("input-size", "48", "backbones: the side faces are resized to (FER CNNs: 48)")
      .option("head", "gap", "backbones: gap (global average pooling) | flatten")
      .option("hidden", "", "backbones: hidden dense sizes of the head, e.g. 512 or 1024,256")
      .option("dropout", "0.5", "dropout before the dense layers")
      .option("stage-dropout", "0.0", "dropout after each pooling stage")
      .option("epochs", "40", "training epochs")
      .option("batch-size", "64", "images per step")
      .option("optimizer", "sgd", "sgd | adam | adamw")
      .option("lr", "0.01", "(peak) learning rate")
      .option("momentum", "0.9", "SGD momentum")
      .flag("nesterov", true, "Nesterov momentum")
      .option("weight-decay", "5e-4", "L2 (sgd, adam) or decoupled (adamw) weight decay")
      .option("schedule", "cosine", "none | step | cosine | onecycle | plateau")
      .option("warmup-epochs", "1", "linear warm-up epochs (cosine)")
      .option("step-size", "10", "epochs per decay (step)")
      .option("gamma", "0.1", "decay factor (step)")
      .option("plateau-factor", "0.5", "lr factor on a plateau (plateau)")
      .option("plateau-patience", "3", "epochs without improvement before reducing (plateau)")
      .option("label-smoothing", "0.0", "cross-entropy label smoothing")
      .flag("class-weights", false, "balanced class weights in the loss")
      .flag("balanced-sampler", false, "class-balanced sampling instead of shuffling")
      .option("clip-grad", "0", "clip the gradient norm to this value (0 = off)")
      .option("patience", "0", "early stopping: epochs without improvement (0 = off)")
      .flag("equalize", true, "histogram equalisation of every face (at training and inference)")
      .flag("augment", true, "the default augmentation: crop, flip, rotation, shift, zoom, erasing")
      .flag("crop", true, "random crop with padding (part of --augment)")
      .option("crop-padding", "4", "padding of the random crop, pixels")
      .flag("flip", true, "horizontal flip (part of --augment)")
      .option("rotation", "10", "rotation range, degrees (part of --augment)")
      .option("shift", "0.1", "shift range, fraction of the side (part of --augment)")
      .option("zoom", "0.1", "zoom range, fraction (part of --augment)")
      .option("shear", "0", "shear range, degrees")
      .option("brightness", "0", "brightness jitter, +-fraction")
      .option("contrast", "0", "contrast jitter, +-fraction")
      .flag("erase", true, "random erasing (part of --augment)")
      .option("threads", "0", "CPU threads for the kernels (0 = FER_THREADS or all cores)")
      .option("workers", "2", "data-loading threads")
      .option("seed", "1", "random seed (same seed + same threads = same run)")
      .option("device", "cpu", "cpu | cuda")
      .flag("cuda-graph", false, "cuda: replay the training step from CUDA graphs (after one eager step)")
      .flag("tf32", false, "cuda: TF32 tensor-core math in convolutions and GEMMs (10-bit mantissa products)")
      .option("out", "runs/fer", "output directory (checkpoints, logs)")
      .flag("resume", false, "continue from OUT/last.safetensors")
      .option("init", "", "start from the weights of this checkpoint (fine-tuning, warm restarts); "
              "its architecture (model, input size, head) unless given")
      .flag("freeze-backbone", false, "transfer learning: freeze every block of the model's features (eval mode, no gradients)")
      .option("unfreeze-top", "0", "freeze the features except their last N blocks (phase 2 of fine-tuning)")
      .option("backbone-lr-mult", "1", "learning rate of the trainable feature blocks = lr x this")
      .option("layer-decay", "1", "and x this per block below the top one (layer-wise lr decay)")
      .flag("cache-features", false, "frozen backbone: compute its features once, then train the head on them")
      .option("cache-aug-passes", "0", "with --cache-features: K augmented copies of every training face (epoch e uses copy e mod K)")
      .option("cache-dtype", "float32", "feature cache storage: float32 | float16")
      .option("max-steps", "0", "stop each epoch after this many steps (0 = whole epoch; smoke tests)")
      .flag("progress", true, "live progress line");
  args.parse(argc, argv);

  if (args.integer("threads") > 0) set_cpu_threads(static_cast<int>(args.integer("threads")));
  install_stop_handlers();

  // ---- Data --------------------------------------------------------------------------------
  data::Dataset train_data = load_split_from_flags(args, args.str("train-split"));
  if (args.integer("per-class-cap") > 0)
    train_data = data::cap_per_class(train_data, args.integer("per-class-cap"), args.integer("seed"));
  data::Dataset val_data;
  if (args.str("val-split") != "none") {
    val_data = load_split_from_flags(args, args.str("val-split"));
    if (args.integer("val-per-class-cap") > 0)
      val_data = data::cap_per_class(val_data, args.integer("val-per-class-cap"), args.integer("seed"));
  } else {
    auto tv = data::stratified_split(train_data, args.number("val-fraction"), args.integer("seed"));
    train_data = std::move(tv.train);
    val_data = std::move(tv.val);
    std::fprintf(stderr, "held out %lld of the training faces for validation\n",
                 static_cast<long long>(val_data.size()));
  }

  // ---- Options -----------------------------------------------------------------------------
  TrainOptions o;
  o.spec.name = args.str("model");
  o.spec.config.num_classes = train_data.num_classes();
  o.spec.config.dropout = static_cast<float>(args.number("dropout"));
  o.spec.config.stage_dropout = static_cast<float>(args.number("stage-dropout"));
  o.spec.config.input_size = args.integer("input-size");
  o.spec.config.head = args.str("head");
  o.spec.config.hidden = cli::parse_sizes(args.str("hidden"), "--hidden");
  o.spec.class_names = train_data.class_names;
  if (!args.str("init").empty()) inherit_architecture(args, o.spec);
  o.spec.preprocess.equalize = args.boolean("equalize");
  o.epochs = args.integer("epochs");
  o.batch_size = args.integer("batch-size");
  o.optimizer = args.str("optimizer");
  o.lr = static_cast<float>(args.number("lr"));
  o.momentum = static_cast<float>(args.number("momentum"));
  o.nesterov = args.boolean("nesterov");
  o.weight_decay = static_cast<float>(args.number("weight-decay"));
  o.schedule = args.str("schedule");
  o.warmup_epochs = args.integer("warmup-epochs");
  o.step_size = args.integer("step-size");
  o.gamma = static_cast<float>(args.number("gamma"));
  o.plateau_factor = static_cast<float>(args.number("plateau-factor"));
  o.plateau_patience = args.integer("plateau-patience");
  o.label_smoothing = static_cast<float>(args.number("label-smoothing"));
  o.class_weights = args.boolean("class-weights");
  o.balanced_sampler = args.boolean("balanced-sampler");
  o.clip_grad = static_cast<float>(args.number("clip-grad"));
  o.patience = args.integer("patience");
  if (args.boolean("augment")) {
    auto& a = o.augment;
    a.crop = args.boolean("crop");
    a.crop_padding = static_cast<int>(args.integer("crop-padding"));
    a.hflip = args.boolean("flip");
    a.rotation_deg = static_cast<float>(args.number("rotation"));
    a.shift_frac = static_cast<float>(args.number("shift"));
    a.zoom_frac = static_cast<float>(args.number("zoom"));
    a.shear_deg = static_cast<float>(args.number("shear"));
    a.brightness = static_cast<float>(args.number("brightness"));
    a.contrast = static_cast<float>(args.number("contrast"));
    a.erase = args.boolean("erase");
    a.validate();
  }
  o.workers = static_cast<int>(args.integer("workers"));
  o.seed = static_cast<uint64_t>(args.integer("seed"));
  o.device = parse_device(args.str("device"));
  if (o.device == Device::CUDA && !cuda_available()) {
    std::fprintf(stderr, "fer_train: no CUDA GPU available in this build or on this machine: using the CPU\n");
    o.device = Device::CPU;
  }
  o.cuda_graph = args.boolean("cuda-graph") && o.device == Device::CUDA;
  if (args.boolean("cuda-graph") && !o.cuda_graph)
    std::fprintf(stderr, "fer_train: --cuda-graph applies to --device cuda only: the CPU runs eagerly\n");
  if (args.boolean("tf32")) {
    if (o.device == Device::CUDA) backend(Device::CUDA).set_allow_tf32(true);
    else std::fprintf(stderr, "fer_train: --tf32 applies to --device cuda only\n");
  }
  o.out_dir = args.str("out");
  o.resume = args.boolean("resume");
  o.init_from = args.str("init");
  o.max_steps_per_epoch = args.integer("max-steps");
  o.finetune.freeze_backbone = args.boolean("freeze-backbone");
  o.finetune.unfreeze_top = args.integer("unfreeze-top");
  o.finetune.backbone_lr_mult = static_cast<float>(args.number("backbone-lr-mult"));
  o.finetune.layer_decay = static_cast<float>(args.number("layer-decay"));
  o.finetune.validate();
  o.cache_features = args.boolean("cache-features");
  o.cache_aug_passes = args.integer("cache-aug-passes");
  o.cache_dtype = parse_cache_dtype(args.str("cache-dtype"));
  o.progress = args.boolean("progress");

  {
    auto probe = create_model(o.spec.name, o.spec.config);
    std::fprintf(stderr, "model %s: %.3f M parameters, %.3f GFLOP per face (forward), %d threads\n",
                 o.spec.name.c_str(), probe->parameter_count() / 1e6,
                 forward_flops(*probe, 1, o.spec.config.input_size) / 1e9, cpu_threads());
    const FinetunePlan plan = plan_finetune(*probe, o.finetune);
    if (o.finetune.freezes() || o.finetune.backbone_lr_mult != 1.0f || o.finetune.layer_decay != 1.0f)
      std::fprintf(stderr, "%s", plan.describe().c_str());
    else
      std::fprintf(stderr, "trainable parameters: %lld (every layer)\n",
                   static_cast<long long>(plan.trainable_params));
    if (o.cache_features && !plan.backbone_frozen())
      fail("--cache-features needs the whole backbone frozen: use --freeze-backbone without --unfreeze-top");
  }
  auto train_ptr = std::make_shared<const data::Dataset>(std::move(train_data));
  auto val_ptr = std::make_shared<const data::Dataset>(std::move(val_data));
  const TrainResult r = train(o, train_ptr, val_ptr);
  if (r.interrupted) return 130;
  std::printf("best validation accuracy %.4f at epoch %lld: %s\n", r.best_val_acc,
              static_cast<long long>(r.best_epoch), r.best_path.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return cli::run_main("fer_train", run, argc, argv); }
