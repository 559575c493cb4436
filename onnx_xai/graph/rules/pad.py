"""VJP rule of Pad in all its modes: the adjoint of a fill, axis by axis, then of a crop.

**constant.** ``y`` is ``x`` with the border set to the constant (cropped where a pad is negative),
so ``dx = Pad(dy, -pads)``: the border cut away, a cropped border given back as zeros.

**reflect, edge, wrap.** As onnxruntime (and the spec) compute them, the negative pads crop first
(``x' = x[c_lo : n - c_hi]`` along each axis) and the positive pads ``(a, b)`` then fill around ``x'``
(``n'`` long) from ``x'`` itself. The fill is separable, ``y[i, j, ...] = x'[r_0(i), r_1(j), ...]``
with one index map per axis, so its adjoint is the one-axis adjoints applied in turn (any order), and
the crop's adjoint zero-pads the result back by ``(c_lo, c_hi)``. Along one axis, with ``z = dy``
(``m = a + n' + b`` long) and ``dx' = z[a : m - b]`` to start with:

- reflect (``y[i] = x'[|i - a|]`` mirrored at both ends, ``a, b <= n' - 1``): the left strip read
  ``x'[a], ..., x'[1]``, so ``dx'[1 : a + 1] += reversed(z[0 : a])``; the right strip read
  ``x'[n' - 2], ..., x'[n' - 1 - b]``, so ``dx'[n' - 1 - b : n' - 1] += reversed(z[m - b : m])``;
- edge (``y[i] = x'[clip(i - a, 0, n' - 1)]``): ``dx'[0] += sum(z[0 : a])`` and
  ``dx'[n' - 1] += sum(z[m - b : m])``;
- wrap (``y[i] = x'[(i - a) mod n']``, any ``a, b``, even beyond ``n'``): ``dx'[k]`` is the sum of
  ``z[i]`` over ``(i - a) mod n' = k``, a scatter-add of ``z`` to those indices.

Reflect and edge are emitted as Slices (negative steps for the reversals), Adds, ReduceSums and
Concats whose bounds count from either end, so ``n'`` may be known at run time only; wrap (opset 19
on) as ``ScatterElements`` with ``reduction=add`` (opset 16 on) of indices computed at run time. The
pads (and the axes, opset 18 on) must be known before run time for these three modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ...support.errors import ModelError
from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp
from ._shared import const_input

END = 2**63 - 1  # a Slice bound past the last element
BEFORE = -(2**63)  # a negative-step Slice bound before the first element


@dataclass(frozen=True)
class PadForm:
    """A Pad node's pads along every axis of its input: the crops and the fills (both >= 0)."""

    crop: tuple[tuple[int, int], ...]
    fill: tuple[tuple[int, int], ...]


def pad_form(info: GraphInfo, node) -> PadForm | str:
    """The pads per axis, or the one-line problem that keeps the node from being differentiated."""
    pads = const_input(info, node, 1) if len(node.input) > 1 else np.array(attr(node, "pads"))
    if pads is None:
        return "pads not known before run time"
    axes = const_input(info, node, 3)
    if axes is None and len(node.input) > 3 and node.input[3]:
        return "axes not known before run time"
    rank = info.rank(node.input[0])
    if rank is None and axes is not None:
        return "axes with an input of unknown rank"
    rank = rank if rank is not None else len(pads) // 2
    chosen = [int(a) % rank for a in axes] if axes is not None else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(chosen):
        begin[axis], end[axis] = int(pads[i]), int(pads[len(chosen) + i])
    crop = tuple((max(-p, 0), max(-q, 0)) for p, q in zip(begin, end))
    return PadForm(crop, tuple((max(p, 0), max(q, 0)) for p, q in zip(begin, end)))


def _pad_check(info, node, wants) -> list[str]:
    mode = attr(node, "mode", "constant")
    if mode == "constant":
        return []
    if mode not in BACK:
        return [f"mode={mode!r}"]
    if mode == "wrap" and info.rank(node.input[0]) is None:
        return ["mode='wrap' of an input of unknown rank"]
    form = pad_form(info, node)
    return [f"mode={mode!r} with {form}"] if isinstance(form, str) else []


def _cut(e: Emitter, t: str, axis: int, start: int, end: int, step: int = 1) -> str:
    """``t[start : end : step]`` along ``axis``."""
    bounds = [e.ints([start]), e.ints([end]), e.ints([axis])]
    return e.op("Slice", [t, *bounds, e.ints([step])] if step != 1 else [t, *bounds])


