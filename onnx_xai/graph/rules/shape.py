"""VJP rules of ops that move data without arithmetic: reshapes, transposes, concatenation, slicing,
gathering, tiling and the depth/space rearrangements (Pad, in all its modes, has :mod:`.pad`).

Selections (Slice with any steps, Gather, GatherElements, TopK's values) are differentiated by one
shared trick: apply the same selection to a tensor of flat element indices, then scatter the cotangent
back to those indices; the runtime's own selection semantics (negative indices, clamping) are reused,
not re-coded.
"""

from __future__ import annotations

import numpy as np

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import const_input, norm_axes, scatter_to, unbroadcast


def _reshape_back(e: Emitter, node, g_out) -> tuple:
    return (e.op("Reshape", [g_out[0], e.op("Shape", [node.input[0]])]),) + (None,) * (len(node.input) - 1)


@vjp("Flatten", "Reshape", "Squeeze", "Unsqueeze")
def reshape(e: Emitter, node, g_out):
    """Flatten/Reshape/Squeeze/Unsqueeze: dx = reshape(dy, shape(x))."""
    return _reshape_back(e, node, g_out)


def _transpose_check(info, node, wants) -> list[str]:
    """What keeps a Transpose node from being differentiated."""
    return (
        []
        if attr(node, "perm") or info.rank(node.input[0]) is not None
        else ["unknown rank with default perm"]
    )


@vjp("Transpose", check=_transpose_check)
def transpose(e: Emitter, node, g_out):
    """Transpose: dx = transpose(dy, inverse(perm))."""
    perm = attr(node, "perm") or list(reversed(range(e.info.known_rank(node.input[0]))))
    return (e.op("Transpose", [g_out[0]], perm=np.argsort(perm).tolist()),)


def _axis_size(e: Emitter, x: str, axis: int):
    """Static length of ``x`` along ``axis`` as an int, else a 1-element int64 tensor name."""
    shape = e.info.shape(x)
    if shape is not None and isinstance(shape[axis], int):
        return shape[axis]
    return e.op("Slice", [e.op("Shape", [x]), e.ints([axis]), e.ints([axis + 1])])


