#!/usr/bin/env bash
# CPU-vs-GPU benchmark: builds bench/bench_kernels.cpp (the CUDA backend turns itself on where
# nvcc and cuDNN are installed), runs every case on the CPU and on the GPU in one run, keeps the
# Google Benchmark JSON and writes a markdown table with the GPU's speed-up over the CPU.
#
#   scripts/bench_gpu.sh [--build DIR] [--out FILE.md] [--threads N] [--filter REGEX]
#
# Defaults: --build build-gpu, --out DIR/bench_gpu.md (JSON beside it), all CPU threads. Without
# a usable GPU the CPU cases still run and the table says why the GPU columns are empty.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-gpu
out=""
threads="$(nproc)"
filter="."
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --filter) filter="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench_gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
out="${out:-$build/bench_gpu.md}"
json="${out%.md}.json"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFER_BUILD_BENCH=ON -DFER_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target bench_kernels -j"$(nproc)"
FER_THREADS="$threads" OMP_NUM_THREADS="$threads" "$build/bench_kernels" \
  --benchmark_filter="$filter" --benchmark_out="$json" --benchmark_out_format=json

/usr/bin/python3 - "$json" "$out" <<'PY'
"""Google Benchmark JSON of bench_kernels -> a markdown table, one row per case, one column per
backend, speed-ups against the CPU (time_cpu / time_backend: > 1 means the GPU is faster)."""
import json
import sys
from datetime import date

src, dst = sys.argv[1], sys.argv[2]
report = json.load(open(src))
ctx = report.get("context", {})
scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
rows = {}      # case -> backend -> (seconds, counters)
backends = []  # in order of appearance
for b in report["benchmarks"]:
    if b.get("run_type") == "aggregate" or b.get("error_occurred"):
        continue
    backend, case = b["name"].split("/", 1)
    case = case.replace("/real_time", "")
    case = "/".join(p for p in case.split("/") if not p.startswith("min_time:"))
    if backend not in backends:
        backends.append(backend)
    counters = {k: b[k] for k in ("GFLOP/s", "GB/s", "images/s") if k in b}
    rows.setdefault(case, {})[backend] = (b["real_time"] * scale[b["time_unit"]], counters)


def fmt_time(s):
    return f"{s * 1e3:.3f} ms" if s >= 1e-4 else f"{s * 1e6:.1f} us"


def fmt_counters(c):
    return ", ".join(f"{v:,.1f} {k}" for k, v in c.items())


others = [b for b in backends if b != "cpu"]
header = ["case", "cpu"]
for b in others:
    header += [b, f"{b} vs cpu"]
header.append(f"{others[0]} throughput" if others else "cpu throughput")
lines = [f"bench_kernels, {date.today()}, {ctx.get('host_name', '?')} ({ctx.get('num_cpus', '?')} CPUs, "
         f"{ctx.get('cpu_threads', '?')} threads); GPU: {ctx.get('cuda', 'none')}",
         "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
for case, by in rows.items():
    cpu = by.get("cpu")
    cells = [case, fmt_time(cpu[0]) if cpu else "-"]
    for b in others:
        if b in by:
            cells += [fmt_time(by[b][0]), f"{cpu[0] / by[b][0]:.1f}x" if cpu else "-"]
        else:
            cells += ["-", "-"]
    main = by.get(others[0]) if others else cpu
    cells.append(fmt_counters(main[1]) if main else "-")
    lines.append("| " + " | ".join(cells) + " |")
table = "\n".join(lines)
print(table)
with open(dst, "w") as f:
    f.write(table + "\n")
print(f"\nwritten: {dst} (raw: {src})", file=sys.stderr)
PY
