"""VJP rule of Resize (nearest, linear and cubic modes, any coordinate transformation).

Resize is linear in its input and separable: along each resized axis the output is ``M @ x`` for an
``out x in`` interpolation matrix ``M``, and ``dx = M_h^T @ dy @ M_w``. ``M`` is the very same Resize
applied to an identity matrix, so the backward follows the coordinate conventions exactly: with
static sizes it is computed at rewrite time by the ONNX reference implementation and stored as a
constant; with sizes known only at run time (fully convolutional nets, FPN necks) the runtime
resizes an in-graph identity of the input's size (``EyeLike``), once per run.
Only the last two axes may be resized (image layouts); batch and channels must keep their size.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ...support.errors import ModelError
from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp
from ._shared import const_input


def _resized_axes(info: GraphInfo, node) -> list[int]:
    """The axes whose size changes: from static shapes, else the last two unless a scale says 1."""
    x, y = info.known_shape(node.input[0]), info.known_shape(node.output[0])
    rank = len(x)
    return [
        i
        for i in range(rank)
        if _scale(info, node, i) not in (None, 1.0)
        or (_static(x, i) and _static(y, i) and x[i] != y[i])
        or (i >= rank - 2 and not (_static(x, i) and _static(y, i)) and _scale(info, node, i) is None)
    ]


def _static(shape, axis: int) -> bool:
    return shape is not None and isinstance(shape[axis], int)


def _scale(info: GraphInfo, node, axis: int) -> float | None:
    scales = const_input(info, node, 2)
    if scales is None or scales.size == 0:
        return None
    axes = attr(node, "axes")
    full = dict(zip(axes, scales.tolist())) if axes else dict(enumerate(scales.tolist()))
    return full.get(axis, 1.0)


def _resize_check(info: GraphInfo, node, wants) -> list[str]:
    if info.rank(node.input[0]) is None or info.rank(node.output[0]) is None:
        return ["input or output rank unknown"]
    problems = []
    if attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        problems.append("coordinate_transformation_mode='tf_crop_and_resize'")
    if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        problems.append(f"keep_aspect_ratio_policy={attr(node, 'keep_aspect_ratio_policy')!r}")
    if any(n and wants(n) for n in node.input[1:]):
        problems.append("roi/scales/sizes depend on the input")
    rank = info.known_rank(node.input[0])
    if any(a < rank - 2 for a in _resized_axes(info, node)):
        problems.append("resizes an axis other than the last two")
    return problems


def interpolation_matrix(node, opset: int, n_in: int, n_out: int, scale: float | None) -> np.ndarray:
    """The ``n_out x n_in`` matrix of this Resize along one axis, from the reference implementation."""
    from onnx.reference import ReferenceEvaluator

    keep = {a.name: attr(node, a.name) for a in node.attribute if a.name not in ("axes",)}
    inputs = ["x", "", "scales"] if scale is not None else ["x", "", "", "sizes"]
    probe = helper.make_node("Resize", inputs, ["y"], **keep)
    graph = helper.make_graph(
        [probe],
        "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [n_in, n_in])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 11))])
    feeds = {"x": np.eye(n_in)}
    if scale is not None:
        feeds["scales"] = np.array([scale, 1.0], dtype=np.float32)
    else:
        feeds["sizes"] = np.array([n_out, n_in], dtype=np.int64)
    (matrix,) = ReferenceEvaluator(model).run(None, feeds)
    matrix = np.asarray(matrix)
    assert matrix.shape == (n_out, n_in), matrix.shape
    return matrix


@vjp("Resize", check=_resize_check)
def resize(e: Emitter, node, g_out):
    """Resize: dx = M_h^T dy M_w, with M the per-axis interpolation matrices."""
    x, y = e.info.static_shape(node.input[0]), e.info.static_shape(node.output[0])
    dx, rank, dtype = g_out[0], e.info.known_rank(node.input[0]), e.np_dtype(node.input[0])
    for axis in _resized_axes(e.info, node):
        if x is not None and y is not None:
            m_t = e.const(
                interpolation_matrix(node, e.opset, x[axis], y[axis], _scale(e.info, node, axis)).T.astype(
                    dtype
                )
            )
        else:
            m_t = _transposed_matrix_at_run_time(e, node, axis)
        if axis == rank - 1:
            dx = e.op("MatMul", [dx, e.op("Transpose", [m_t], perm=[1, 0])])
        else:
            dx = e.op("MatMul", [m_t, dx])
    return (dx,) + (None,) * (len(node.input) - 1)


def _transposed_matrix_at_run_time(e: Emitter, node, axis: int) -> str:
    """M^T ([in, out]) along ``axis``: the node's own resize of an identity of the input's size,
    along the identity's last axis (row r of the result is the resize of the unit vector e_r)."""
    x = node.input[0]
    size = e.op("Slice", [e.op("Shape", [x]), e.ints([axis]), e.ints([axis + 1])])
    square = e.op("ConstantOfShape", [e.op("Concat", [size, size], axis=0)], value=e.zero_fill(x))
    identity = e.op("EyeLike", [square])
    scales, sizes = _optional(node, 2), _optional(node, 3)
    position = _position(node, axis)
    empty = e.const(np.zeros(0, np.float32))
    if sizes is not None:
        out = e.op("Gather", [sizes, e.ints([position])], axis=0)
        resize_inputs = [identity, empty, empty, e.op("Concat", [size, out], axis=0)]
    elif scales is not None:
        scale = e.op("Gather", [scales, e.ints([position])], axis=0)
        resize_inputs = [identity, empty, e.op("Concat", [e.const(np.ones(1, np.float32)), scale], axis=0)]
    else:
        raise ModelError(f"Resize {node.name!r} has neither scales nor sizes")
    keep = {a.name: attr(node, a.name) for a in node.attribute if a.name != "axes"}
    return e.op("Resize", resize_inputs, **keep)


def _optional(node, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _position(node, axis: int) -> int:
    """Where ``axis`` sits in the scales/sizes input (which lists only ``axes`` when given)."""
    axes = attr(node, "axes")
    return list(axes).index(axis) if axes else axis