def _plus(e: Emitter, a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return e.op("Add", [e.ints([a]) if isinstance(a, int) else a, e.ints([b]) if isinstance(b, int) else b])


def _as_tensor(e: Emitter, v) -> str:
    return e.ints([v]) if isinstance(v, int) else v


def _concat_check(info, node, wants) -> list[str]:
    """What keeps a Concat node from being differentiated."""
    return [] if info.rank(node.output[0]) is not None else ["unknown rank"]


@vjp("Concat", check=_concat_check)
def concat(e: Emitter, node, g_out):
    """Concat: dx_i = dy[..., offset_i : offset_i + len_i, ...] along the axis."""
    axis = norm_axes([attr(node, "axis")], e.info.known_rank(node.output[0]))[0]
    grads, start = [], 0
    for x in node.input:
        end = _plus(e, start, _axis_size(e, x, axis))
        grads.append(
            e.op("Slice", [g_out[0], _as_tensor(e, start), _as_tensor(e, end), e.ints([axis])])
            if e.wants(x)
            else None
        )
        start = end
    return tuple(grads)


def _split_check(info, node, wants) -> list[str]:
    """What keeps a Split node from being differentiated."""
    return [] if info.rank(node.input[0]) is not None else ["unknown rank"]


@vjp("Split", check=_split_check)
def split(e: Emitter, node, g_out):
    """Split: dx = concat(dy_i), zeros for outputs that receive no gradient."""
    axis = norm_axes([attr(node, "axis", 0)], e.info.known_rank(node.input[0]))[0]
    parts = [g if g is not None else e.zeros_like(y) for g, y in zip(g_out, node.output)]
    return (e.op("Concat", parts, axis=axis),) + (None,) * (len(node.input) - 1)


def _scatter_back(e: Emitter, x: str, dy: str, select, add: bool) -> str:
    """dx = scatter of dy to the flat indices that ``select`` picks from x's index tensor."""
    index = e.op(
        "Reshape",
        [
            e.op(
                "Range", [e.const(np.array(0, np.int64)), e.op("Size", [x]), e.const(np.array(1, np.int64))]
            ),
            e.op("Shape", [x]),
        ],
    )
    return scatter_to(e, x, select(index), dy, add)


def _slice_pads(e: Emitter, node) -> list[int] | None:
    """Pads that undo a step-1 Slice with constant bounds on a static input, else None."""
    shape = e.info.static_shape(node.input[0])
    starts, ends = const_input(e, node, 1), const_input(e, node, 2)
    axes, steps = const_input(e, node, 3), const_input(e, node, 4)
    if shape is None or starts is None or ends is None or (steps is not None and np.any(steps != 1)):
        return None
    axis_list = norm_axes(axes.tolist() if axes is not None else range(len(starts)), len(shape))
    begin, end = [0] * len(shape), list(shape)
    for a, s, t in zip(axis_list, starts.tolist(), ends.tolist()):
        n = shape[a]
        s, t = (s + n if s < 0 else s), (t + n if t < 0 else t)
        begin[a], end[a] = min(max(s, 0), n), min(max(t, 0), n)
    return begin + [n - t for n, t in zip(shape, end)]


@vjp("Slice")
def slice_(e: Emitter, node, g_out):
    """Slice: dx = zeros with dy written back where the slice read (Pad for step 1)."""
    x, dy = node.input[0], g_out[0]
    pads = _slice_pads(e, node)
    if pads is not None:
        dx = e.op("Pad", [dy, e.ints(pads)])
    else:
        dx = _scatter_back(e, x, dy, lambda idx: e.op("Slice", [idx] + list(node.input[1:])), False)
    return (dx,) + (None,) * (len(node.input) - 1)


def _gather_check(info, node, wants) -> list[str]:
    if info.opset >= 16:
        return []
    indices = info.const_value(node.input[1])
    if indices is None:
        return ["non-constant indices before opset 16 (no scatter-add)"]
    if node.op_type == "Gather" and len(np.unique(indices)) != indices.size:
        return ["repeated indices before opset 16 (no scatter-add)"]
    return []


@vjp("Gather", "GatherElements", check=_gather_check)
def gather(e: Emitter, node, g_out):
    """Gather/GatherElements: dx = scatter-add of dy to the gathered positions."""
    x, indices = node.input
    axis = attr(node, "axis", 0)
    dx = _scatter_back(
        e, x, g_out[0], lambda idx: e.op(node.op_type, [idx, indices], axis=axis), add=e.opset >= 16
    )
    return (dx, None)


@vjp("TopK")
def top_k(e: Emitter, node, g_out):
    """TopK: the values' cotangent scattered back to the positions selected (the indices held fixed,
    as torch.topk's backward; they never repeat, so a plain scatter is exact)."""
    if g_out[0] is None:
        return (None,) * len(node.input)
    axis = attr(node, "axis", -1)
    chosen = node.output[1]
    dx = _scatter_back(
        e, node.input[0], g_out[0], lambda idx: e.op("GatherElements", [idx, chosen], axis=axis), False
    )
    return (dx,) + (None,) * (len(node.input) - 1)


def _expand_check(info, node, wants) -> list[str]:
    """What keeps a Expand node from being differentiated."""
    return (
        []
        if info.rank(node.input[0]) is not None and info.rank(node.output[0]) is not None
        else ["unknown rank"]
    )


@vjp("Expand", check=_expand_check)
def expand(e: Emitter, node, g_out):
    """Expand: dx = unbroadcast(dy)."""
    return (unbroadcast(e, g_out[0], node.input[0], node.output[0]), None)


def _tile_check(info, node, wants) -> list[str]:
    """What keeps a Tile node from being differentiated."""
    return [] if info.rank(node.input[0]) is not None else ["unknown rank"]


@vjp("Tile", check=_tile_check)
def tile(e: Emitter, node, g_out):
    """Tile: dx = sum over the tiles of dy, viewed as [r0, d0, r1, d1, ...]."""
    x, repeats = node.input
    rank = e.info.known_rank(x)
    pairs = e.op("Concat", [e.unsqueeze(repeats, [1]), e.unsqueeze(e.op("Shape", [x]), [1])], axis=1)
    tiled = e.op("Reshape", [g_out[0], e.op("Reshape", [pairs, e.ints([-1])])])
    return (e.reduce("ReduceSum", tiled, list(range(0, 2 * rank, 2)), keepdims=False), None)


@vjp("SpaceToDepth")
def space_to_depth(e: Emitter, node, g_out):
    """SpaceToDepth: dx = DepthToSpace(dy, mode=DCR), its exact inverse."""
    return (e.op("DepthToSpace", [g_out[0]], blocksize=attr(node, "blocksize"), mode="DCR"),)


def _depth_to_space_check(info, node, wants) -> list[str]:
    """What keeps a DepthToSpace node from being differentiated."""
    return (
        []
        if attr(node, "mode", "DCR") == "DCR"
        or (
            info.shape(node.input[0]) is not None
            and all(isinstance(d, int) for d in info.shape(node.input[0])[1:])
        )
        else ["CRD mode with unknown channels or size"]
    )


@vjp("DepthToSpace", check=_depth_to_space_check)
def depth_to_space(e: Emitter, node, g_out):
    """DepthToSpace: dx = its inverse permutation (SpaceToDepth for DCR, a reshape/transpose for CRD)."""
    b = attr(node, "blocksize")
    if attr(node, "mode", "DCR") == "DCR":
        return (e.op("SpaceToDepth", [g_out[0]], blocksize=b),)
    _, c, h, w = (e.info.static_dim(node.input[0], axis) for axis in range(4))
    split_ = e.op("Reshape", [g_out[0], e.ints([0, c // (b * b), h, b, w, b])])
    moved = e.op("Transpose", [split_], perm=[0, 1, 3, 5, 2, 4])
    return (e.op("Reshape", [moved, e.ints([0, c, h, w])]),)
