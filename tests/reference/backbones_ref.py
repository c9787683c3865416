#!/usr/bin/env python3
"""The reference side of tests/test_backbones.cpp: ImageNet backbones with seeded random weights
and random BatchNorm running statistics (near the statistics of a calibration batch, so that the
random network carries signal through every layer: see randomize_batchnorms), saved as the files
fer_convert reads, together with a fixed input and what the reference framework computes from it
(in float64, from the float32 weights it saved: an exact reference for our float32 engine).

    backbones_ref.py OUTDIR CASE [CASE ...]
    CASE = torchvision:<model>:<size>        torchvision's model (mobilenet_v1: the PyTorch twin
                                             of Keras's MobileNet below, under Keras's names)
         | keras:<model>:<size>[:keras1]     a Keras Applications weights file (.h5, written
                                             with h5py in Keras's layout) and Keras's computation
                                             written out in PyTorch; ":keras1" uses Keras 1 era
                                             layer and weight names (and ResNet50's BN eps 1e-3)

For each case, with TAG = <source>_<model>[_keras1]:
    OUTDIR/TAG.safetensors | OUTDIR/TAG.h5   the weights (torchvision: the state dict, int64
                                             num_batches_tracked included; vgg16 without its
                                             138 M-parameter classifier, to keep the test fast;
                                             the others with their ImageNet heads)
    OUTDIR/TAG.io.safetensors                "input" [2, 1, 48, 48] gray faces in [0, 1];
                                             "map" the backbone's last feature map and "pooled"
                                             its global average, for that input after the
                                             engine's input adapter: bilinear resize to size x size
                                             (align_corners=False), gray -> 3 channels, the
                                             normalisation of the weights' source (torchvision:
                                             ImageNet mean/std; Keras: "caffe" for VGG16 and
                                             ResNet50, "tf" for the MobileNets and InceptionV3)
"""
import collections
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402

MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                       (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


# ---- The input adapter ---------------------------------------------------------------------------
def adapt(x, size, mode):
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    if mode == "imagenet":
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return (x - mean) / std
    if mode == "caffe":  # Keras: RGB -> BGR, x*255 - mean (BGR order); gray, so the order is moot
        return x * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    if mode == "tf":
        return x * 2.0 - 1.0
    raise ValueError(mode)


# ---- torchvision ---------------------------------------------------------------------------------
class MobileNetV1(nn.Module):
    """Keras's MobileNet (alpha 1) in PyTorch, with Keras's layer names as module names."""

    def __init__(self):
        super().__init__()
        layers = collections.OrderedDict()
        layers["conv1_pad"] = nn.ZeroPad2d((0, 1, 0, 1))
        layers["conv1"] = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        layers["conv1_bn"] = nn.BatchNorm2d(32, eps=1e-3)
        layers["conv1_relu"] = nn.ReLU6()
        c = 32
        for i, (out, stride) in enumerate(MOBILENET_V1_BLOCKS, 1):
            if stride == 2:
                layers[f"conv_pad_{i}"] = nn.ZeroPad2d((0, 1, 0, 1))
            layers[f"conv_dw_{i}"] = nn.Conv2d(c, c, 3, stride, 1 if stride == 1 else 0, groups=c, bias=False)
            layers[f"conv_dw_{i}_bn"] = nn.BatchNorm2d(c, eps=1e-3)
            layers[f"conv_dw_{i}_relu"] = nn.ReLU6()
            layers[f"conv_pw_{i}"] = nn.Conv2d(c, out, 1, bias=False)
            layers[f"conv_pw_{i}_bn"] = nn.BatchNorm2d(out, eps=1e-3)
            layers[f"conv_pw_{i}_relu"] = nn.ReLU6()
            c = out
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x):
        for layer in self.children():
            x = layer(x)
        return x


def torchvision_case(model_name):
    """(the module holding every tensor to save, the trunk: x -> last feature map)."""
    import torchvision.models as tvm
    if model_name == "vgg16":  # vgg16().features, without building the 138 M-parameter classifier
        from torchvision.models.vgg import cfgs, make_layers
        m = nn.Module()
        m.features = make_layers(cfgs["D"])
        with torch.no_grad():
            for layer in m.features:
                if isinstance(layer, nn.Conv2d):  # VGG's own initialisation, biases made nonzero
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                    layer.bias.normal_(0.0, 0.1)
        return m, m.features
    if model_name == "resnet50":
        m = tvm.resnet50()
        trunk = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
        return m, trunk
    if model_name == "mobilenet_v2":
        m = tvm.mobilenet_v2()
        return m, m.features
    if model_name == "inception_v3":
        m = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                 "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
        return m, nn.Sequential(*[getattr(m, n) for n in names])
    if model_name == "mobilenet_v1":
        m = MobileNetV1()
        return m, m
    raise ValueError(model_name)


