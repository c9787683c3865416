#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test with CTest. Tests that need the FER2013
# images read ../shared/fer2013 (or $FER_DATA) and skip visibly when it is absent; GPU tests skip
# visibly without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
FER_WITH_TORCH=1 bash scripts/setup.sh  # PyTorch is the reference of the parity tests
export FER_THREADS="${FER_THREADS:-$(nproc)}"
ctest --test-dir build --output-on-failure -j1 "$@"
