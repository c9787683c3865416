#!/usr/bin/python3
"""Side-by-side CPU benchmark: this engine (build/bench_cpu, Google Benchmark) against PyTorch
running the same cases (same shapes, same network, same thread count), in one run.

  bench/bench_vs_pytorch.py [--threads N] [--build build] [--markdown FILE] [--device cpu|cuda]

Prints one row per case: our time, PyTorch's time, and ours/PyTorch as a speed ratio (>1 means
we are faster), in fp32 and in bf16 (ours with FER_PRECISION=bf16, PyTorch under
torch.autocast("cpu", dtype=torch.bfloat16)), and our GFLOP/s as a share of the machine's
measured FMA peak (BM_fma_peak); our frozen inference (BM_*_inference_frozen: the model after
freeze_for_inference(), as the apps run it) against PyTorch's deployment mode (TorchScript
frozen, optimize_for_inference), fp32. Run through scripts/bench.sh, which installs
python3-torch.
--device cuda compares the GPU instead: our build/bench_kernels "cuda/..." cases against PyTorch
eager on the GPU (cuDNN autotuning on, TF32 off on both sides); needs a CUDA build of PyTorch.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date

import torch
import torch.nn as nn
import torch.nn.functional as F


DEVICE = "cpu"        # --device; the tensors of pytorch_cases() live there
SYNC = lambda: None   # waits for the device (torch.cuda.synchronize with --device cuda)


def randn(*shape, **kw):
    return torch.randn(*shape, device=DEVICE, **kw)


def timeit(fn, min_time=1.0, warmup=2):
    for _ in range(warmup):
        fn()
    SYNC()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        SYNC()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 3:
            return elapsed / n


def timeit_after(setup, fn, min_time=1.0, warmup=2):
    """Seconds per call of fn(setup()), setup untimed (as PauseTiming in bench_cpu)."""
    for _ in range(warmup):
        fn(setup())
    n, total = 0, 0.0
    while total < min_time or n < 3:
        arg = setup()
        SYNC()
        start = time.perf_counter()
        fn(arg)
        SYNC()
        total += time.perf_counter() - start
        n += 1
    return total / n


def fer_vgg_small(classes=7):
    """The engine's fer_vgg_small, layer for layer (models/fer_cnn.cpp)."""
    layers, c = [], 1
    for width in (32, 64, 128, 256):
        for _ in range(2):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(2304, 256), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(256, classes))


CONV_SHAPES = [(1, 32, 48), (32, 32, 48), (64, 64, 24), (128, 128, 12), (256, 256, 6)]


def mobilenet_v2_96():
    """torchvision's MobileNetV2 for 7 classes; fed 3x96x96 (ours: 1x48x48 through its input
    adapter, which resizes to 96x96 and repeats the channel: a little more work on our side)."""
    import torchvision
    return torchvision.models.mobilenet_v2(num_classes=7)


def network_cases(out, name, model, x, train=True):
    """Training step (SGD) at batch 64 (unless not train) and inference at batch 1 and 64 of one network."""
    model = model.to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    y = (torch.arange(x.shape[0]) % 7).to(DEVICE)
    model.train()

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    try:
        if train:
            out[f"BM_{name}train_step/64/min_time:3.000"] = timeit(train_step, min_time=3.0)
    except RuntimeError as e:  # e.g. PyTorch 1.13 has no bf16 ReLU6 backward on the CPU
        print(f"PyTorch cannot run the {name or 'fer_vgg_small '}training step here: {e}", file=sys.stderr)
    model.eval()
    with torch.no_grad():
        for n in (1, 64):
            xi = x[:n].clone()
            out[f"BM_{name}inference/{n}"] = timeit(lambda: model(xi))
        if DEVICE == "cpu" and not torch.is_autocast_cpu_enabled():
            for n, t in frozen_inference(model, x).items():
                out[f"BM_{name}inference/{n}{FROZEN}"] = t


FROZEN = " (PyTorch frozen)"  # the suffix of the frozen-inference reference rows
FROZEN_OURS = "_frozen"  # ours frozen (Module::freeze_for_inference): BM_inference_frozen/1 against BM_inference/1 (PyTorch frozen)


def frozen_inference(model, x):
    """PyTorch's deployment mode for CPU inference: TorchScript, frozen (weights as constants,
    batchnorm folded into the convolutions) and optimize_for_inference (oneDNN's prepacked
    weights): {batch: seconds} at batch 1 and 64, or {} where this PyTorch cannot script it."""
    try:
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
    except Exception as e:  # noqa: BLE001 (any scripting failure: report it, keep the eager rows)
        print(f"PyTorch cannot freeze this network here: {e}", file=sys.stderr)
        return {}
    times = {}
    for n in (1, 64):
        xi = x[:n].clone()
        times[n] = timeit(lambda: frozen(xi))
    return times


