"""VJP rule of Resize (nearest, linear and cubic modes, any coordinate transformation).

Resize is linear in its input and separable: along each resized axis the output is ``M @ x`` for an
``out x in`` interpolation matrix ``M``. The rule computes each ``M`` at rewrite time by running the
ONNX reference implementation of the very same Resize (same attributes) on an identity matrix, so the
backward follows the spec's coordinate conventions exactly, then emits ``dx = M_h^T @ dy @ M_w``.
Only the last two axes may be resized (image layouts); batch and channels must keep their size.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp
from ._shared import const_input


def _resized_axes(info: GraphInfo, node) -> tuple[list[int], tuple[int, ...], tuple[int, ...]]:
    x, y = info.static_shape(node.input[0]), info.static_shape(node.output[0])
    axes = [i for i, (a, b) in enumerate(zip(x, y)) if a != b or _scale(info, node, i) not in (None, 1.0)]
    return axes, x, y


def _scale(info: GraphInfo, node, axis: int) -> float | None:
    scales = const_input(info, node, 2)
    if scales is None or scales.size == 0:
        return None
    axes = attr(node, "axes")
    full = dict(zip(axes, scales.tolist())) if axes else dict(enumerate(scales.tolist()))
    return full.get(axis, 1.0)


def _resize_check(info: GraphInfo, node, wants) -> list[str]:
    if info.static_shape(node.input[0]) is None or info.static_shape(node.output[0]) is None:
        return ["input or output size unknown"]
    problems = []
    if attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        problems.append("coordinate_transformation_mode='tf_crop_and_resize'")
    if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        problems.append(f"keep_aspect_ratio_policy={attr(node, 'keep_aspect_ratio_policy')!r}")
    if any(n and wants(n) for n in node.input[1:]):
        problems.append("roi/scales/sizes depend on the input")
    axes, x, _ = _resized_axes(info, node)
    rank = len(x)
    if any(a < rank - 2 for a in axes):
        problems.append("resizes an axis other than the last two")
    return problems


def interpolation_matrix(node, opset: int, n_in: int, n_out: int, scale: float | None) -> np.ndarray:
    """The ``n_out x n_in`` matrix of this Resize along one axis, from the reference implementation."""
    from onnx.reference import ReferenceEvaluator

    keep = {a.name: attr(node, a.name) for a in node.attribute if a.name not in ("axes",)}
    inputs = ["x", "", "scales"] if scale is not None else ["x", "", "", "sizes"]
    probe = helper.make_node("Resize", inputs, ["y"], **keep)
    graph = helper.make_graph(
        [probe], "probe", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [n_in, n_in])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 11))])
    feeds = {"x": np.eye(n_in)}
    if scale is not None:
        feeds["scales"] = np.array([scale, 1.0], dtype=np.float32)
    else:
        feeds["sizes"] = np.array([n_out, n_in], dtype=np.int64)
    (matrix,) = ReferenceEvaluator(model).run(None, feeds)
    assert matrix.shape == (n_out, n_in), matrix.shape
    return matrix


@vjp("Resize", check=_resize_check)
def resize(e: Emitter, node, g_out):
    """Resize: dx = M_h^T dy M_w, with M the per-axis interpolation matrices."""
    axes, x, y = _resized_axes(e.info, node)
    dx, rank, dtype = g_out[0], len(x), e.np_dtype(node.input[0])
    for axis in axes:
        m = interpolation_matrix(node, e.opset, x[axis], y[axis], _scale(e.info, node, axis))
        if axis == rank - 1:
            dx = e.op("MatMul", [dx, e.const(m.astype(dtype))])
        else:
            dx = e.op("MatMul", [e.const(m.T.astype(dtype)), dx])
    return (dx,) + (None,) * (len(node.input) - 1)
