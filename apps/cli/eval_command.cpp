// fer_eval's command as a library: its flag table and its run (apps/fer_eval.cpp documents what it
// reports and writes). The app is a main over EvalCommand::run; the Python module's evaluate()
// calls the same run with the same flags, and reads the report back as data.
#include "apps/cli/eval_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/cli/shared_flags.h"
#include "apps/report/charts.h"
#include "apps/report/csv.h"
#include "apps/training/checkpoint.h"
#include "apps/training/evaluate.h"
#include "engine/backend.h"
#include "engine/calibration.h"
#include "engine/metrics.h"
#include "models/registry.h"
#include "engine/random.h"

namespace fer::cli {

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
  bool calibrate = false, compare = false;
  std::string precision;
};

// What fer_eval knows of each checkpoint besides its predictions.
struct MemberInfo {
  std::string path, name;
  int64_t params = 0, flops = 0;
  double temperature = 1, faces_per_s = 0;
};

// The ECE before and after the temperatures, as JSON (bins of the calibrated probabilities).
// `raw` is empty for an ensemble (its members' raw probabilities are not kept).
nlohmann::json calibration_json(const Predictions& raw, const Predictions& p,
                                const std::vector<MemberInfo>& infos) {
  nlohmann::json j;
  const metrics::Calibration after = metrics::calibration(p.probs, p.labels, p.num_classes);
  j["ece"] = after.ece;
  j["bins"] = nlohmann::json::array();
  for (const auto& b : after.bins)
    j["bins"].push_back({{"count", b.count}, {"confidence", b.confidence}, {"accuracy", b.accuracy}});
  if (!raw.probs.empty()) j["ece_uncalibrated"] = metrics::calibration(raw.probs, raw.labels, raw.num_classes).ece;
  j["temperatures"] = nlohmann::json::array();
  for (const auto& m : infos) j["temperatures"].push_back(m.temperature);
  return j;
}

// Prints the ECE before and after calibration and, with --out, draws the reliability diagram.
void report_calibration(const Predictions& raw, const Predictions& p, const std::vector<MemberInfo>& infos,
                        const EvalFlags& flags) {
  const metrics::Calibration after = metrics::calibration(p.probs, p.labels, p.num_classes);
  std::vector<plot::Series> series{{"perfect calibration", {0, 1}, {0, 1}}};
  auto curve = [](const metrics::Calibration& c, const std::string& name) {
    plot::Series s{name, {}, {}};
    for (const auto& b : c.bins)
      if (b.count > 0) s.x.push_back(b.confidence), s.y.push_back(b.accuracy);
    return s;
  };
  char line[160];
  if (!raw.probs.empty()) {
    const metrics::Calibration before = metrics::calibration(raw.probs, raw.labels, raw.num_classes);
    if (infos.front().temperature != 1.0) {
      std::snprintf(line, sizeof line, "uncalibrated (ECE %.4f)", before.ece);
      series.push_back(curve(before, line));
      std::printf("calibration: ECE (15 bins) %.4f uncalibrated -> %.4f at temperature %.4f\n",
                  before.ece, after.ece, infos.front().temperature);
    } else {
      std::printf("calibration: ECE (15 bins) %.4f (no temperature in the checkpoint: fer_eval --calibrate "
                  "on val/ fits one)\n", before.ece);
    }
  } else {
    std::printf("calibration: ECE (15 bins) of the ensemble's calibrated mean %.4f\n", after.ece);
  }
  std::snprintf(line, sizeof line, "%s (ECE %.4f)",
                infos.size() == 1 && infos.front().temperature == 1.0 ? "model" : "calibrated", after.ece);
  series.push_back(curve(after, line));
  if (flags.out.empty()) return;
  fs::create_directories(flags.out);
  plot::line_chart(series, "Reliability diagram (" + flags.split + ", 15 bins)", "confidence",
                   "accuracy", flags.out + "/reliability_diagram.png");
}

