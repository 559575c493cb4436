"""The layout of every 4-D tensor, tracked per tensor rather than guessed from the model input.

ONNX's convolution, pooling and normalization ops are channels-first, so their data inputs and
outputs are ``NCHW`` whatever the exporter. From those anchors layouts spread through the graph in
both directions: a ``Transpose`` permutes the letters (tf2onnx's ``NHWC input -> Transpose -> NCHW
convs -> Transpose -> ReduceMean(axes=[1, 2])`` becomes NHWC, NCHW, NHWC), and ops that keep a
tensor's axes in place (elementwise arithmetic, activations, Concat, Slice, Pad, Resize ...) give
their 4-D outputs the layout of their 4-D inputs and back; a ``Reshape`` that only moves axes of size
1 (tf2onnx writes a one-channel map's last Transpose as ``[N, 1, H, W] -> [N, H, W, 1]``) moves their
letters with them; a linear layer on a channels-last map's channels (Swin's patch merging, a
MatMul by constant weights) keeps its layout. A layout is a string of the letters
N, C, H, W; tensors that no evidence reaches stay unknown. The image input, when no evidence
reaches it, is guessed from its shape (colour channels last, an image before them).

Signals are tracked the same way over their 3-D tensors with the letters N, C, T: 1-D convolutions,
pooling and normalization anchor ``NCT``, a recurrent op's ``X`` anchors ``TNC`` (``layout=0``) or
``NTC`` (``layout=1``), and the same Transposes, axis-keeping ops and linear layers spread them
(:func:`signal_layouts`).
"""

from __future__ import annotations

import onnx

from .info import BROADCASTING, GraphInfo, attr

NCHW, NHWC = "NCHW", "NHWC"
NCT, NTC = "NCT", "NTC"
RECURRENT = frozenset({"LSTM", "GRU", "RNN"})
CHANNELS_FIRST = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
        "LpPool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "GlobalLpPool",
        "BatchNormalization",
        "InstanceNormalization",
        "LRN",
        "DepthToSpace",
        "SpaceToDepth",
        "MaxUnpool",
        "QLinearConv",
    }
)
AXES_KEPT = BROADCASTING | {
    "Concat",
    "Split",
    "Slice",
    "Pad",
    "Resize",
    "Upsample",
    "Softmax",
    "LogSoftmax",
    "QuantizeLinear",
    "DequantizeLinear",
    "Dropout",
    "Sum",
    "LayerNormalization",
}
MAX_ROUNDS = 4


def tensor_layouts(info: GraphInfo, image: str) -> dict[str, str]:
    """The layout of every 4-D tensor that evidence reaches, the image input included."""
    layouts = _spread(info, _anchors(info, 4), 4)
    if image not in layouts and info.rank(image) == 4:
        layouts[image] = guess_from_shape(info.shape(image))
        _spread_forward(info, layouts, 4)
    return layouts


def signal_layouts(info: GraphInfo, known: dict[str, str] | None = None) -> dict[str, str]:
    """The layout (``NCT``, ``NTC``, ``TNC`` ...) of every 3-D tensor that evidence reaches, from the
    anchors and the ``known`` layouts given."""
    return _spread(info, _anchors(info, 3) | (known or {}), 3)


def map_layouts(info: GraphInfo) -> dict[str, str]:
    """The layout of every 4-D tensor that evidence reaches, with no guess at the input."""
    return _spread(info, _anchors(info, 4), 4)


def _spread(info: GraphInfo, layouts: dict[str, str], rank: int) -> dict[str, str]:
    for _ in range(MAX_ROUNDS):
        before = len(layouts)
        _spread_forward(info, layouts, rank)
        _spread_backward(info, layouts, rank)
        if len(layouts) == before:
            break
    return layouts


def guess_from_shape(shape) -> str:
    """NHWC when the last dimension looks like colour channels (1, 3, 4) and the two before it like
    an image (> 4 pixels); NCHW otherwise."""
    if shape is None or len(shape) != 4:
        return NCHW
    spatial = [d for d in shape[1:3] if isinstance(d, int)]
    channels_last = shape[-1] in (1, 3, 4) and len(spatial) == 2 and min(spatial) > 4
    return NHWC if channels_last else NCHW


