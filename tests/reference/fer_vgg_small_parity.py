#!/usr/bin/env python3
"""The whole fer_vgg_small network against PyTorch: loads the weights, input and targets that
tests/test_pytorch_parity.cpp saved, runs the same forward and backward pass in PyTorch and
compares the loss, the logits and every parameter gradient with the engine's.

  fer_vgg_small_parity.py INPUT.safetensors OUTPUT.safetensors     exit 0 = they agree
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    """A minimal reader (F32 only), so the check needs nothing beyond torch and numpy."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=np.float32).copy()
                                     .reshape(info["shape"]))
    return out


class FerVggSmall(nn.Module):
    """models/fer_cnn.cpp's fer_vgg_small with dropout off, under the engine's parameter names."""

    def __init__(self, classes=7):
        super().__init__()
        layers, c = [], 1
        for width in (32, 64, 128, 256):
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(2304, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def main():
    inputs, outputs = load_safetensors(sys.argv[1]), load_safetensors(sys.argv[2])
    torch.set_num_threads(1)
    model = FerVggSmall()
    state = model.state_dict()
    model.load_state_dict({k: inputs[k].reshape(state[k].shape) for k in state})
    model.train()
    x, y = inputs["input"], inputs["target"].long()
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=0.1)
    loss.backward()

    failures = []
    def compare(name, ours, ref, tol):
        err = ((ours - ref).abs().max() / (ref.abs().max() + 1e-12)).item()
        status = "ok" if err <= tol else "MISMATCH"
        print(f"{status:8s} {name:32s} max rel err {err:.2e} (tolerance {tol:.0e})")
        if err > tol:
            failures.append(name)

    compare("loss", outputs["loss"].reshape(()), loss.detach(), 1e-5)
    compare("logits", outputs["logits"], logits.detach(), 1e-4)
    for name, p in model.named_parameters():
        # Gradients pass through eight batchnorms; float32 summation order differs from oneDNN's.
        compare("grad " + name, outputs["grad." + name].reshape(p.grad.shape), p.grad, 1e-2)
    for name, b in model.named_buffers():
        if "running" in name:
            compare("buffer " + name, outputs["buffer." + name], b, 1e-4)
    print("FAILED: " + ", ".join(failures) if failures else "all agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