def _add_into(e: Emitter, t: str, axis: int, start: int, end: int, extra: str) -> str:
    """``t`` with ``extra`` added onto ``t[start : end]`` along ``axis`` (bounds may count from the
    end, ``end`` may be ``END``)."""
    parts = [_cut(e, t, axis, 0, start)] if start != 0 else []
    parts.append(e.op("Add", [_cut(e, t, axis, start, end), extra]))
    return e.op("Concat", parts + ([_cut(e, t, axis, end, END)] if end != END else []), axis=axis)


def _reflect_back(e: Emitter, z: str, axis: int, a: int, b: int, x: str) -> str:
    """The adjoint of a reflection by ``(a, b)`` along ``axis`` (module docstring)."""
    dx = _cut(e, z, axis, a, -b if b else END)
    if a:
        dx = _add_into(e, dx, axis, 1, a + 1, _cut(e, z, axis, a - 1, BEFORE, -1))
    if b:
        dx = _add_into(e, dx, axis, -(b + 1), -1, _cut(e, z, axis, -1, -(b + 1), -1))
    return dx


def _edge_back(e: Emitter, z: str, axis: int, a: int, b: int, x: str) -> str:
    """The adjoint of a replication of the end elements by ``(a, b)`` along ``axis``."""
    dx = _cut(e, z, axis, a, -b if b else END)
    if a:
        dx = _add_into(e, dx, axis, 0, 1, e.reduce("ReduceSum", _cut(e, z, axis, 0, a), [axis]))
    if b:
        dx = _add_into(e, dx, axis, -1, END, e.reduce("ReduceSum", _cut(e, z, axis, -b, END), [axis]))
    return dx


def _size(e: Emitter, t: str, axis: int) -> str:
    """The length of ``t`` along ``axis`` at run time, a 0-d int64."""
    return e.op("Gather", [e.op("Shape", [t]), e.const(np.array(axis, np.int64))])


def _wrap_back(e: Emitter, z: str, axis: int, a: int, b: int, x: str) -> str:
    """The adjoint of a circular fill by ``(a, b)`` along ``axis``: scatter-add of ``z`` to the
    indices ``(i - a) mod n'`` (float16 in a float32 island: onnxruntime's CPU ScatterElements has no
    float16 kernel)."""
    middle = _cut(e, z, axis, a, -b if b else END)
    island = e.info.dtype(x) in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    fill = numpy_helper.from_array(np.zeros(1, np.float32)) if island else e.zero_fill(x)
    zeros = e.op("ConstantOfShape", [e.op("Shape", [middle])], value=fill)
    scalar = {v: e.const(np.array(v, np.int64)) for v in (0, 1, a)}
    steps = e.op("Range", [scalar[0], _size(e, z, axis), scalar[1]])
    index = e.op("Mod", [e.op("Sub", [steps, scalar[a]]), _size(e, middle, axis)])
    trailing = len(e.info.known_shape(x)) - axis - 1
    shaped = e.op("Reshape", [index, e.ints([1] * axis + [-1] + [1] * trailing)])
    index = e.op("Expand", [shaped, e.op("Shape", [z])])
    updates = e.op("Cast", [z], to=onnx.TensorProto.FLOAT) if island else z
    dx = e.op("ScatterElements", [zeros, index, updates], axis=axis, reduction="add")
    return e.cast_like(dx, x) if island else dx


BACK = {"reflect": _reflect_back, "edge": _edge_back, "wrap": _wrap_back}


@vjp("Pad", check=_pad_check)
def pad(e: Emitter, node, g_out):
    """Pad: constant dx = Pad(dy, -pads); reflect/edge/wrap: each axis's fill adjoint, crop undone."""
    mode, x = attr(node, "mode", "constant"), node.input[0]
    rest = (None,) * (len(node.input) - 1)
    if mode == "constant":
        given = len(node.input) > 1 and node.input[1]
        pads = e.op("Neg", [node.input[1]]) if given else e.ints([-p for p in attr(node, "pads")])
        axes = [node.input[3]] if len(node.input) > 3 and node.input[3] else []
        return (e.op("Pad", [g_out[0], pads, "", *axes] if axes else [g_out[0], pads]),) + rest
    form = pad_form(e.info, node)
    if isinstance(form, str) or mode not in BACK:
        raise ModelError(f"Pad mode={mode!r}: {form}")
    dx = g_out[0]
    for axis, (a, b) in enumerate(form.fill):
        if a or b:
            dx = BACK[mode](e, dx, axis, a, b, x)
    crop = [c for c, _ in form.crop] + [c for _, c in form.crop]
    return (e.op("Pad", [dx, e.ints(crop)]) if any(crop) else dx,) + rest
