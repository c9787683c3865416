// fer_eval: evaluate a checkpoint on a FER2013 split the way the field reports it.
//
//   fer_eval --checkpoint runs/main/best.safetensors --data ../shared/fer2013 --split val --out DIR
//
// Prints accuracy and the classification report (per-class precision/recall/F1/support, macro and
// weighted averages) as a table, and writes to DIR: report.json (top-level "accuracy"),
// confusion_matrix.png, roc_curves.png, faces.png (a grid of faces with true vs predicted labels),
// training_loss.png and training_accuracy.png (with --train-log), and predictions.csv.
//
// Calibration: the probabilities are the calibrated ones when the checkpoint carries a temperature
// (engine/calibration.h); the expected calibration error (15 bins) is reported before and after it,
// with reliability_diagram.png. `--calibrate` fits the temperature on this split (val/) and stores
// it in the checkpoint, for every app to apply.
//
// Several checkpoints are an ensemble (mean probabilities); with `--compare` they are instead
// models side by side: one table (accuracy, macro precision/recall/F1, per-class F1, parameters,
// FLOPs, faces/s) printed and written as compare.md / compare.json, and compare.png.
#include "apps/cli/args.h"
#include "apps/cli/eval_command.h"

int main(int argc, char** argv) {
  return fer::cli::run_main("fer_eval", [](int argc, char** argv) { return fer::cli::EvalCommand().run(argc, argv); },
                            argc, argv);
}
