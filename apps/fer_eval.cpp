// fer_eval: evaluate a checkpoint on a FER2013 split the way the field reports it.
//
//   fer_eval --checkpoint runs/main/best.safetensors --data ../shared/fer2013 --split val --out DIR
//
// Prints accuracy and the classification report (per-class precision/recall/F1/support, macro and
// weighted averages) as a table, and writes to DIR: report.json (top-level "accuracy"),
// confusion_matrix.png, roc_curves.png, faces.png (a grid of faces with true vs predicted labels),
// training_curves.png (with --train-log), and predictions.csv.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/cli/args.h"
#include "apps/cli/shared_flags.h"
#include "apps/report/charts.h"
#include "apps/training/checkpoint.h"
#include "apps/training/evaluate.h"
#include "engine/backend.h"
#include "engine/metrics.h"
#include "engine/random.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {

// Training curves from fer_train's train_log.csv (epoch, losses and accuracies).
void plot_training_curves(const std::string& log_path, const std::string& out_dir) {
  std::ifstream in(log_path);
  FER_CHECK(in.good(), "--train-log: cannot read ", log_path);
  std::string line;
  std::getline(in, line);  // header
  plot::Series tl{"train loss", {}, {}}, vl{"val loss", {}, {}}, ta{"train accuracy", {}, {}},
      va{"val accuracy", {}, {}};
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    std::stringstream ss(line);
    std::vector<double> v;
    for (std::string cell; std::getline(ss, cell, ',');) {
      try {
        v.push_back(std::stod(cell));
      } catch (...) {
        fail(log_path, ":", line_no, ": not a number: '", cell, "'");
      }
    }
    FER_CHECK(v.size() >= 5, log_path, ":", line_no, ": expected at least 5 columns");
    for (auto* s : {&tl, &ta, &vl, &va}) s->x.push_back(v[0]);
    tl.y.push_back(v[1]);
    ta.y.push_back(v[2]);
    vl.y.push_back(v[3]);
    va.y.push_back(v[4]);
  }
  plot::line_chart({tl, vl}, "Loss", "epoch", "cross-entropy", out_dir + "/training_loss.png");
  plot::line_chart({ta, va}, "Accuracy", "epoch", "accuracy", out_dir + "/training_accuracy.png");
}

// Where fer_eval's flags go.
struct EvalFlags {
  cli::DatasetFlags dataset;
  std::string checkpoint, split, out, tta, train_log, device;
  int64_t batch_size = 256, grid = 48, threads = 0;
  std::string precision;
};

