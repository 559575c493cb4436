"""VJP rule of GridSample (4-D; bilinear and nearest; zeros, border and reflection padding; either
``align_corners``), as deformable attention (RT-DETR, Deformable DETR) and spatial transformers use it.

The forward is rebuilt from the ONNX definition: each output position's (x, y) in [-1, 1] becomes a
pixel coordinate (``align_corners``: -1 and 1 are the corner pixels' centres, else their outer
edges), is clamped (border) or folded back (reflection) into the image, and reads its neighbours:
four with bilinear weights, or the nearest one. The input's cotangent scatter-adds the output's
cotangent to those neighbours with the same weights (zero for a neighbour outside the image); the
grid's is the output's cotangent times the derivative of the interpolation along x and y (the
weights' slopes against the neighbours' differences), times the slope of the clamp or fold and of
the unnormalization. Nearest sampling is piecewise constant in the grid: no gradient flows to it.
An infinite grid value has no sampling point (onnxruntime reads it inside the image, the ONNX
reference outside): it is read as a point far outside, so that the gradients stay finite.
"""

from __future__ import annotations

import numpy as np

from ..emitter import Emitter, Tensor
from ..info import attr
from ..registry import vjp

LINEAR = ("bilinear", "linear")
NEAREST = "nearest"


def _check(info, node, wants) -> list[str]:
    mode = attr(node, "mode", "bilinear")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    problems = [] if mode in (*LINEAR, NEAREST) else [f"mode {mode!r} (bilinear and nearest have rules)"]
    if info.rank(node.input[0]) != 4:
        problems.append("an input that is not 4-D")
    return problems


def _text(node, name: str, default: str) -> str:
    value = attr(node, name, default)
    return value.decode() if isinstance(value, bytes) else value


class _Axis:
    """One axis (x or y) of the sampling: the pixel coordinate, its slope against the grid value,
    and the image's extent along it."""

    def __init__(self, e: Emitter, g: Tensor, size: Tensor, align: bool, padding: str):
        one = 1.0
        if align:
            coordinate, slope = (g + one) * (size - one) * 0.5, (size - one) * 0.5
        else:
            coordinate, slope = ((g + one) * size - one) * 0.5, size * 0.5
        coordinate = _finite(e, coordinate, size.like)
        low, high = e.t(e.op("Mul", [size, e.scalar(0.0, like=size.like)]), like=size.like), size - one
        if padding == "border":
            inside = _between(e, coordinate, low, high)
            coordinate = e.t(e.op("Min", [e.op("Max", [coordinate, low]), high]), like=size.like)
            slope = slope * inside
        elif padding == "reflection":
            coordinate, fold = _reflect(
                e, coordinate, low if align else low - 0.5, high if align else high + 0.5
            )
            slope = slope * fold
            if not align:
                inside = _between(e, coordinate, low, high)
                coordinate = e.t(e.op("Min", [e.op("Max", [coordinate, low]), high]), like=size.like)
                slope = slope * inside
        self.e, self.coordinate, self.slope, self.size = e, coordinate, slope, size


def _finite(e: Emitter, x: Tensor, like: str) -> Tensor:
    """x with infinities replaced by the dtype's largest values / 4: an infinite grid value (which
    every runtime reads differently) samples nothing instead of sending NaN into the gradients."""
    big = float(np.finfo(e.np_dtype(like)).max) / 4
    return e.t(e.op("Clip", [x.name, e.scalar(-big, like=like), e.scalar(big, like=like)]), like=like)


