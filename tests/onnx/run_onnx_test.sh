#!/bin/sh
# CTest onnx_export: run_onnx_test.sh EXPORT_PROGRAM FER_CONVERT OUT_DIR
#   1. onnx_export_models exports every registry model (and the shipped checkpoint) into OUT_DIR
#      with the engine's outputs on a seeded batch beside each file;
#   2. fer_convert --to onnx exports the shipped checkpoint again through the command line
#      (compared against the same outputs) and a fresh registry model;
#   3. compare.mjs runs every file in onnxruntime-node against the engine's outputs;
#   4. the ONNX checker of Debian's python3-onnx (full_check: with strict shape inference)
#      accepts every file;
#   5. the files (700 MB) are removed; results.json (the measured differences) stays.
# Exits 77 (CTest: skipped) saying what is missing: node, tests/onnx/node_modules (npm ci
# --prefix tests/onnx, which scripts/setup.sh runs with FER_WITH_TORCH=1) or python3-onnx.
set -eu
export_models=$1
fer_convert=$2
out=$3
case "$out" in ""|/) echo "run_onnx_test.sh: bad output folder '$out'"; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3  # Debian's, where python3-onnx is installed (not a pyenv one on PATH)

if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: node is not installed (scripts/setup.sh with FER_WITH_TORCH=1 installs it)"; exit 77
fi
if [ ! -d "$here/node_modules/onnxruntime-node" ]; then
  echo "SKIPPED: onnxruntime-node is missing: npm ci --prefix tests/onnx (scripts/setup.sh with FER_WITH_TORCH=1)"
  exit 77
fi
if ! "$python" -c 'import onnx' 2>/dev/null; then
  echo "SKIPPED: $python cannot import onnx: apt-get install python3-onnx (scripts/setup.sh with FER_WITH_TORCH=1)"
  exit 77
fi

rm -rf "$out"
mkdir -p "$out"
echo "== exporting (engine)"
"$export_models" "$out"

echo "== fer_convert --to onnx"
cd "${FER_SOURCE_DIR:-$here/../..}"
"$fer_convert" --to onnx --checkpoint models/pretrained/fer_vgg_small.safetensors \
  --out "$out/pretrained_fer_vgg_small.cli.onnx"
"$fer_convert" --to onnx --model mobilenet_v2_keras --input-size 32 --out "$out/fresh_mobilenet_v2_keras.onnx"

echo "== onnxruntime-node $(node -p "require('$here/node_modules/onnxruntime-node/package.json').version")"
node "$here/compare.mjs" "$out"

echo "== onnx.checker.check_model(full_check=True)"
"$python" - "$out" <<'EOF'
import glob, os, sys
import onnx
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx")))
assert files, "no .onnx files in " + sys.argv[1]
for path in files:
    onnx.checker.check_model(path, full_check=True)
    print("ok", os.path.basename(path))
print("onnx %s: all %d files pass the checker" % (onnx.__version__, len(files)))
EOF

# The files take 700 MB; what the run measured stays in results.json. FER_KEEP_ONNX=1 keeps them.
if [ "${FER_KEEP_ONNX:-0}" != 1 ]; then
  rm -f "$out"/*.onnx "$out"/*.f32
  echo "(removed the exported files; FER_KEEP_ONNX=1 keeps them in $out)"
fi
