// fer_train: train a facial expression classifier on FER2013.
//
//   fer_train --data ../shared/fer2013 --model fer_vgg_small --epochs 40 --out runs/vgg
//
// Reads ROOT/train (and ROOT/val for model selection, or carves --val-fraction out of train),
// prints the model's parameters and FLOPs, trains with a live progress line, logs every epoch,
// keeps OUT/best.safetensors (by validation accuracy) and OUT/last.safetensors, and stops
// cleanly on Ctrl-C (resume with --resume).
//
// Transfer learning (apps/training/finetune.h) is two runs:
//   phase 1 (head only):  fer_train --model vgg16 --freeze-backbone --cache-features --out runs/p1
//   phase 2 (top blocks): fer_train --model vgg16 --init runs/p1/best.safetensors --unfreeze-top 2
//                                   --lr 1e-4 --backbone-lr-mult 0.1 --out runs/p2
#include "apps/cli/args.h"
#include "apps/cli/train_command.h"

int main(int argc, char** argv) {
  return fer::cli::run_main("fer_train", [](int argc, char** argv) { return fer::cli::TrainCommand().run(argc, argv); },
                            argc, argv);
}
