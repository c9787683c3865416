#!/usr/bin/env bash
# The recipe ablation of README ("What each recipe feature is worth"): fer_vgg_small trained at one
# fixed budget with the baseline recipe, then with one feature added at a time, each choosing on
# val/ only. Runs resume (rerun the script after an interruption), finished ones are skipped, and
# the table of results is printed at the end (runs/ablation/table.md).
#   scripts/ablation.sh [DATA] [names...]     DATA defaults to ../shared/fer2013; names: a subset
# Environment: BUILD (default build), OUT (default runs/ablation), EPOCHS (default 10),
# CAP (training faces per class, default 2000: 12,436 of the 28,709; 0 = all).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/fer2013}"
shift || true
BUILD="${BUILD:-build}"
OUT="${OUT:-runs/ablation}"
EPOCHS="${EPOCHS:-10}"
CAP="${CAP:-2000}"

BASE=(--data "$DATA" --model fer_vgg_small --per-class-cap "$CAP" --epochs "$EPOCHS" --optimizer adamw
      --lr 0.001 --weight-decay 0.01 --schedule cosine --warmup-epochs 1 --seed 1 --no-progress)
TEACHER=models/pretrained/fer_vgg_small.safetensors

# name | flags added to the baseline. base_repeat is the baseline again (the same flags; --seed 1
# is the default): how far two runs that should agree drift apart (summation order, threads)
# is the noise any difference above must clear.
CONFIGS=(
  "base|"
  "ema|--ema 0.998"
  "mixup|--mixup 0.2"
  "cutmix|--cutmix 1.0"
  "distill|--teacher $TEACHER --kd-temperature 4 --kd-weight 0.5"
  "rrc|--rrc-scale 0.8,1.2"
  "crop40|--crop-size 40"
  "swa|--swa-epochs 3"
  "sgd_plateau|--optimizer sgd --lr 0.01 --momentum 0.9 --weight-decay 5e-4 --schedule plateau --plateau-factor 0.75 --plateau-patience 2"
  "base_repeat|--seed 1"
  "label_smoothing|--label-smoothing 0.1"
)

mkdir -p "$OUT"
for entry in "${CONFIGS[@]}"; do
  name="${entry%%|*}"
  extra="${entry#*|}"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  if [ -f "$OUT/$name/train_log.csv" ] && \
     [ "$(($(wc -l < "$OUT/$name/train_log.csv") - 1))" -ge "$EPOCHS" ]; then
    echo "$name: done"
    continue
  fi
  echo "$name: training (${extra:-baseline})"
  # shellcheck disable=SC2086  # the extra flags are words
  "./$BUILD/fer_train" "${BASE[@]}" $extra --out "$OUT/$name" --resume > "$OUT/$name.log" 2>&1
done

# The table: the best val accuracy of the raw weights (and of the EMA / SWA where on).
python3 - "$OUT" "$EPOCHS" "${CONFIGS[@]}" <<'PY' | tee "$OUT/table.md"
import csv, os, re, sys
out, epochs, configs = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"| recipe | flags | best val acc (change vs base in points) (epoch) | EMA best | SWA | minutes |")
print("|---|---|---|---|---|---|")
base = None
for entry in configs:
    name, extra = entry.split("|", 1)
    log = os.path.join(out, name, "train_log.csv")
    if not os.path.exists(log):
        continue
    rows = list(csv.DictReader(open(log)))
    best = max(rows, key=lambda r: float(r["val_acc"]))
    acc = float(best["val_acc"])
    base = acc if name == "base" else base
    delta = f" ({acc - base:+.2%})" if base is not None and name != "base" else ""
    ema = max((float(r["ema_val_acc"]) for r in rows if r.get("ema_val_acc")), default=None)
    swa = None
    text = open(os.path.join(out, name + ".log")).read() if os.path.exists(os.path.join(out, name + ".log")) else ""
    m = re.search(r"SWA validation accuracy ([0-9.]+)", text)
    if m: swa = float(m.group(1))
    minutes = sum(float(r["seconds"]) for r in rows) / 60
    flags = re.sub(r"models/pretrained/", "", extra) or "(baseline)"
    print(f"| {name} | `{flags}` | {acc:.4f}{delta} ({best['epoch']}) | "
          f"{'' if ema is None else f'{ema:.4f}'} | {'' if swa is None else f'{swa:.4f}'} | {minutes:.0f} |")
PY