int run(int argc, char** argv) {
  EvalFlags flags;
  cli::Args args("fer_eval", "Evaluate a FER checkpoint: accuracy, classification report, "
                             "confusion matrix, ROC AUC, pictures.");
  args.bind(cli::dataset_flags(flags.dataset));
  args.bind({
      {"checkpoint", "models/pretrained/fer_vgg_small.safetensors",
       "model checkpoint; several, comma-separated, evaluate their ensemble (mean probabilities)", &flags.checkpoint},
      {"split", "val", "split to evaluate (train, val, test)", &flags.split},
      {"out", "", "output directory for report.json and the pictures (empty: print only)", &flags.out},
      {"tta", "none", "test-time augmentation: none | flip | tencrop", &flags.tta},
      {"batch-size", "256", "faces per inference batch", &flags.batch_size},
      {"train-log", "", "fer_train's train_log.csv, to plot the training curves", &flags.train_log},
      {"grid", "48", "faces in the picture grid", &flags.grid},
      {"threads", "0", "CPU threads (0 = FER_THREADS or all cores)", &flags.threads},
      cli::precision_flag(flags.precision),
      {"device", "cpu", "cpu | cuda", &flags.device},
  });
  args.parse(argc, argv);
  if (flags.threads > 0) set_cpu_threads(static_cast<int>(flags.threads));
  cli::apply_cpu_kernels("fer_eval", flags.precision);
  const Device device = cli::device_or_cpu("fer_eval", flags.device);

  data::Dataset d = cli::load_split(flags.dataset, flags.split);
  const Tta tta = parse_tta(flags.tta);
  std::vector<Predictions> members;
  const std::vector<std::string> checkpoints = split_list(flags.checkpoint);
  FER_CHECK(!checkpoints.empty(), "--checkpoint: no checkpoint given");
  for (const std::string& path : checkpoints) {
    LoadedCheckpoint ck = load_checkpoint(path, device);
    FER_CHECK(d.class_names == ck.spec.class_names, "fer_eval: the data's classes (",
              d.num_classes(), ") differ from those of ", path, " (", ck.spec.class_names.size(),
              "); pass --classes ", ck.spec.class_names.size());
    members.push_back(predict_dataset(*ck.model, d, ck.spec.preprocess, device,
                                      flags.batch_size, tta));
    if (members.size() > 1 || flags.checkpoint.find(',') != std::string::npos)
      std::printf("member %s: accuracy %.4f\n", path.c_str(), members.back().accuracy);
  }
  const Predictions p = average_predictions(members);

  const int C = static_cast<int>(p.num_classes);
  const auto cm = metrics::confusion_matrix(p.labels, p.predicted, C);
  const auto report = metrics::classification_report(cm, d.class_names);
  std::vector<std::vector<float>> probs(d.size());
  for (int64_t i = 0; i < d.size(); ++i)
    probs[i].assign(p.probs.begin() + i * C, p.probs.begin() + (i + 1) * C);
  const auto roc = metrics::roc_one_vs_rest(probs, p.labels, C);

  std::printf("%s on %s/%s (%lld faces, tta %s)\n\n", flags.checkpoint.c_str(), flags.dataset.root.c_str(),
              flags.split.c_str(), static_cast<long long>(d.size()), flags.tta.c_str());
  std::printf("%s\n", metrics::format_report(report).c_str());
  std::printf("ROC AUC (one vs rest, macro): %.4f\n", metrics::macro_auc(roc));
  std::printf("accuracy: %.4f\n", report.accuracy);

  const std::string& out = flags.out;
  if (out.empty()) return 0;
  fs::create_directories(out);
  nlohmann::json j = metrics::to_json(report, cm, roc);
  j["checkpoint"] = flags.checkpoint;
  j["split"] = flags.split;
  j["tta"] = flags.tta;
  j["loss"] = p.loss;
  {
    const std::string tmp = out + "/report.json.tmp";
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    FER_CHECK(f.good(), "cannot write ", tmp);
    f.close();
    fs::rename(tmp, out + "/report.json");
  }
  {
    std::ofstream f(out + "/predictions.csv");
    f << "index,true,predicted";
    for (const auto& n : d.class_names) f << ",p_" << n;
    f << "\n";
    for (int64_t i = 0; i < d.size(); ++i) {
      f << i << ',' << d.class_names[p.labels[i]] << ',' << d.class_names[p.predicted[i]];
      for (int c = 0; c < C; ++c) f << ',' << p.probs[i * C + c];
      f << "\n";
    }
  }
  plot::confusion_matrix_heatmap(cm.counts, d.class_names,
                                 "Confusion matrix (" + flags.split + ", accuracy " +
                                     std::to_string(report.accuracy).substr(0, 6) + ")",
                                 out + "/confusion_matrix.png");
  plot::roc_curves(roc, d.class_names, out + "/roc_curves.png");

  // A seeded sample of faces with their true and predicted labels.
  Generator gen(7);
  std::vector<std::vector<uint8_t>> faces;
  std::vector<std::string> captions;
  std::vector<bool> correct;
  const int64_t n_grid = std::min<int64_t>(flags.grid, d.size());
  for (int64_t k = 0; k < n_grid; ++k) {
    const int64_t i = static_cast<int64_t>(gen.below(d.size()));
    faces.emplace_back(d.image(i), d.image(i) + 48 * 48);
    const int pred = p.predicted[i];
    char conf[16];
    std::snprintf(conf, sizeof conf, " %.0f%%", 100.0f * p.probs[i * C + pred]);
    captions.push_back("true: " + d.class_names[p.labels[i]] + " / pred: " + d.class_names[pred] + conf);
    correct.push_back(pred == p.labels[i]);
  }
  plot::image_grid(faces, 48, 48, captions, correct, 8, 3, out + "/faces.png",
                   "Faces of " + flags.split + ": true vs predicted");
  if (!flags.train_log.empty()) plot_training_curves(flags.train_log, out);
  std::printf("wrote %s/report.json and pictures\n", out.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return cli::run_main("fer_eval", run, argc, argv); }
