#!/usr/bin/env bash
# Installs every Debian package the build and tests need (only what is missing), then configures
# and builds the project in ./build. Safe to run again: apt-get is skipped when nothing is missing.
#
#   scripts/setup.sh            build dependencies + Release build, and onnxruntime-web (npm ci in
#                               apps/web/ort) for fer_serve's page option to run the model in the
#                               browser (FER_WEB_ORT=0 skips it: the page then says it is unavailable)
#   FER_WITH_TORCH=1 ...        also PyTorch (python3-torch, with OpenBLAS for its dense layers), the
#                               reference of the parity tests and the side-by-side benchmarks,
#                               and the real-browser test of fer_serve's page (chromium, Node, npm,
#                               then playwright-core into tests/browser/node_modules), and the
#                               ONNX export test (python3-onnx's checker, onnxruntime-node into
#                               tests/onnx/node_modules)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config doctest-dev libbenchmark-dev libstb-dev
          nlohmann-json3-dev libomp-dev
          libcpp-httplib-dev  # fer_serve's HTTP server and test client
          opencv-data opencv-doc  # Haar cascades (XML data, no OpenCV library); photos for tests
          libhdf5-dev  # fer_convert reads Keras .h5 weights (optional in CMake)
          pybind11-dev python3-pybind11 python3-dev python3-pytest python3-numpy  # the Python module fer_engine, tests/python
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)  # FFmpeg: videos in fer_predict
if [ "${FER_WEB_ORT:-1}" = 1 ]; then
  # npm fetches onnxruntime-web (apps/web/ort/package-lock.json), which fer_serve serves to its page.
  # Debian's nodejs has no npm (package npm); a NodeSource nodejs brings its own and conflicts with it.
  packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi
if [ "${FER_WITH_TORCH:-0}" = 1 ]; then
  # OpenBLAS, not Debian's reference BLAS: with the reference BLAS PyTorch's dense layers run ~30x
  # slower, which would make an unfair reference.
  packages+=(python3-torch python3-numpy libopenblas0-openmp)
  # tests/test_backbones: torchvision's ImageNet models and h5py for Keras-layout weight files.
  packages+=(python3-torchvision python3-h5py)
  # tests/browser (CTest browser_serve): Debian's chromium driven by playwright-core under Node.
  # Debian's nodejs has no npm (package npm); a NodeSource nodejs brings its own and conflicts with it.
  packages+=(chromium nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
  # tests/onnx (CTest onnx_export): the ONNX checker (python3-onnx) beside onnxruntime-node.
  packages+=(python3-onnx)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# onnxruntime-web's JavaScript and WebAssembly for fer_serve's in-browser option (served under /ort/).
web_ort=apps/web/ort
if [ "${FER_WEB_ORT:-1}" = 1 ] && { [ ! -d $web_ort/node_modules/onnxruntime-web ] ||
     [ $web_ort/package-lock.json -nt $web_ort/node_modules/.package-lock.json ]; }; then
  npm ci --prefix $web_ort --no-audit --no-fund --loglevel=error >/dev/null ||
    echo "setup: npm ci in $web_ort failed: fer_serve's page will say the in-browser option is unavailable"
fi

browser=tests/browser
if [ "${FER_WITH_TORCH:-0}" = 1 ] && { [ ! -d $browser/node_modules/playwright-core ] ||
     [ $browser/package-lock.json -nt $browser/node_modules/.package-lock.json ]; }; then
  npm ci --prefix $browser --no-audit --no-fund --loglevel=error >/dev/null ||
    echo "setup: npm ci in $browser failed: the browser test will be skipped"
fi

# onnxruntime-node ships its CPU binaries in the npm tarball; its postinstall would only fetch the
# CUDA ones (from GitHub): ONNXRUNTIME_NODE_INSTALL=skip turns that off.
onnx_test=tests/onnx
if [ "${FER_WITH_TORCH:-0}" = 1 ] && { [ ! -d $onnx_test/node_modules/onnxruntime-node ] ||
     [ $onnx_test/package-lock.json -nt $onnx_test/node_modules/.package-lock.json ]; }; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix $onnx_test --no-audit --no-fund --loglevel=error >/dev/null ||
    echo "setup: npm ci in $onnx_test failed: the ONNX export test will be skipped"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

# The Python module (built when pybind11 was found): copied into the user site of `python3`, so that
# `import fer_engine` works from any folder without PYTHONPATH. Through a temporary name and a
# rename, so that a Python process using the old copy keeps its file.
if command -v python3 >/dev/null 2>&1 && compgen -G "build/python/fer_engine*.so" >/dev/null; then
  site=$(python3 -m site --user-site)
  mkdir -p "$site"
  for module in build/python/fer_engine*.so; do
    cp "$module" "$site/.$(basename "$module").tmp" && mv -f "$site/.$(basename "$module").tmp" "$site/$(basename "$module")"
  done
  echo "setup: the Python module fer_engine is installed in $site"
fi