def pytorch_cases(bf16=False):
    """name -> seconds per iteration, with names matching bench_cpu's; bf16: under autocast."""
    if bf16:
        # No weight-cast cache: the untimed no_grad forwards would leave casts without grad_fn.
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            return pytorch_cases(False)
    out = {}
    torch.manual_seed(0)
    with torch.no_grad():
        for c, k, h in CONV_SHAPES:
            x, w = randn(64, c, h, h), randn(k, c, 3, 3)
            out[f"BM_conv2d_forward/{c}/{k}/{h}"] = timeit(lambda: F.conv2d(x, w, padding=1))
    for weight_only in (False, True):  # BM_conv2d_backward: dx and dW; _weight: dW alone
        for c, k, h in CONV_SHAPES:
            x = randn(64, c, h, h, requires_grad=not weight_only)
            w = randn(k, c, 3, 3, requires_grad=True)
            probe = randn(64, k, h, h)

            def forward():  # untimed, as in ours
                x.grad = w.grad = None
                return (F.conv2d(x, w, padding=1) * probe).sum()
            name = "BM_conv2d_backward_weight" if weight_only else "BM_conv2d_backward"
            out[f"{name}/{c}/{k}/{h}"] = timeit_after(forward, lambda loss: loss.backward())
    with torch.no_grad():
        for i, o in ((2304, 256), (4608, 512)):
            x, w, b = randn(64, i), randn(o, i), randn(o)
            out[f"BM_linear/{i}/{o}"] = timeit(lambda: F.linear(x, w, b))
        for n in (1024, 4096):
            a, b = randn(n, n), randn(n, n)
            out[f"BM_gemm/{n}"] = timeit(lambda: a @ b)
        for c, h in ((32, 48), (256, 6)):
            x = randn(64, c, h, h)
            rm, rv, g, bb = (t.to(DEVICE) for t in (torch.zeros(c), torch.ones(c), torch.ones(c), torch.zeros(c)))
            out[f"BM_batchnorm_train/{c}/{h}"] = timeit(lambda: F.batch_norm(x, rm, rv, g, bb, True, 0.1, 1e-5))
            out[f"BM_max_pool2d/{c}/{h}"] = timeit(lambda: F.max_pool2d(x, 2))

    for c, h in ((32, 48), (256, 6)):  # BM_relu_train: sum(relu(x)).backward(), as ours
        x = randn(64, c, h, h).requires_grad_(True)

        def relu_train():
            F.relu(x).sum().backward()
            x.grad = None
        out[f"BM_relu_train/{c}/{h}"] = timeit(relu_train)

    for c, h in ((32, 48), (256, 6)):  # BM_batchnorm_relu_train: sum(relu(bn(x))).backward()
        x = randn(64, c, h, h).requires_grad_(True)
        g, bb = (t.to(DEVICE).requires_grad_(True) for t in (torch.ones(c), torch.zeros(c)))
        rm, rv = (t.to(DEVICE) for t in (torch.zeros(c), torch.ones(c)))

        def batchnorm_relu_train():
            F.relu(F.batch_norm(x, rm, rv, g, bb, True, 0.1, 1e-5)).sum().backward()
            x.grad = g.grad = bb.grad = None
        out[f"BM_batchnorm_relu_train/{c}/{h}"] = timeit(batchnorm_relu_train)

    network_cases(out, "", fer_vgg_small(), randn(64, 1, 48, 48))
    if DEVICE == "cpu":
        network_cases(out, "mobilenet_v2_96_", mobilenet_v2_96(), randn(64, 3, 96, 96))
    return out


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def kernels_name(name):
    """bench_kernels' "cuda/<case>" -> bench_cpu's "BM_<case>" where both time the same work
    (its batchnorm and max_pool cases time forward + backward, PyTorch's rows forward only: kept
    apart), and the CUDA-graph step as a row of its own."""
    backend, case = name.split("/", 1)
    if backend == "cuda-graph":
        return "BM_" + case.split("/min_time")[0] + " (CUDA graph)"
    if case.startswith("train_step/64"):
        return "BM_train_step/64/min_time:3.000"
    if case.startswith(("batchnorm_train", "max_pool2d")):
        return "BM_" + case.replace("/", "_fwd_bwd/", 1)
    return "BM_" + case


