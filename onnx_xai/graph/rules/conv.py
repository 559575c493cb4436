"""VJP rules of Conv and ConvTranspose (input side; weights are constants and get no gradient).

Conv's input gradient is another convolution. For stride 1 it is a Conv with the weights transposed
per group and flipped spatially, computed in-graph from the original initializer (onnxruntime folds it
once at session start, so the file does not grow), with pads ``d (k - 1) - p``: measured 1.03x the
forward conv, against 1.5x for ConvTranspose. For strides > 1 it is a ConvTranspose whose end padding
or ``output_padding`` is worked out in :func:`transpose_pads` from the static shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp

INT64_MIN = -(2**63)


@dataclass
class Geometry:
    """A convolution's resolved spatial parameters (auto_pad turned into explicit pads)."""
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads_begin: list[int]
    pads_end: list[int]

    @property
    def effective_kernel(self) -> list[int]:
        return [d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilations)]


def geometry(info: GraphInfo, node: onnx.NodeProto, kernel: list[int]) -> Geometry:
    """Resolve strides, dilations and pads (including ``auto_pad``) of a Conv or pooling node."""
    nd = len(kernel)
    strides = attr(node, "strides") or [1] * nd
    dilations = attr(node, "dilations") or [1] * nd
    pads = attr(node, "pads") or [0] * (2 * nd)
    geo = Geometry(list(kernel), list(strides), list(dilations), list(pads[:nd]), list(pads[nd:]))
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if auto_pad == "VALID":
        geo.pads_begin, geo.pads_end = [0] * nd, [0] * nd
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        size = info.static_shape(node.input[0])[2:]
        for i, (n, s, k) in enumerate(zip(size, geo.strides, geo.effective_kernel)):
            total = max(0, (-(-n // s) - 1) * s + k - n)
            small, big = total // 2, total - total // 2
            geo.pads_begin[i], geo.pads_end[i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return geo


def transpose_pads(in_size: list[int], out_size: list[int], geo: Geometry) -> tuple[list[int], list[int]]:
    """End pads and output_padding that make ConvTranspose(dy) exactly the shape of the input.

    ConvTranspose yields ``(out - 1) s + k_eff - pb - pe + op`` per axis; solve for ``in`` with the
    smallest non-negative ``pe`` or ``op`` (``op < s`` always holds since ``out`` was floored).
    """
    ends, extra = [], []
    for n, o, s, k, pb in zip(in_size, out_size, geo.strides, geo.effective_kernel, geo.pads_begin):
        surplus = (o - 1) * s + k - pb - n
        ends.append(max(surplus, 0))
        extra.append(max(-surplus, 0))
    return ends, extra


def _conv_check(info: GraphInfo, node, wants) -> list[str]:
    problems = [f"{what} depends on the input" for what, name in zip(("weight", "bias"), node.input[1:])
                if name and wants(name)]
    if info.static_shape(node.input[1]) is None:
        problems.append("weight shape unknown")
    if attr(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER") and \
            info.static_shape(node.input[0]) is None:
        problems.append("auto_pad SAME with unknown input size")
    if node.op_type == "Conv" and any(s > 1 for s in attr(node, "strides") or []) and \
            not _spatial_known(info, node):
        problems.append("strided with unknown spatial size")
    if node.op_type == "ConvTranspose" and (attr(node, "output_shape") or
                                            attr(node, "auto_pad", "NOTSET") != "NOTSET"):
        problems.append("output_shape/auto_pad (give explicit pads)")
    return problems


def _spatial_known(info: GraphInfo, node) -> bool:
    shapes = [info.shape(node.input[0]), info.shape(node.output[0])]
    return all(s is not None and all(isinstance(d, int) for d in s[2:]) for s in shapes)


def flipped_weights(e: Emitter, w: str, group: int) -> str:
    """The stride-1 backward kernel: per-group transpose of (out, in) channels and a spatial flip."""
    m, c_per_g, *kernel = e.info.static_shape(w)
    nd = len(kernel)
    if group == 1:
        wt = e.op("Transpose", [w], perm=[1, 0] + list(range(2, nd + 2)))
    elif m == group and c_per_g == 1:
        wt = w  # depthwise with multiplier 1: each channel is its own group
    else:
        grouped = e.op("Reshape", [w, e.ints([group, m // group, c_per_g] + kernel)])
        swapped = e.op("Transpose", [grouped], perm=[0, 2, 1] + list(range(3, nd + 3)))
        wt = e.op("Reshape", [swapped, e.ints([group * c_per_g, m // group] + kernel)])
    axes = list(range(2, nd + 2))
    return e.op("Slice", [wt, e.ints([-1] * nd), e.ints([INT64_MIN] * nd), e.ints(axes),
                          e.ints([-1] * nd)])


@vjp("Conv", check=_conv_check)
def conv(e: Emitter, node, g_out):
    """Conv: dx = Conv(dy, flip(W^T), pads d(k-1)-p) for stride 1, else ConvTranspose(dy, W, ...)."""
    (dy,), (x, w) = g_out, node.input[:2]
    kernel = list(e.info.static_shape(w)[2:])
    geo, group = geometry(e.info, node, kernel), attr(node, "group", 1)
    grads = [None] * len(node.input)
    back_begin = [k - 1 - p for k, p in zip(geo.effective_kernel, geo.pads_begin)]
    back_end = [k - 1 - p for k, p in zip(geo.effective_kernel, geo.pads_end)]
    if all(s == 1 for s in geo.strides) and min(back_begin + back_end) >= 0:
        grads[0] = e.op("Conv", [dy, flipped_weights(e, w, group)], group=group,
                        dilations=geo.dilations, pads=back_begin + back_end, kernel_shape=kernel)
        return tuple(grads)
    in_size = list(e.info.shape(x)[2:])
    out_size = list(e.info.shape(node.output[0])[2:])
    ends, extra = transpose_pads(in_size, out_size, geo)
    grads[0] = e.op("ConvTranspose", [dy, w], group=group, strides=geo.strides,
                    dilations=geo.dilations, pads=geo.pads_begin + ends, kernel_shape=kernel,
                    output_padding=extra if any(extra) else None)
    return tuple(grads)


@vjp("ConvTranspose", check=_conv_check)
def conv_transpose(e: Emitter, node, g_out):
    """ConvTranspose: dx = Conv(dy, W, same strides, dilations, pads and group)."""
    (dy,), w = g_out, node.input[1]
    kernel = list(e.info.static_shape(w)[2:])
    geo = geometry(e.info, node, kernel)
    dx = e.op("Conv", [dy, w], group=attr(node, "group", 1), strides=geo.strides,
              dilations=geo.dilations, pads=geo.pads_begin + geo.pads_end, kernel_shape=kernel)
    return (dx,) + (None,) * (len(node.input) - 1)
