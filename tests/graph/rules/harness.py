"""Check one VJP rule on one small graph: finite differences in float64, and onnxruntime in float32.

A case is a few nodes from named inputs to the output ``y``. Inputs named in ``wrt`` are random graph
inputs (differentiated); the others are initializers. The check is JAX's one-direction test:
<ybar, (f(x + eps t) - f(x - eps t)) / 2 eps> == sum_i <vjp_i(ybar), t_i>, with f run by the ONNX
reference evaluator in float64; then the same rewritten graph, in float32, must pass the full checker
and give the same gradients on onnxruntime.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops._op import OpRunUnaryNum
from onnx.reference.ops.op_conv_transpose import ConvTranspose as _ReferenceConvTranspose
from onnx.reference.ops.op_max_pool import MaxPool as _ReferenceMaxPool
from scipy import special

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.emitter import AXES_AS_INPUT

OPSETS = (11, 13, 18, 21)


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
        parts = [super(ConvTranspose, self)._run(xi, wi, bi, group=1, **attrs)[0]
                 for xi, wi, bi in zip(xs, ws, bs)]
        return (np.concatenate(parts, axis=1),)


class BatchNormalization(OpRun):
    """The reference BatchNormalization of opsets 9-13 ignores ``epsilon``; inference mode only."""

    def _run(self, x, scale, bias, mean, var, **_):
        eps = next((a.f for a in self.onnx_node.attribute if a.name == "epsilon"), 1e-5)
        shape = (-1,) + (1,) * (x.ndim - 2)
        k = (scale / np.sqrt(var + eps)).reshape(shape)
        return ((x - mean.reshape(shape)) * k + bias.reshape(shape),)


class MaxUnpool(OpRun):
    """The spec's MaxUnpool: write each value at its flat index (N, C included) of a zero tensor."""

    def _run(self, x, indices, output_shape=None, **_):
        out = np.zeros(int(np.prod(output_shape)), dtype=x.dtype)
        out[indices.reshape(-1)] = x.reshape(-1)
        return (out.reshape(output_shape),)