def ours(build, threads, precision="fp32"):
    env = dict(os.environ, FER_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               FER_PRECISION=precision)
    cmd = [os.path.join(build, "bench_cpu"), "--benchmark_format=json"]
    if DEVICE == "cuda":
        cmd = [os.path.join(build, "bench_kernels"), "--benchmark_format=json",
               "--benchmark_filter=^cuda(-graph)?/"]
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    report = json.loads(res.stdout)
    times, counters = {}, {}
    for b in report["benchmarks"]:
        name = b["name"].replace("/real_time", "")
        if DEVICE == "cuda":
            name = kernels_name(name)
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        times[name] = b["real_time"] * scale
        counters[name] = {k: v for k, v in b.items() if k in ("GFLOP/s", "images/s", "GB/s")}
        if b.get("label"):
            counters[name]["label"] = b["label"]
    return times, counters


def cpu_flags():
    """The vector units that matter here, from /proc/cpuinfo."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
                return " ".join(f for f in wanted if f in have)
    except OSError:
        pass
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default="build")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: our bench_kernels GPU cases against PyTorch on the GPU")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE, SYNC
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_vs_pytorch.py: --device cuda, but this PyTorch has no usable GPU")
        DEVICE, SYNC = "cuda", torch.cuda.synchronize
        torch.backends.cudnn.benchmark = True          # ours times cuDNN's algorithms too
        torch.backends.cudnn.allow_tf32 = False        # plain FP32 on both sides
        torch.backends.cuda.matmul.allow_tf32 = False

    mine, counters = ours(args.build, args.threads)
    theirs = pytorch_cases()
    if DEVICE == "cpu":
        mine16, _ = ours(args.build, args.threads, "bf16")
        theirs16 = pytorch_cases(bf16=True)

    if DEVICE == "cpu":
        peak = counters.get("BM_fma_peak", {}).get("GFLOP/s")
        kernels = counters.get("BM_fma_peak", {}).get("label", "?")
        lines = [f"CPU benchmark, {date.today()}, {cpu_name()} ({cpu_flags()}), {args.threads} threads, "
                 f"{kernels}; measured FMA peak {peak:.0f} GFLOP/s" if peak else "",
                 f"PyTorch {torch.__version__} (oneDNN convolutions); bf16 columns: ours with "
                 f"FER_PRECISION=bf16, PyTorch under torch.autocast('cpu', dtype=torch.bfloat16)",
                 "", "| case | ours fp32 | PyTorch fp32 | speed vs PyTorch | our fp32 throughput (share of peak) "
                 "| ours bf16 | PyTorch bf16 | speed vs PyTorch |", "|---|---|---|---|---|---|---|---|"]
        for name, t in mine.items():
            if name == "BM_fma_peak":
                continue
            c = counters[name]
            thr = ", ".join(f"{v:.1f} {k}" for k, v in c.items() if k != "label")
            if peak and "GFLOP/s" in c:
                thr += f" ({100 * c['GFLOP/s'] / peak:.0f}%)"
            if FROZEN_OURS in name:  # frozen against frozen (fp32)
                ref = theirs.get(name.replace(FROZEN_OURS, "") + FROZEN)
                lines.append(f"| {name}, against PyTorch frozen TorchScript | {t * 1e3:.3f} ms | "
                             + (f"{ref * 1e3:.3f} ms | {ref / t:.2f}x" if ref else "- | -") + f" | {thr} | - | - | - |")
                continue
            cells = [name]
            for ours_t, ref in ((t, theirs.get(name)), (mine16.get(name), theirs16.get(name))):
                cells += [f"{ours_t * 1e3:.3f} ms" if ours_t else "-", f"{ref * 1e3:.3f} ms" if ref else "-",
                          f"{ref / ours_t:.2f}x" if ref and ours_t else "-"]
                if len(cells) == 4:
                    cells.append(thr)
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines = [f"GPU benchmark, {date.today()}, {torch.cuda.get_device_name()}; PyTorch {torch.__version__} "
                 f"eager (cuDNN {torch.backends.cudnn.version()}, benchmark mode, TF32 off), batch 64",
                 "", "| case | ours | PyTorch | ours vs PyTorch (speed) | our throughput |",
                 "|---|---|---|---|---|"]
        for name, t in mine.items():
            ref = theirs.get(name)
            thr = ", ".join(f"{v:.1f} {k}" for k, v in counters[name].items() if k != "label")
            ratio = f"{ref / t:.2f}x" if ref else "n/a"
            lines.append(f"| {name} | {t*1e3:.3f} ms | {ref*1e3:.3f} ms | {ratio} | {thr} |" if ref
                         else f"| {name} | {t*1e3:.3f} ms | - | - | {thr} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
