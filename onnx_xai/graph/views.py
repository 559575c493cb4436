"""Reading a target tensor (or its gradient) as channels-first activations ``[N, K, h, w]``.

The contract publishes ``xai_activation`` and ``xai_activation_grad`` channels-first whatever the
target's own layout: a 4-D tensor is transposed from its layout (NHWC and any other order of the
four axes), a vision transformer's token sequence ``[N, prefix + h*w, C]`` (first made batch-first
when it is ``[T, N, C]``) loses its first ``prefix`` tokens and is reshaped to ``[N, h, w, C]``, then
transposed; a signal's ``[N, C, T]`` (or ``[N, T, C]``, first transposed) gets a unit height,
``[N, C, 1, T]``.
"""

from __future__ import annotations

from .contract import LayerView
from .emitter import Emitter
from .info import GraphInfo
from .layer import TOKENS
from .layout import NCHW, NCT, NTC

INT64_MAX = 2**63 - 1


def channels_first(e: Emitter, view: LayerView, name: str) -> str:
    """``name`` (the target or its cotangent, shaped like the target) as [N, K, h, w]."""
    if view.layout == TOKENS and view.sequence_first:
        name = e.op("Transpose", [name], perm=[1, 0, 2])
    if view.layout == TOKENS and view.grid is not None:
        patches = e.op("Slice", [name, e.ints([view.prefix or 0]), e.ints([INT64_MAX]), e.ints([1])])
        grid = e.op("Reshape", [patches, e.ints([0, view.grid[0], view.grid[1], -1])])
        return e.op("Transpose", [grid], perm=[0, 3, 1, 2])
    if view.layout == TOKENS and view.grid_from is not None:
        return e.op("Transpose", [_runtime_grid(e, name, view.grid_from)], perm=[0, 3, 1, 2])
    if view.layout == NCHW:
        return name
    if view.layout in (NCT, NTC):
        first = name if view.layout == NCT else e.op("Transpose", [name], perm=[0, 2, 1])
        return e.unsqueeze(first, [2])
    return e.op("Transpose", [name], perm=[view.layout.index(axis) for axis in NCHW])


def _runtime_grid(e: Emitter, name: str, patches: str) -> str:
    """The last h*w tokens of ``name`` laid on the grid h x w of the patch embedding ``patches``
    (``[N, C, h, w]``), both read at run time: ``[N, h, w, C]``."""
    grid = e.op("Slice", [e.op("Shape", [patches]), e.ints([2]), e.ints([4]), e.ints([0])])
    count = e.op("ReduceProd", [grid], keepdims=1)
    tokens = e.op("Slice", [e.op("Shape", [name]), e.ints([1]), e.ints([2]), e.ints([0])])
    start = e.op("Sub", [tokens, count])
    kept = e.op("Slice", [name, start, e.ints([INT64_MAX]), e.ints([1])])
    return e.op("Reshape", [kept, e.op("Concat", [e.ints([0]), grid, e.ints([-1])], axis=0)])


def channels_first_shape(info: GraphInfo, view: LayerView) -> list:
    """The static-where-known shape [N, K, h, w] of :func:`channels_first` of the target."""
    shape = info.shape(view.name)
    if view.layout == TOKENS and view.sequence_first and shape is not None:
        shape = (shape[1], shape[0], shape[2])
    if view.layout == TOKENS and view.grid is not None and shape is not None:
        return [shape[0], shape[2], *view.grid]
    if view.layout == TOKENS and shape is not None:
        return [shape[0], shape[2], None, None]
    if view.layout in (NCT, NTC):
        dims = list(shape) if shape is not None and len(shape) == 3 else [None] * 3
        return [dims[view.layout.index("N")], dims[view.layout.index("C")], 1, dims[view.layout.index("T")]]
    dims = list(shape) if shape is not None and len(shape) == 4 else [None] * 4
    return [dims[view.layout.index(axis)] for axis in NCHW]
