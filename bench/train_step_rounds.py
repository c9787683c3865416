#!/usr/bin/python3
"""The fer_vgg_small training step (batch 64), ours against PyTorch, in alternating rounds.

  bench/train_step_rounds.py [--build build] [--threads 2] [--rounds 3] [--face | --fp32]

Each round times our step in fp32 and bf16 (build/bench_cpu's BM_train_step with FER_PRECISION)
and PyTorch's outside and under torch.autocast("cpu", dtype=torch.bfloat16), one right after the
other, and prints the four times and the two ratios. On a shared, noisy host the rounds show how
far one side-by-side table (bench_vs_pytorch.py) can be trusted. --face times one-face inference
instead (BM_inference/1 against PyTorch's eval-mode forward of one face under no_grad, and
BM_inference_frozen/1, the model frozen as the apps run it, against PyTorch's frozen
TorchScript), in fp32: the CPU-kernels issue's latency bar.
"""
import argparse
import json
import os
import subprocess

import torch

import bench_vs_pytorch as bench


def ours(build, threads, precision, case="BM_train_step"):
    env = dict(os.environ, FER_THREADS=str(threads), FER_PRECISION=precision)
    run = subprocess.run([os.path.join(build, "bench_cpu"), f"--benchmark_filter={case}",
                          "--benchmark_format=json"], env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout)["benchmarks"][0]["real_time"]  # ms


def their_face():
    """PyTorch's one-face latency in ms: eager (no_grad) and frozen TorchScript (None if it cannot)."""
    out = {}
    bench.network_cases(out, "", bench.fer_vgg_small(), torch.randn(64, 1, 48, 48), train=False)
    frozen = out.get("BM_inference/1" + bench.FROZEN)
    return out["BM_inference/1"] * 1000.0, frozen * 1000.0 if frozen else None


def theirs(bf16):
    out, x = {}, torch.randn(64, 1, 48, 48)
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            bench.network_cases(out, "", bench.fer_vgg_small(), x)
    else:
        bench.network_cases(out, "", bench.fer_vgg_small(), x)
    return out["BM_train_step/64/min_time:3.000"] * 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--face", action="store_true", help="one-face inference instead of the step")
    parser.add_argument("--fp32", action="store_true",
                        help="the fp32 step only (on CPUs without AVX512-BF16 both sides emulate bf16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for r in range(args.rounds):
        if args.face:
            o, (t, f) = ours(args.build, args.threads, "fp32", "BM_inference/1/"), their_face()
            of = ours(args.build, args.threads, "fp32", "BM_inference_frozen/1/")
            frozen = (f" | frozen: ours {of:.2f} ms, PyTorch's TorchScript {f:.2f} ms (ours {of / f:.2f}x)"
                      if f else f" | ours frozen {of:.2f} ms")
            print(f"round {r + 1}: one face ours {o:.2f} ms, PyTorch {t:.2f} ms (ours {o / t:.2f}x "
                  f"PyTorch's latency){frozen}", flush=True)
            continue
        o32, t32 = ours(args.build, args.threads, "fp32"), theirs(False)
        if args.fp32:
            print(f"round {r + 1}: fp32 ours {o32:.1f} ms, PyTorch {t32:.1f} ms ({t32 / o32:.2f}x)", flush=True)
            continue
        o16, t16 = ours(args.build, args.threads, "bf16"), theirs(True)
        print(f"round {r + 1}: fp32 ours {o32:.1f} ms, PyTorch {t32:.1f} ms ({t32 / o32:.2f}x) | "
              f"bf16 ours {o16:.1f} ms, PyTorch {t16:.1f} ms ({t16 / o16:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