// --compare: the checkpoints side by side.
int compare_models(const std::vector<MemberInfo>& infos, const std::vector<Predictions>& preds,
                   const std::vector<std::string>& class_names, const EvalFlags& flags,
                   nlohmann::json& result) {
  std::string table = "| model | checkpoint | accuracy | macro precision | macro recall | macro F1 |";
  for (const auto& c : class_names) table += " F1 " + c + " |";
  table += " parameters | GFLOP/face | faces/s |\n|---|---|---|---|---|---|";
  for (size_t c = 0; c < class_names.size(); ++c) table += "---|";
  table += "---|---|---|\n";
  nlohmann::json j = nlohmann::json::array();
  std::vector<double> accuracy;
  std::vector<std::string> names;
  char cell[1024];  // one row's cells (paths can be long)
  for (size_t m = 0; m < infos.size(); ++m) {
    const Predictions& p = preds[m];
    const auto cm = metrics::confusion_matrix(p.labels, p.predicted, static_cast<int>(p.num_classes));
    const auto r = metrics::classification_report(cm, class_names);
    std::snprintf(cell, sizeof cell, "| %s | %s | %.4f | %.4f | %.4f | %.4f |", infos[m].name.c_str(),
                  infos[m].path.c_str(), r.accuracy, r.macro_avg.precision, r.macro_avg.recall, r.macro_avg.f1);
    table += cell;
    nlohmann::json f1;
    for (const auto& c : r.classes) {
      std::snprintf(cell, sizeof cell, " %.4f |", c.f1);
      table += cell;
      f1[c.name] = c.f1;
    }
    std::snprintf(cell, sizeof cell, " %.3f M | %.3f | %.0f |\n", infos[m].params / 1e6,
                  infos[m].flops / 1e9, infos[m].faces_per_s);
    table += cell;
    j.push_back({{"checkpoint", infos[m].path}, {"model", infos[m].name}, {"accuracy", r.accuracy},
                 {"macro_precision", r.macro_avg.precision}, {"macro_recall", r.macro_avg.recall},
                 {"macro_f1", r.macro_avg.f1}, {"f1", f1}, {"parameters", infos[m].params},
                 {"flops", infos[m].flops}, {"faces_per_s", infos[m].faces_per_s}});
    accuracy.push_back(r.accuracy);
    names.push_back(fs::path(infos[m].path).parent_path().filename().string() + "/" +
                    fs::path(infos[m].path).stem().string());
  }
  std::printf("models on %s/%s (%zu faces, tta %s)\n\n%s", flags.dataset.root.c_str(), flags.split.c_str(),
              preds.front().labels.size(), flags.tta.c_str(), table.c_str());
  result = nlohmann::json{{"models", j}};
  if (flags.out.empty()) return 0;
  fs::create_directories(flags.out);
  std::ofstream(flags.out + "/compare.md") << table;
  std::ofstream(flags.out + "/compare.json") << j.dump(2) << "\n";
  plot::probability_bars(accuracy, names, "Accuracy on " + flags.split, flags.out + "/compare.png",
                         static_cast<int>(std::max_element(accuracy.begin(), accuracy.end()) - accuracy.begin()));
  std::printf("wrote %s/compare.md, compare.json and compare.png\n", flags.out.c_str());
  return 0;
}

}  // namespace

// The flags and their parser, together: the parser's rows point into the flags.
struct EvalCommand::State {
  EvalFlags flags;
  Args args{"fer_eval", "Evaluate a FER checkpoint: accuracy, classification report, "
                        "confusion matrix, ROC AUC, pictures."};
  State() {
    args.bind(cli::dataset_flags(flags.dataset));
    args.bind({
        {"checkpoint", "models/pretrained/fer_vgg_small.safetensors",
         "model checkpoint; several, comma-separated, or an ensemble manifest (NAME.json, or the name of one in models/pretrained), evaluate their ensemble (mean probabilities)", &flags.checkpoint},
        {"split", "val", "split to evaluate (train, val, test)", &flags.split},
        {"out", "", "output directory for report.json and the pictures (empty: print only)", &flags.out},
        {"tta", "none", "test-time augmentation: none | flip | tencrop", &flags.tta},
        {"calibrate", "false", "fit the temperature of the confidences on this split (val) and store it in the checkpoint",
         &flags.calibrate},
        {"compare", "false", "several checkpoints: compare them side by side (table and chart) instead of ensembling",
         &flags.compare},
        {"batch-size", "256", "faces per inference batch", &flags.batch_size},
        {"train-log", "", "fer_train's train_log.csv, to plot the training curves", &flags.train_log},
        {"grid", "48", "faces in the picture grid", &flags.grid},
        {"threads", "0", "CPU threads (0 = FER_THREADS or all cores)", &flags.threads},
        cli::precision_flag(flags.precision),
        {"device", "cpu", "cpu | cuda", &flags.device},
    });
  }
};