def randomize_batchnorms(module, trunk, calibration, gen):
    """Random BatchNorm parameters and running statistics that keep a random network well
    conditioned. One pass in training mode over `calibration` (momentum 1) measures every
    BatchNorm's input; then running_var = its second moment E[x^2] (floored at 5% of the layer's
    average, for channels a ReLU left dead) x U(0.7, 1.4), running_mean = 0.1 sqrt(E[x^2]) N(0, 1).
    So every layer hands on signal of about unit scale, and keeps its mean; the BatchNorm biases
    (beta ~ N(0.5, 0.2)) keep most ReLUs open. Both keep the random network well conditioned:
    normalising by the batch's own mean, or closing half the units at every layer, makes it
    amplify relative errors layer after layer (float32 rounding included: ~3e-4 after Keras
    InceptionV3's 94 layers, in PyTorch itself), and normalising by nothing would drown the
    convolutions' spatial detail in BatchNorm offsets."""
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    module.train()
    with torch.no_grad():
        trunk(calibration)
        for m in bns:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.normal_(0.5, 0.2, generator=gen)
            second = m.running_var + m.running_mean ** 2
            second.clamp_(min=0.05 * second.mean().item())
            m.running_mean.copy_(0.1 * second.sqrt() * torch.randn(second.shape, generator=gen))
            m.running_var.copy_(second * torch.empty(second.shape).uniform_(0.7, 1.4, generator=gen))
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))
    module.eval()


# ---- Keras -----------------------------------------------------------------------------------------
def same_pad(x, kh, kw, stride):
    """TensorFlow's "SAME" padding: the odd pixel goes to the bottom/right."""
    def split(n, k):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        return total // 2, total - total // 2
    top, bottom = split(x.shape[2], kh)
    left, right = split(x.shape[3], kw)
    return F.pad(x, (left, right, top, bottom))


class KerasNet:
    """Runs a Keras architecture while building it: each layer call creates that layer's random
    weights in Keras's layout under its Keras name (auto-numbered like Keras when unnamed) and
    applies Keras's computation to a PyTorch NCHW tensor."""

    def __init__(self, seed, tf2_auto_names=False):
        self.rng = np.random.default_rng(seed)
        self.layers = []  # (name, [(role, array)]) in creation order
        self.counts = collections.Counter()
        self.tf2_auto_names = tf2_auto_names

    def _name(self, kind, name):
        if name:
            return name
        n = self.counts[kind]
        self.counts[kind] += 1
        if self.tf2_auto_names:  # TF 2: "conv2d", "conv2d_1", ...
            return kind if n == 0 else f"{kind}_{n}"
        return f"{kind}_{n + 1}"  # Keras 2: "conv2d_1", "conv2d_2", ...

    def nop(self, name):
        self.layers.append((self._name("layer", name), []))

    def conv(self, x, filters, kh, kw, stride=1, padding="valid", use_bias=True, name=None):
        name = self._name("conv2d", name)
        cin = x.shape[1]
        # Glorot-normal, Keras's default scale: std sqrt(2 / (fan_in + fan_out)).
        std = np.sqrt(2.0 / (kh * kw * (cin + filters)))
        kernel = self.rng.normal(0.0, std, (kh, kw, cin, filters)).astype(np.float32)
        weights = [("kernel", kernel)]
        bias = None
        if use_bias:
            bias = self.rng.normal(0.0, 0.1, filters).astype(np.float32)
            weights.append(("bias", bias))
        self.layers.append((name, weights))
        if padding == "same":
            x = same_pad(x, kh, kw, stride)
        w = torch.from_numpy(kernel).double().permute(3, 2, 0, 1).contiguous()
        return F.conv2d(x, w, None if bias is None else torch.from_numpy(bias).double(), stride=stride)

    def depthwise(self, x, k, stride, padding, name):
        c = x.shape[1]
        kernel = self.rng.normal(0.0, np.sqrt(2.0 / (k * k * (c + 1))), (k, k, c, 1)).astype(np.float32)
        self.layers.append((name, [("depthwise_kernel", kernel)]))
        if padding == "same":
            x = same_pad(x, k, k, stride)
        w = torch.from_numpy(kernel).double().permute(2, 3, 0, 1).contiguous()  # [C, 1, k, k]
        return F.conv2d(x, w, None, stride=stride, groups=c)

    def bn(self, x, eps, scale=True, name=None):
        """Moving statistics from the batch (x holds the calibration images too), as
        randomize_batchnorms sets them; then the inference-mode normalisation of every image."""
        name = self._name("batch_normalization", name)
        c = x.shape[1]
        gamma = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        beta = self.rng.normal(0.5, 0.2, c).astype(np.float32)
        second = (x.double() ** 2).mean(dim=(0, 2, 3)).numpy()
        second = np.maximum(second, 0.05 * second.mean())
        mean = (0.1 * np.sqrt(second) * self.rng.normal(0.0, 1.0, c)).astype(np.float32)
        var = (second * self.rng.uniform(0.7, 1.4, c)).astype(np.float32)
        weights = ([("gamma", gamma)] if scale else []) + [
            ("beta", beta), ("moving_mean", mean), ("moving_variance", var)]
        self.layers.append((name, weights))
        def t(a):
            return torch.from_numpy(a).double()
        return F.batch_norm(x, t(mean), t(var), t(gamma) if scale else None, t(beta), False, 0.0, eps)


