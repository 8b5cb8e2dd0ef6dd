"""Interop check: a checkpoint written by `cargo xtask train` is read by
Python's `safetensors` (the loader PyTorch uses), has MODELS.md's names,
shapes and dtype, and -- run through a numpy SimpleConvNet written with
PyTorch's conventions (Conv2d weight [out, in, kh, kw], cross-correlation;
Linear y = x W^T + b; flattening over C, H, W) -- classifies the embedded
test split exactly as `cargo xtask eval` reports.

With a third argument, it also writes the tensors there as a PyTorch
state dict would be saved (`safetensors.numpy.save_file`, no metadata of
ours), for `cargo xtask eval --model simple-conv-net` to read back.

Usage: python3 check_safetensors.py MODEL.safetensors EXPECTED_ACCURACY_PERCENT [STATE_DICT_OUT]
"""

import gzip
import pathlib
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

path, expected = sys.argv[1], float(sys.argv[2])
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()

want = {
    "conv1.weight": (30, 1, 5, 5), "conv1.bias": (30,),
    "fc1.weight": (100, 4320), "fc1.bias": (100,),
    "fc2.weight": (10, 100), "fc2.bias": (10,),
}
assert meta["model"] == "simple-conv-net" and meta["input_shape"] == "1,28,28", meta
assert {k: v.shape for k, v in tensors.items()} == want, {k: v.shape for k, v in tensors.items()}
assert all(v.dtype == np.float32 for v in tensors.values())

data = pathlib.Path(__file__).resolve().parents[2] / "crates/datasets/data"
images = np.frombuffer(gzip.open(data / "embedded-t10k-images-idx3-ubyte.gz").read()[16:], np.uint8)
labels = np.frombuffer(gzip.open(data / "embedded-t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
x = (images.reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0))

w, b = tensors["conv1.weight"], tensors["conv1.bias"]
windows = np.lib.stride_tricks.sliding_window_view(x, (5, 5), axis=(2, 3))  # (N, 1, 24, 24, 5, 5)
conv = np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]
relu = np.maximum(conv, 0)
pool = relu.reshape(-1, 30, 12, 2, 12, 2).max(axis=(3, 5))
h = np.maximum(pool.reshape(len(x), -1) @ tensors["fc1.weight"].T + tensors["fc1.bias"], 0)
scores = h @ tensors["fc2.weight"].T + tensors["fc2.bias"]
accuracy = 100.0 * np.mean(scores.argmax(axis=1) == labels)
print(f"numpy (PyTorch layout) accuracy on the embedded test split: {accuracy:.2f}%, cargo xtask: {expected:.2f}%")
# Summation order differs from ours, so a near-tie may flip: allow one image.
assert abs(accuracy - expected) <= 100.0 / len(labels) + 1e-9, (accuracy, expected)

if len(sys.argv) > 3:
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, sys.argv[3])
    print(f"wrote {sys.argv[3]}: {len(tensors)} tensors in PyTorch's names and layouts, no metadata")