EvalCommand::EvalCommand() = default;
EvalCommand::~EvalCommand() = default;

std::string EvalCommand::usage() { return State().args.usage(); }
std::map<std::string, std::string> EvalCommand::defaults() { return State().args.values(); }

void EvalCommand::parse(int argc, char** argv) {
  state_ = std::make_unique<State>();
  state_->args.parse(argc, argv);
}

int EvalCommand::run() {
  FER_CHECK(state_, "fer_eval: run() before parse()");
  const EvalFlags& flags = state_->flags;
  if (flags.threads > 0) set_cpu_threads(static_cast<int>(flags.threads));
  cli::apply_cpu_kernels("fer_eval", flags.precision);
  const Device device = cli::device_or_cpu("fer_eval", flags.device);

  data::Dataset d = cli::load_split(flags.dataset, flags.split);
  const Tta tta = parse_tta(flags.tta);
  std::vector<Predictions> members;  // calibrated probabilities
  std::vector<MemberInfo> infos;
  const std::vector<std::string> checkpoints = checkpoint_members(flags.checkpoint);
  FER_CHECK(!flags.calibrate || checkpoints.size() == 1,
            "--calibrate: give one checkpoint (calibrate an ensemble's members one by one)");
  FER_CHECK(!flags.compare || checkpoints.size() >= 2, "--compare: give two or more checkpoints");
  Predictions raw_single;  // the single checkpoint's uncalibrated predictions
  for (const std::string& path : checkpoints) {
    LoadedCheckpoint ck = load_checkpoint(path, device);
    ck.model->freeze_for_inference();
    FER_CHECK(d.class_names == ck.spec.class_names, "fer_eval: the data's classes (",
              d.num_classes(), ") differ from those of ", path, " (", ck.spec.class_names.size(),
              "); pass --classes ", ck.spec.class_names.size());
    MemberInfo info;
    info.path = path;
    info.name = ck.spec.name;
    info.params = ck.model->parameter_count();
    info.flops = forward_flops(*ck.model, ck.spec.config.in_channels, ck.spec.config.input_size);
    info.temperature = calibration_temperature(ck.file.metadata, path);
    const auto start = std::chrono::steady_clock::now();
    const int64_t member = static_cast<int64_t>(members.size());
    auto batch_done = [&](int64_t done, int64_t total) {
      if (on_progress) on_progress(EvalProgress{path, member, static_cast<int64_t>(checkpoints.size()), done, total});
    };
    Predictions m = predict_dataset(*ck.model, d, ck.spec.preprocess, device, flags.batch_size, tta, batch_done);
    info.faces_per_s = static_cast<double>(d.size()) /
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (flags.calibrate) {
      info.temperature = metrics::fit_temperature(m.probs, m.labels, m.num_classes);
      store_calibration(path, info.temperature, flags.split + " (tta " + flags.tta + ")");
      std::printf("calibrated on %s: temperature %.4f stored in %s\n", flags.split.c_str(),
                  info.temperature, path.c_str());
    }
    if (checkpoints.size() == 1) raw_single = m;
    metrics::apply_temperature(m.probs, m.num_classes, info.temperature);
    score(m);
    members.push_back(std::move(m));
    infos.push_back(info);
    if (checkpoints.size() > 1 && !flags.compare)
      std::printf("member %s: accuracy %.4f\n", path.c_str(), members.back().accuracy);
  }
  if (flags.compare) return compare_models(infos, members, d.class_names, flags, result);
  const Predictions p = average_predictions(members);
  report_calibration(checkpoints.size() == 1 ? raw_single : Predictions{}, p, infos, flags);

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

  nlohmann::json j = metrics::to_json(report, cm, roc);
  j["checkpoint"] = flags.checkpoint;
  j["split"] = flags.split;
  j["tta"] = flags.tta;
  j["loss"] = p.loss;
  j["calibration"] = calibration_json(checkpoints.size() == 1 ? raw_single : Predictions{}, p, infos);
  result = j;
  const std::string& out = flags.out;
  if (out.empty()) return 0;
  fs::create_directories(out);
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
    f << "index,source,true,predicted";
    for (const auto& n : d.class_names) f << ",p_" << n;
    f << "\n";
    for (int64_t i = 0; i < d.size(); ++i) {
      f << i << ',' << report::csv_field(d.source(i)) << ',' << d.class_names[p.labels[i]] << ','
        << d.class_names[p.predicted[i]];
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

}  // namespace fer::cli