def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


def keras_vgg16(net, x):
    for b, (n, width) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)), 1):
        for i in range(1, n + 1):
            x = F.relu(net.conv(x, width, 3, 3, padding="same", name=f"block{b}_conv{i}"))
        x = F.max_pool2d(x, 2, 2)
        net.nop(f"block{b}_pool")
    return x


def keras_resnet50(net, x, keras1):
    eps = 1e-3 if keras1 else 1.001e-5
    x = F.pad(x, (3, 3, 3, 3))
    net.nop("conv1_pad")
    x = net.conv(x, 64, 7, 7, 2, name="conv1" if keras1 else "conv1_conv")
    x = F.relu(net.bn(x, eps, name="bn_conv1" if keras1 else "conv1_bn"))
    x = F.pad(x, (1, 1, 1, 1))  # zeros, after a ReLU: the same as -inf padding
    net.nop("pool1_pad")
    x = F.max_pool2d(x, 3, 2)
    for s, (f, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 2):
        for b in range(1, blocks + 1):
            stride = (1 if s == 2 else 2) if b == 1 else 1

            def nm(k, kind):
                if keras1:
                    branch = ("branch1", "branch2a", "branch2b", "branch2c")[k]
                    return f"{'res' if kind == 'conv' else 'bn'}{s}{'abcdef'[b - 1]}_{branch}"
                return f"conv{s}_block{b}_{k}_{kind}"
            shortcut = x
            if b == 1:  # Keras's ResNet50 (v1): the stride is on the 1x1 convolutions
                shortcut = net.bn(net.conv(x, 4 * f, 1, 1, stride, name=nm(0, "conv")), eps, name=nm(0, "bn"))
            h = F.relu(net.bn(net.conv(x, f, 1, 1, stride, name=nm(1, "conv")), eps, name=nm(1, "bn")))
            h = F.relu(net.bn(net.conv(h, f, 3, 3, 1, "same", name=nm(2, "conv")), eps, name=nm(2, "bn")))
            h = net.bn(net.conv(h, 4 * f, 1, 1, name=nm(3, "conv")), eps, name=nm(3, "bn"))
            x = F.relu(shortcut + h)
    return x