class MaxPool(OpRun):
    """MaxPool with Indices for 2-D inputs by brute force (the reference's Indices are wrong with
    stride 1 and pads); ceil_mode and auto_pad are read off the output shape of the original op."""

    def _run(self, x, **_):
        a = {at.name: onnx.helper.get_attribute_value(at) for at in self.onnx_node.attribute}
        k, nd = a["kernel_shape"], len(a["kernel_shape"])
        s, d = a.get("strides", [1] * nd), a.get("dilations", [1] * nd)
        y_ref = _ReferenceMaxPool(self.onnx_node, self.run_params)._run(x, **_)[0]
        p = a.get("pads", [0] * 2 * nd)
        n, c, h, w = x.shape
        oh, ow = y_ref.shape[2:]
        if a.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", b"SAME_LOWER"):
            totals = [max(0, (o - 1) * st + (kk - 1) * dd + 1 - size)
                      for o, st, kk, dd, size in zip((oh, ow), s, k, d, (h, w))]
            p = [t // 2 if a["auto_pad"] == b"SAME_UPPER" else t - t // 2 for t in totals] * 2
        y = np.full((n, c, oh, ow), -np.inf, x.dtype)
        idx = np.zeros((n, c, oh, ow), np.int64)
        flat = np.arange(x.size).reshape(x.shape)
        for i in range(oh):
            for j in range(ow):
                for u in range(k[0]):
                    for v in range(k[1]):
                        r, q = i * s[0] - p[0] + u * d[0], j * s[1] - p[1] + v * d[1]
                        if 0 <= r < h and 0 <= q < w:
                            better = x[:, :, r, q] > y[:, :, i, j]
                            y[:, :, i, j] = np.where(better, x[:, :, r, q], y[:, :, i, j])
                            idx[:, :, i, j] = np.where(better, flat[:, :, r, q], idx[:, :, i, j])
        return (y, idx) if len(self.onnx_node.output) > 1 else (y,)


def reference(model: onnx.ModelProto) -> ReferenceEvaluator:
    ops = [Erf, Gelu, ConvTranspose, BatchNormalization, MaxUnpool, MaxPool]
    if any(o.domain in ("", "ai.onnx") and o.version < 13 for o in model.opset_import):
        ops += [_coerced_softmax(False), _coerced_softmax(True)]
    return ReferenceEvaluator(model, new_ops=ops)


@dataclass
class Case:
    """One rule test: ``nodes`` from ``wrt`` inputs (random, shapes given) and constants to ``y``."""
    name: str
    nodes: list
    wrt: dict  # input name -> shape
    consts: dict = field(default_factory=dict)  # name -> numpy array (float arrays follow the dtype)
    min_opset: int = 11
    max_opset: int = 21
    low: float = -2.0  # range of the random inputs
    high: float = 2.0

    def opsets(self) -> list[int]:
        chosen = [o for o in OPSETS if self.min_opset <= o <= self.max_opset]
        return chosen or [self.min_opset]


def node(op_type: str, inputs, outputs="y", axes=None, **attrs):
    """A node spec; ``axes`` becomes an attribute or an input depending on the opset."""
    outs = [outputs] if isinstance(outputs, str) else list(outputs)
    return (op_type, list(inputs), outs, axes, attrs)


def build(case: Case, opset: int, dtype) -> onnx.ModelProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits, nodes = [], []
    for name, value in case.consts.items():
        arr = np.asarray(value)
        # float64 constants follow the case dtype; float32 ones (Resize scales) stay as they are
        inits.append(numpy_helper.from_array(arr.astype(dtype) if arr.dtype == np.float64 else arr, name))
    for i, (op_type, inputs, outs, axes, attrs) in enumerate(case.nodes):
        inputs = list(inputs)
        attrs = {k: (elem if v == "dtype" else v) for k, v in attrs.items()}  # Cast(to=the case dtype)
        if axes is not None:
            if opset >= AXES_AS_INPUT.get(op_type, 10**6):
                inits.append(numpy_helper.from_array(np.array(axes, np.int64), f"axes_{i}"))
                inputs.append(f"axes_{i}")
            else:
                attrs["axes"] = axes
        nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{i}", **attrs))
    graph = helper.make_graph(
        nodes, case.name,
        [helper.make_tensor_value_info(n, elem, list(s)) for n, s in case.wrt.items()],
        [helper.make_tensor_value_info("y", elem, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    y_info = next(v for v in list(inferred.graph.output) + list(inferred.graph.value_info)
                  if v.name == "y")
    if not y_info.type.tensor_type.HasField("shape"):  # inference gave up: declare the real shape
        feeds = {n: np.zeros(s, dtype) for n, s in case.wrt.items()}
        y_info = helper.make_tensor_value_info("y", elem, reference(model).run(["y"], feeds)[0].shape)
    model.graph.output[0].CopyFrom(y_info)
    return model


def float64_runner(model: onnx.ModelProto):
    """Run a float64 model on onnxruntime where it has every kernel, else on the reference evaluator.

    Both runtimes have gaps: onnxruntime lacks float64 kernels for some ops (Conv), the reference
    evaluator gets a few ops wrong (MaxPool Indices with stride 1 and pads); the patched reference
    above covers the rest.
    """
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a missing float64 kernel: fall back to the reference
        return reference(model)
    return session


def check(case: Case, opset: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    m64 = build(case, opset, np.float64)
    g64 = vjp_model(m64, "y", list(case.wrt))
    onnx.checker.check_model(g64, full_check=True)
    xs = {n: rng.uniform(case.low, case.high, size=s) for n, s in case.wrt.items()}
    forward = float64_runner(m64)
    y = forward.run(["y"], xs)[0]
    ybar = rng.standard_normal(y.shape)
    grads = float64_runner(g64).run([f"xai_grad/{n}" for n in case.wrt], {**xs, "xai_seed": ybar})
    for n, g in zip(case.wrt, grads):
        assert g.shape == xs[n].shape, f"{case.name}: gradient of {n} has shape {g.shape}"
    t = {n: rng.standard_normal(x.shape) for n, x in xs.items()}
    eps = 1e-6
    plus = forward.run(["y"], {n: xs[n] + eps * t[n] for n in xs})[0]
    minus = forward.run(["y"], {n: xs[n] - eps * t[n] for n in xs})[0]
    numeric = float(np.sum(ybar * (plus - minus)) / (2 * eps))
    analytic = float(sum(np.sum(g * t[n]) for n, g in zip(case.wrt, grads)))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (
        f"{case.name} @ opset {opset}: finite differences {numeric:.9g} vs VJP {analytic:.9g}")
    _check_onnxruntime(case, opset, xs, ybar, grads)


def _check_onnxruntime(case: Case, opset: int, xs, ybar, grads64) -> None:
    g32 = vjp_model(build(case, opset, np.float32), "y", list(case.wrt))
    onnx.checker.check_model(g32, full_check=True)
    session = ort.InferenceSession(g32.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: x.astype(np.float32) for n, x in xs.items()}
    feeds["xai_seed"] = ybar.astype(np.float32)
    got = session.run([f"xai_grad/{n}" for n in case.wrt], feeds)
    for n, g32_, g64 in zip(case.wrt, got, grads64):
        scale = max(float(np.abs(g64).max()), 1e-6)
        err = float(np.abs(g32_ - g64).max()) / scale
        assert err < 2e-4, f"{case.name} @ opset {opset}: onnxruntime float32 off by {err:.2e} on {n}"
