"""The ONNX reference evaluator, patched where it deviates from the spec, as a second runtime.

Tests run rewritten graphs on it to prove they are standard ONNX (and in float64, for finite
differences). The patches fix what onnx.reference gets wrong today: Erf and Gelu computed in float32,
(Log)Softmax before opset 13 without the 2-D coercion, BatchNormalization of opsets 9-13 ignoring
epsilon, ConvTranspose with groups, and MaxPool Indices with stride 1 and pads. The ``ai.onnx.ml`` ops run
here in float64 as onnxruntime computes them (:mod:`tests.ml_reference`).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops._op import OpRunUnaryNum
from onnx.reference.ops.op_conv_transpose import ConvTranspose as _ReferenceConvTranspose
from scipy import special

from . import ml_reference


class Erf(OpRunUnaryNum):
    """The reference Erf computes in float32; finite differences need it in float64."""

    def _run(self, x):
        return (special.erf(x).astype(x.dtype),)


class Gelu(OpRun):
    """The reference Gelu goes through float32 erf; finite differences need float64."""

    def _run(self, x, approximate="none"):
        if approximate == "tanh":
            return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),)
        return (0.5 * x * (1 + special.erf(x / np.sqrt(2))),)


def _coerced_softmax(log: bool):
    """(Log)Softmax before opset 13: the input is flattened to 2-D at ``axis`` (default 1).

    The reference evaluator applies the opset-13 single-axis semantics at every opset; onnxruntime
    follows the spec, so the finite differences must too.
    """

    def _run(self, x, axis=None):
        axis = next((a.i for a in self.onnx_node.attribute if a.name == "axis"), 1)
        axes = tuple(range(axis % x.ndim, x.ndim))
        shifted = x - x.max(axis=axes, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=axes, keepdims=True))
        return (shifted - log_z if log else np.exp(shifted - log_z),)

    return type("LogSoftmax" if log else "Softmax", (OpRun,), {"_run": _run})


class ConvTranspose(_ReferenceConvTranspose):
    """The reference ConvTranspose handles group=1 only; run it once per group."""

    def _run(self, x, w, b=None, **attrs):
        group = attrs.pop("group", None) or 1
        if group == 1:
            return super()._run(x, w, b, group=1, **attrs)
        xs, ws = np.split(x, group, axis=1), np.split(w, group, axis=0)
        bs = np.split(b, group) if b is not None else [None] * group
        parts = [
            super(ConvTranspose, self)._run(xi, wi, bi, group=1, **attrs)[0] for xi, wi, bi in zip(xs, ws, bs)
        ]
        return (np.concatenate(parts, axis=1),)


class BatchNormalization(OpRun):
    """The reference BatchNormalization of opsets 9-13 ignores ``epsilon``; inference mode only."""

    def _run(self, x, scale, bias, mean, var, **_):
        eps = next((a.f for a in self.onnx_node.attribute if a.name == "epsilon"), 1e-5)
        shape = (-1,) + (1,) * (x.ndim - 2)
        k = (scale / np.sqrt(var + eps)).reshape(shape)
        return ((x - mean.reshape(shape)) * k + bias.reshape(shape),)


class MaxPool(OpRun):
    """MaxPool by brute force for 2-D inputs, with Indices (the reference's Indices are wrong with
    stride 1 and pads, and its ceil_mode output size is off); ceil_mode drops a last window that
    would start in the end padding, as onnxruntime and torch do."""

    def _run(self, x, **_):
        a = {at.name: onnx.helper.get_attribute_value(at) for at in self.onnx_node.attribute}
        k = a["kernel_shape"]
        s, d = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
        p = list(a.get("pads", [0, 0, 0, 0]))
        sizes, out = x.shape[2:], []
        auto = a.get("auto_pad", b"NOTSET")
        for i in range(2):
            span = (k[i] - 1) * d[i] + 1
            if auto in (b"SAME_UPPER", b"SAME_LOWER"):
                o = -(-sizes[i] // s[i])
                total = max(0, (o - 1) * s[i] + span - sizes[i])
                p[i] = total // 2 if auto == b"SAME_UPPER" else total - total // 2
            else:
                room = sizes[i] + p[i] + p[i + 2] - span
                o = (-(-room // s[i]) if a.get("ceil_mode", 0) else room // s[i]) + 1
                if a.get("ceil_mode", 0) and (o - 1) * s[i] >= sizes[i] + p[i]:
                    o -= 1
            out.append(o)
        return _brute_max_pool(x, k, s, d, p, out, len(self.onnx_node.output) > 1)


def _brute_max_pool(x, k, s, d, p, out, with_indices):
    n, c, h, w = x.shape
    y = np.full((n, c, *out), -np.inf, x.dtype)
    idx = np.zeros((n, c, *out), np.int64)
    flat = np.arange(x.size).reshape(x.shape)
    for i in range(out[0]):
        for j in range(out[1]):
            for u in range(k[0]):
                for v in range(k[1]):
                    r, q = i * s[0] - p[0] + u * d[0], j * s[1] - p[1] + v * d[1]
                    if 0 <= r < h and 0 <= q < w:
                        better = x[:, :, r, q] > y[:, :, i, j]
                        y[:, :, i, j] = np.where(better, x[:, :, r, q], y[:, :, i, j])
                        idx[:, :, i, j] = np.where(better, flat[:, :, r, q], idx[:, :, i, j])
    return (y, idx) if with_indices else (y,)


def reference(model: onnx.ModelProto) -> ReferenceEvaluator:
    ops = [Erf, Gelu, ConvTranspose, BatchNormalization, MaxPool, *ml_reference.OPS]
    if any(o.domain in ("", "ai.onnx") and o.version < 13 for o in model.opset_import):
        ops += [_coerced_softmax(False), _coerced_softmax(True)]
    return ReferenceEvaluator(model, new_ops=ops)


def float64_runner(model: onnx.ModelProto):
    """Run a float64 model on onnxruntime where it has every kernel, else on the reference evaluator.

    Both runtimes have gaps: onnxruntime lacks float64 kernels for some ops (Conv), the reference
    evaluator gets a few ops wrong (MaxPool Indices with stride 1 and pads); the patched reference
    above covers the rest. A model with ``ai.onnx.ml`` ops runs on the reference: onnxruntime computes
    those in float32.
    """
    if any(node.domain == "ai.onnx.ml" for node in model.graph.node):
        return reference(model)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a missing float64 kernel: fall back to the reference
        return reference(model)
    return session