def keras_mobilenet_v2(net, x):
    eps = 1e-3
    x = same_pad(x, 3, 3, 2)  # Keras's correct_pad
    net.nop("Conv1_pad")
    x = relu6(net.bn(net.conv(x, 32, 3, 3, 2, use_bias=False, name="Conv1"), eps, name="bn_Conv1"))
    blocks = [(16, 1, 1)] + [(24, 2, 6), (24, 1, 6)] + [(32, 2, 6)] + [(32, 1, 6)] * 2 + \
             [(64, 2, 6)] + [(64, 1, 6)] * 3 + [(96, 1, 6)] * 3 + [(160, 2, 6)] + [(160, 1, 6)] * 2 + [(320, 1, 6)]
    for block_id, (filters, stride, expansion) in enumerate(blocks):
        inputs, cin = x, x.shape[1]
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        if block_id:
            x = net.conv(x, expansion * cin, 1, 1, use_bias=False, name=prefix + "expand")
            x = relu6(net.bn(x, eps, name=prefix + "expand_BN"))
        if stride == 2:
            x = same_pad(x, 3, 3, 2)
            net.nop(prefix + "pad")
        x = net.depthwise(x, 3, stride, "same" if stride == 1 else "valid", name=prefix + "depthwise")
        x = relu6(net.bn(x, eps, name=prefix + "depthwise_BN"))
        x = net.bn(net.conv(x, filters, 1, 1, use_bias=False, name=prefix + "project"), eps, name=prefix + "project_BN")
        if cin == filters and stride == 1:
            x = inputs + x
            net.nop(prefix + "add")
    return relu6(net.bn(net.conv(x, 1280, 1, 1, use_bias=False, name="Conv_1"), eps, name="Conv_1_bn"))


def keras_mobilenet_v1(net, x):
    eps = 1e-3
    x = F.pad(x, (0, 1, 0, 1))
    net.nop("conv1_pad")
    x = relu6(net.bn(net.conv(x, 32, 3, 3, 2, use_bias=False, name="conv1"), eps, name="conv1_bn"))
    for i, (filters, stride) in enumerate(MOBILENET_V1_BLOCKS, 1):
        if stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
            net.nop(f"conv_pad_{i}")
        x = net.depthwise(x, 3, stride, "same" if stride == 1 else "valid", name=f"conv_dw_{i}")
        x = relu6(net.bn(x, eps, name=f"conv_dw_{i}_bn"))
        x = net.conv(x, filters, 1, 1, use_bias=False, name=f"conv_pw_{i}")
        x = relu6(net.bn(x, eps, name=f"conv_pw_{i}_bn"))
    return x