def spatial_axes(layout: str) -> list[int]:
    """The height and width axes of a layout (``[2, 3]`` for NCHW, ``[1, 2]`` for NHWC), or a
    signal's time axis (``[2]`` for NCT)."""
    return [layout.index(axis) for axis in "HWT" if axis in layout]


def permuted(layout: str, perm) -> str:
    """The layout of ``Transpose(x, perm)`` when x has ``layout``."""
    return "".join(layout[p] for p in perm)


def _anchors(info: GraphInfo, rank: int) -> dict[str, str]:
    layouts: dict[str, str] = {}
    first = NCHW if rank == 4 else NCT
    for node in info.nodes():
        if node.op_type in CHANNELS_FIRST:
            for name in list(node.input[:1]) + list(node.output[:1]):
                if name and info.rank(name) == rank:
                    layouts.setdefault(name, first)
        elif node.op_type in RECURRENT and rank == 3 and info.rank(node.input[0]) == 3:
            layouts.setdefault(node.input[0], NTC if attr(node, "layout", 0) else "TNC")
    return layouts


def _perm(info: GraphInfo, node: onnx.NodeProto) -> list[int] | None:
    perm = attr(node, "perm")
    rank = info.rank(node.input[0])
    return list(perm) if perm else (list(reversed(range(rank))) if rank else None)


def _data_inputs(info: GraphInfo, node: onnx.NodeProto, rank: int) -> list[str]:
    """The inputs of ``rank`` that are computed tensors or graph inputs (not weights)."""
    return [i for i in node.input if i and info.rank(i) == rank and not info.is_literal(i)]


def _spread_forward(info: GraphInfo, layouts: dict[str, str], rank: int) -> None:
    for node in info.nodes():
        outputs = [o for o in node.output if o and info.rank(o) == rank and o not in layouts]
        if not outputs:
            continue
        if node.op_type == "Transpose":
            perm, known = _perm(info, node), layouts.get(node.input[0])
            if known and perm and len(perm) == rank:
                layouts[node.output[0]] = permuted(known, perm)
        elif node.op_type in AXES_KEPT:
            known = next((layouts[i] for i in _data_inputs(info, node, rank) if i in layouts), None)
            for o in outputs:
                if known:
                    layouts[o] = known
        elif (
            node.op_type == "MatMul"
            and info.is_weight(node.input[1])
            and layouts.get(node.input[0], "").endswith("C")
        ):
            layouts[node.output[0]] = layouts[node.input[0]]  # a linear layer on the channels of a map
        elif node.op_type == "Reshape" and node.input[0] in layouts and rank == 4:
            moved = _unit_axes_moved(
                info.shape(node.input[0]), info.shape(node.output[0]), layouts[node.input[0]]
            )
            if moved:
                layouts[node.output[0]] = moved


def _unit_axes_moved(before, after, layout: str) -> str | None:
    """The layout after a Reshape that keeps the batch first and the other axes of size above 1 in
    order, moving only axes of size 1; None for any other Reshape."""
    if before is None or after is None or len(before) != 4 or len(after) != 4 or layout[0] != "N":
        return None
    rest_before, rest_after = list(before[1:]), list(after[1:])
    if not all(isinstance(d, int) for d in rest_before + rest_after):
        return None
    if [d for d in rest_before if d != 1] != [d for d in rest_after if d != 1]:
        return None
    units = iter(letter for letter, d in zip(layout[1:], rest_before) if d == 1)
    others = iter(letter for letter, d in zip(layout[1:], rest_before) if d != 1)
    return "N" + "".join(next(units) if d == 1 else next(others) for d in rest_after)


def _spread_backward(info: GraphInfo, layouts: dict[str, str], rank: int) -> None:
    for node in reversed(list(info.nodes())):
        known = layouts.get(node.output[0]) if node.output else None
        if known is None:
            continue
        if node.op_type == "Transpose":
            perm = _perm(info, node)
            if perm and len(perm) == rank and info.rank(node.input[0]) == rank:
                inverse = [perm.index(i) for i in range(rank)]
                layouts.setdefault(node.input[0], permuted(known, inverse))
        elif node.op_type in AXES_KEPT:
            for i in _data_inputs(info, node, rank):
                layouts.setdefault(i, known)