def _between(e: Emitter, x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """1 where low < x < high, else 0 (the clamp's slope)."""
    above = e.op("Greater", [x, low])
    below = e.op("Less", [x, high])
    return e.t(e.cast_like(e.op("And", [above, below]), x.like), like=x.like)


def _reflect(e: Emitter, x: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """x folded into [low, high] as a mirror would, and the fold's slope (+1 or -1)."""
    span = high - low
    offset = x - low
    distance = e.t(e.op("Abs", [offset]), like=x.like)
    flips = e.t(e.op("Floor", [distance / span]), like=x.like)
    extra = distance - flips * span
    odd = e.t(e.op("Mod", [flips, e.scalar(2.0, like=x.like)], fmod=1), like=x.like)
    folded = extra + (span - extra * 2.0) * odd + low  # even: low + extra; odd: high - extra
    sign = e.t(e.op("Sign", [offset]), like=x.like)
    return folded, sign * (1.0 - odd * 2.0)


@vjp("GridSample", check=_check)
def grid_sample(e: Emitter, node, g_out):
    """GridSample: see the module docstring."""
    x, grid = node.input[0], node.input[1]
    align = bool(attr(node, "align_corners", 0))
    padding, nearest = _text(node, "padding_mode", "zeros"), _text(node, "mode", "bilinear") == NEAREST
    shape = e.op("Shape", [x])
    height, width = (e.t(e.cast_like(e.op("Gather", [shape, e.ints([i])]), x), like=x) for i in (2, 3))
    gx, gy = (e.t(e.op("Gather", [grid, e.ints([k])], axis=3), like=x) for k in (0, 1))  # [N, Ho, Wo, 1]
    along_x = _Axis(e, gx, width, align, padding)
    along_y = _Axis(e, gy, height, align, padding)
    dy = e.op("Reshape", [g_out[0], e.ints([0, 0, -1])])  # [N, C, L]
    flat = e.op("Reshape", [x, e.ints([0, 0, -1])])  # [N, C, H*W]
    corners = _nearest(e, along_x, along_y) if nearest else _bilinear(e, along_x, along_y)
    dx = _scatter_back(e, x, dy, corners) if e.wants(x) else None
    dgrid = None
    if e.wants(grid) and not nearest:
        dgrid = _grid_gradient(e, grid, flat, dy, along_x, along_y, corners)
    return dx, dgrid


def _corner(e: Emitter, xs: Tensor, ys: Tensor, weight: Tensor, width: Tensor, height: Tensor) -> dict:
    """A neighbour at integer coordinates (xs, ys): its flat index (clamped into the image), its
    weight, and 1 where it lies inside the image (else it reads as 0)."""
    like = weight.like
    inside = _between(e, xs, width * 0.0 - 1.0, width) * _between(e, ys, height * 0.0 - 1.0, height)
    cx = e.op("Min", [e.op("Max", [xs, width * 0.0]), width - 1.0])
    cy = e.op("Min", [e.op("Max", [ys, height * 0.0]), height - 1.0])
    index = e.op("Cast", [(e.t(cy, like=like) * width + cx).name], to=7)  # int64
    return {
        "index": e.op("Reshape", [index, e.ints([0, 1, -1])]),
        "weight": weight * inside,
        "inside": inside,
    }


def _bilinear(e: Emitter, ax: _Axis, ay: _Axis) -> list[dict]:
    x0 = e.t(e.op("Floor", [ax.coordinate]), like=ax.coordinate.like)
    y0 = e.t(e.op("Floor", [ay.coordinate]), like=ay.coordinate.like)
    wx1, wy1 = ax.coordinate - x0, ay.coordinate - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    return [
        _corner(e, x0, y0, wy0 * wx0, ax.size, ay.size) | {"wx": wx0, "wy": wy0, "sx": -1.0, "sy": -1.0},
        _corner(e, x0 + 1.0, y0, wy0 * wx1, ax.size, ay.size) | {"wx": wx1, "wy": wy0, "sx": 1.0, "sy": -1.0},
        _corner(e, x0, y0 + 1.0, wy1 * wx0, ax.size, ay.size) | {"wx": wx0, "wy": wy1, "sx": -1.0, "sy": 1.0},
        _corner(e, x0 + 1.0, y0 + 1.0, wy1 * wx1, ax.size, ay.size)
        | {"wx": wx1, "wy": wy1, "sx": 1.0, "sy": 1.0},
    ]


def _nearest(e: Emitter, ax: _Axis, ay: _Axis) -> list[dict]:
    xs = e.t(e.op("Round", [ax.coordinate]), like=ax.coordinate.like)
    ys = e.t(e.op("Round", [ay.coordinate]), like=ay.coordinate.like)
    return [_corner(e, xs, ys, xs * 0.0 + 1.0, ax.size, ay.size)]


def _expanded(e: Emitter, index: str, dy: str) -> str:
    return e.op("Expand", [index, e.op("Shape", [dy])])


def _scatter_back(e: Emitter, x: str, dy: str, corners: list[dict]) -> str:
    """The input's cotangent: each neighbour's weight times the output's cotangent, added at it."""
    total = e.op("Reshape", [e.zeros_like(x), e.ints([0, 0, -1])])
    for corner in corners:
        weight = e.op("Reshape", [corner["weight"].name, e.ints([0, 1, -1])])
        update = e.op("Mul", [dy, weight])
        total = e.op(
            "ScatterElements", [total, _expanded(e, corner["index"], dy), update], axis=2, reduction="add"
        )
    return e.op("Reshape", [total, e.op("Shape", [x])])


def _grid_gradient(
    e: Emitter, grid: str, flat: str, dy: str, ax: _Axis, ay: _Axis, corners: list[dict]
) -> str:
    """The grid's cotangent ``[N, Ho, Wo, 2]``: per position, the channels' sum of the output's
    cotangent times the interpolation's slope along x (then y), times the coordinate's slope."""
    values = [e.op("GatherElements", [flat, _expanded(e, c["index"], dy)], axis=2) for c in corners]
    per_axis = []
    for other, key, step in (("wy", "sx", ax.slope), ("wx", "sy", ay.slope)):
        terms = [
            e.op(
                "Mul", [value, e.op("Reshape", [(c[other] * c["inside"] * c[key]).name, e.ints([0, 1, -1])])]
            )
            for value, c in zip(values, corners)
        ]
        slope = e.op("Sum", terms)  # [N, C, L]
        summed = e.reduce("ReduceSum", e.op("Mul", [slope, dy]), [1], keepdims=False)  # [N, L]
        per_axis.append(
            e.op("Mul", [e.op("Reshape", [summed, e.op("Shape", [ax.coordinate.name])]), step.name])
        )
    return e.op("Concat", per_axis, axis=3)
