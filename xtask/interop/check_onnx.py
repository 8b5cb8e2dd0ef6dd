"""Interop check: an ONNX model written by `cargo xtask export` passes ONNX's
own checker, and onnxruntime -- an implementation independent of this
project -- computes from it the scores `cargo xtask eval --scores` wrote:
the same class for every image, and every score within the tolerance.

It also checks the model's contract: opset 13, the input `input` float32
(batch, C, H, W) and the outputs `scores` and `probabilities` (batch, K)
with a symbolic batch axis, exercised with batches of several sizes.

Usage: python3 check_onnx.py MODEL.onnx SCORES.safetensors [TOLERANCE]
Prints one line: the images compared and the largest score difference.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

path, reference = sys.argv[1], sys.argv[2]
tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4

model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
opsets = {o.domain: o.version for o in model.opset_import}
assert opsets == {"": 13}, opsets


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


ref = load_file(reference)
x, want, labels = ref["input"], ref["scores"], ref["labels"]
n, k = want.shape
assert [i.name for i in model.graph.input] == ["input"], model.graph.input
assert [o.name for o in model.graph.output] == ["scores", "probabilities"], model.graph.output
assert dims(model.graph.input[0]) == ["batch", *x.shape[1:]], dims(model.graph.input[0])
for output in model.graph.output:
    assert dims(output) == ["batch", k], dims(output)

session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
scores, probabilities = [], []
start, sizes = 0, [1, 7, 100, 500]
while start < n:
    size = sizes[len(scores) % len(sizes)]
    s, p = session.run(["scores", "probabilities"], {"input": x[start:start + size]})
    scores.append(s)
    probabilities.append(p)
    start += size
got, probabilities = np.concatenate(scores), np.concatenate(probabilities)

assert got.shape == want.shape and got.dtype == np.float32, (got.shape, got.dtype)
same = got.argmax(axis=1) == want.argmax(axis=1)
diff = float(np.abs(got - want).max())
print(
    f"{path}: onnxruntime {ort.__version__} on {n} images: same class for {same.sum()} of {n}, "
    f"largest score difference {diff:.2e} (tolerance {tolerance:g}), "
    f"accuracy {100 * (got.argmax(axis=1) == labels).mean():.2f}%"
)
assert same.all(), f"classes differ for images {np.flatnonzero(~same)[:10]}"
assert diff <= tolerance, f"scores differ by {diff}"
e = np.exp(got - got.max(axis=1, keepdims=True))
assert np.abs(probabilities - e / e.sum(axis=1, keepdims=True)).max() < 1e-6
