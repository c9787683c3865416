#!/usr/bin/env python3
"""A small, dependency-free safetensors reader and writer (Debian has no python3-safetensors).

Writes the format of Hugging Face's `safetensors` (engine/safetensors.h describes it): an 8-byte
little-endian header length, a JSON header (name -> dtype, shape, data_offsets; optional
"__metadata__"), padded with spaces to a multiple of 8, then the raw little-endian bytes. Accepts
torch tensors or NumPy arrays; torch's bfloat16 is written as BF16.

Saving a torchvision model for fer_convert (from the repository root):

    import sys, torchvision; sys.path.insert(0, "tests/reference")
    from safetensors_io import save_file
    save_file(torchvision.models.resnet50(weights="DEFAULT").state_dict(), "resnet50.safetensors")
"""
import json
import struct

import numpy as np

_NUMPY_DTYPES = {
    np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}
_FROM_CODE = {code: dtype for dtype, code in _NUMPY_DTYPES.items()}


def _as_bytes(value):
    """(dtype code, shape, little-endian bytes) of a torch tensor or array-like."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().contiguous()
        if str(value.dtype) == "torch.bfloat16":
            raw = value.view(dtype=__import__("torch").int16).numpy()
            return "BF16", list(value.shape), raw.astype("<i2").tobytes()
        value = value.numpy()
    array = np.asarray(value)  # (np.ascontiguousarray would turn a scalar into shape [1])
    if not array.flags["C_CONTIGUOUS"]:
        array = array.copy(order="C")
    if array.dtype not in _NUMPY_DTYPES:
        raise TypeError(f"safetensors: unsupported dtype {array.dtype}")
    return _NUMPY_DTYPES[array.dtype], list(array.shape), array.astype(array.dtype.newbyteorder("<")).tobytes()


def save_file(tensors, path, metadata=None):
    """Writes {name: tensor} to `path` (names sorted, as the reference implementation does)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        code, shape, raw = _as_bytes(tensors[name])
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def load_file(path):
    """{name: NumPy array} and the metadata dict of a safetensors file (BF16 is not read)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = _FROM_CODE[info["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return out, metadata
