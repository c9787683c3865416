#!/usr/bin/env bash
# Builds the benchmarks and runs them side by side with PyTorch on the CPU (installs Debian's
# python3-torch with OpenBLAS first), writing the markdown table to build/bench_cpu_vs_pytorch.md.
#   scripts/bench.sh [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
FER_WITH_TORCH=1 bash scripts/setup.sh
/usr/bin/python3 bench/bench_vs_pytorch.py --build build --markdown build/bench_cpu_vs_pytorch.md "$@"