def keras_inception_v3(net, x):
    def cbr(x, filters, rows, cols, padding="same", strides=1):
        x = net.conv(x, filters, rows, cols, strides, padding, use_bias=False)
        return F.relu(net.bn(x, 1e-3, scale=False))

    def avg(x):  # AveragePooling2D((3, 3), strides=(1, 1), padding="same"): padding not counted
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    def maxp(x):
        return F.max_pool2d(x, 3, 2)

    x = cbr(x, 32, 3, 3, "valid", 2)
    x = cbr(x, 32, 3, 3, "valid")
    x = cbr(x, 64, 3, 3)
    x = maxp(x)
    x = cbr(x, 80, 1, 1, "valid")
    x = cbr(x, 192, 3, 3, "valid")
    x = maxp(x)
    for pool_features in (32, 64, 64):  # mixed 0, 1, 2
        b1 = cbr(x, 64, 1, 1)
        b5 = cbr(cbr(x, 48, 1, 1), 64, 5, 5)
        bd = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
        bp = cbr(avg(x), pool_features, 1, 1)
        x = torch.cat([b1, b5, bd, bp], 1)
    b3 = cbr(x, 384, 3, 3, "valid", 2)  # mixed 3
    bd = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, "valid", 2)
    x = torch.cat([b3, bd, maxp(x)], 1)
    for c7 in (128, 160, 160, 192):  # mixed 4-7
        b1 = cbr(x, 192, 1, 1)
        b7 = cbr(cbr(cbr(x, c7, 1, 1), c7, 1, 7), 192, 7, 1)
        bd = cbr(cbr(cbr(cbr(cbr(x, c7, 1, 1), c7, 7, 1), c7, 1, 7), c7, 7, 1), 192, 1, 7)
        bp = cbr(avg(x), 192, 1, 1)
        x = torch.cat([b1, b7, bd, bp], 1)
    b3 = cbr(cbr(x, 192, 1, 1), 320, 3, 3, "valid", 2)  # mixed 8
    b7 = cbr(cbr(cbr(cbr(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, "valid", 2)
    x = torch.cat([b3, b7, maxp(x)], 1)
    for _ in range(2):  # mixed 9, 10
        b1 = cbr(x, 320, 1, 1)
        t = cbr(x, 384, 1, 1)
        b3 = torch.cat([cbr(t, 384, 1, 3), cbr(t, 384, 3, 1)], 1)
        d = cbr(cbr(x, 448, 1, 1), 384, 3, 3)
        bd = torch.cat([cbr(d, 384, 1, 3), cbr(d, 384, 3, 1)], 1)
        bp = cbr(avg(x), 192, 1, 1)
        x = torch.cat([b1, b3, bd, bp], 1)
    return x


KERAS = {"vgg16": (keras_vgg16, "caffe"), "resnet50": (keras_resnet50, "caffe"),
         "mobilenet_v2": (keras_mobilenet_v2, "tf"), "mobilenet_v1": (keras_mobilenet_v1, "tf"),
         "inception_v3": (keras_inception_v3, "tf")}

KERAS1_ROLES = {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta",
                "moving_mean": "running_mean", "moving_variance": "running_std"}


def write_keras_h5(path, layers, keras1, order, variant):
    """Keras's save_weights layout: root attr layer_names, per layer a group with attr
    weight_names listing its datasets (paths relative to the group). `variant` exercises the
    other forms real files take: "chunked" (layer_names split into layer_names0, 1, as Keras does
    past 64 KiB; float64 biases), "vlen" (variable-length UTF-8 string attributes), "whole_model"
    (model.save: the weights under /model_weights)."""
    import h5py

    def strings(items):
        if variant == "vlen":
            return list(items)  # h5py stores a list of str as variable-length strings
        return np.array([n.encode("utf8") for n in items])

    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if variant == "whole_model" else f
        root.attrs["keras_version"] = b"1.2.2" if keras1 else b"2.2.4"
        root.attrs["backend"] = b"tensorflow"
        names = strings(order)
        if variant == "chunked":
            half = len(names) // 2
            root.attrs["layer_names0"], root.attrs["layer_names1"] = names[:half], names[half:]
        else:
            root.attrs["layer_names"] = names
        for name, weights in layers:
            g = root.create_group(name)
            weight_names = []
            for role, array in weights:
                wname = f"{name}_{KERAS1_ROLES[role]}_1:0" if keras1 else f"{name}/{role}:0"
                data = array.astype(np.float64) if (variant == "chunked" and role == "bias") else array
                g.create_dataset(wname, data=data)
                weight_names.append(wname)
            # Keras writes np.asarray(names): an empty float array for layers without weights.
            g.attrs["weight_names"] = strings(weight_names) if weight_names else np.asarray([])


def main():
    outdir, cases = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    torch.manual_seed(3)
    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(4))
    calibration = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(6))
    for case in cases:
        parts = case.split(":")
        source, model_name, size = parts[0], parts[1], int(parts[2])
        keras1 = len(parts) > 3 and parts[3] == "keras1"
        tag = f"{source}_{model_name}" + ("_keras1" if keras1 else "")
        torch.manual_seed(sum(tag.encode()))  # deterministic, unlike hash()
        if source == "torchvision":
            module, trunk = torchvision_case(model_name)
            mode = "tf" if model_name == "mobilenet_v1" else "imagenet"
            randomize_batchnorms(module, trunk, adapt(calibration, size, mode), torch.Generator().manual_seed(5))
            state = module.state_dict()
            save_file(state, os.path.join(outdir, tag + ".safetensors"))
            module.double()  # the reference: the float32 weights, computed in float64
            with torch.no_grad():
                fmap = trunk(adapt(x.double(), size, mode))
        else:
            arch, mode = KERAS[model_name]
            net = KerasNet(seed=sum(tag.encode()), tf2_auto_names=(model_name == "inception_v3"))
            with torch.no_grad():  # the test images ride along with the calibration batch
                inp = adapt(torch.cat([calibration, x]).double(), size, mode)  # float64 reference
                fmap = arch(net, inp, keras1) if model_name == "resnet50" else arch(net, inp)
                fmap = fmap[-x.shape[0]:]
            order = [n for n, _ in net.layers]
            if model_name == "inception_v3":
                order = sorted(order)  # neither creation nor depth order: the converter must not care
            variant = {"vgg16": "chunked", "inception_v3": "vlen", "mobilenet_v1": "whole_model"}
            write_keras_h5(os.path.join(outdir, tag + ".h5"), net.layers, keras1, order,
                           variant.get(model_name, "plain"))
        save_file({"input": x, "map": fmap.float().contiguous(), "pooled": fmap.mean(dim=(2, 3)).float()},
                  os.path.join(outdir, tag + ".io.safetensors"))
        print(f"{tag}: feature map {list(fmap.shape)}, |map| max {fmap.abs().max().item():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
