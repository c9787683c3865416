#!/usr/bin/env bash
# The main job: set up, build, train a FER CNN on FER2013 at DATA, then evaluate the best
# checkpoint on the validation split (report.json, classification report, confusion matrix,
# ROC curves, training curves, a grid of faces).
#   scripts/run.sh [DATA] [extra fer_train flags...]      DATA defaults to ../shared/fer2013
# Environment: OUT (default runs/main), EPOCHS (default 40), FER_THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/fer2013}"
shift || true
OUT="${OUT:-runs/main}"
bash scripts/setup.sh
if [ ! -e "$DATA" ]; then
  # fer_train prints where to get FER2013 and which layouts are accepted; let it say so.
  ./build/fer_train --data "$DATA" --epochs 0 || exit 2
fi
# The recipe of the shipped checkpoint (README, "Training"); flags given to this script override it.
./build/fer_train --data "$DATA" --out "$OUT" --epochs "${EPOCHS:-40}" --optimizer adamw --lr 0.001 \
  --weight-decay 0.01 --schedule cosine --warmup-epochs 1 --resume "$@"
./build/fer_eval --checkpoint "$OUT/best.safetensors" --data "$DATA" --split val --out "$OUT/eval" \
  --train-log "$OUT/train_log.csv"
