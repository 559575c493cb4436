"""Signals: a time series or a waveform as the explained input, its layout and its target layers.

A float input ``[N, C, T]`` or ``[N, T, C]`` is a signal; its layout is read from the graph as an
image's is (:func:`.layout.signal_layouts`: 1-D convolutions anchor ``NCT``, a recurrent op's input
``TNC`` or ``NTC``, Transposes carry them back to the input); where no evidence reaches the input its
layout is guessed from its shape, fewer channels than time steps (``NCT`` when ``[N, a, b]`` has
``a <= b``), and the guess said. A model that takes its input time first (``[T, N, C]``, torch's
recurrent layers without ``batch_first``) is refused: the batch must come first. A float ``[N, T]``
input is a raw waveform (layout ``NT``) when the graph makes it one channel of a 1-D convolution
(an Unsqueeze or Reshape to ``[N, 1, T]``, ``[N, T, 1]`` or a unit-height map) or frames it
(``STFT``, ``DFT``); any other ``[N, F]`` input is a table's rows.

A 1-D convolution written as a 2-D one on a unit axis (tf2onnx's ``Conv1D``: ``ExpandDims``, a 2-D
``Conv``, ``Squeeze``) is read too: the 3-D tensors an ``Unsqueeze`` or ``Squeeze`` of that unit axis
joins to a tracked 4-D map take its layout, the unit axis dropped and the other spatial one named
``T`` (:func:`unit_axis_layouts`).

The CAM family's candidates are, as for images, the tensors every path from the input to the score
crosses: 3-D tensors with a tracked layout after the first convolution, with more than one channel,
before the collapse over time (a 2-D tensor, or a time axis of 1); the default is the last. Each is
read channels-first with a unit height, ``[N, C, 1, T']`` (:mod:`.views`), so the maps of photos
serve signals unchanged.
"""

from __future__ import annotations

from ..support.errors import ModelError
from .contract import LayerView
from .info import GraphInfo, attr
from .layout import NCT, NTC, map_layouts, signal_layouts, tensor_layouts
from .paths import dependents

CONVOLUTIONS = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger"})
WAVEFORM_MOVES = frozenset({"Unsqueeze", "Reshape", "Cast", "Sub", "Div", "Mul", "Add", "Pad", "Identity"})
FRAMING = frozenset({"STFT", "DFT"})
LAYOUTS = (NCT, NTC, "NT")
MAX_DEPTH = 8


def unit_axis_layouts(info: GraphInfo) -> dict[str, str]:
    """The 3-D layouts that Squeeze and Unsqueeze of a unit spatial axis give to or take from a
    tracked 4-D map (module docstring)."""
    maps, found = map_layouts(info), {}
    for node in info.nodes():
        if node.op_type not in ("Squeeze", "Unsqueeze"):
            continue
        three, four = (
            (node.output[0], node.input[0]) if node.op_type == "Squeeze" else (node.input[0], node.output[0])
        )
        axes = _axes(info, node)
        if four not in maps or info.rank(three) != 3 or axes is None or len(axes) != 1:
            continue
        letters = maps[four][: axes[0] % 4] + maps[four][axes[0] % 4 + 1 :]
        if maps[four][axes[0] % 4] in "HW" and sorted(letters.replace("H", "T").replace("W", "T")) == sorted(
            NCT
        ):
            found[three] = letters.replace("H", "T").replace("W", "T")
    return found


def _axes(info: GraphInfo, node) -> list[int] | None:
    """A Squeeze's or Unsqueeze's axes (attribute, or a constant second input), None when unknown."""
    given = attr(node, "axes")
    if given is None and len(node.input) > 1 and node.input[1]:
        value = info.const_value(node.input[1])
        given = None if value is None else value.reshape(-1).tolist()
    return None if given is None else [int(a) for a in given]


def is_waveform(info: GraphInfo, name: str, layouts: dict[str, str]) -> bool:
    """True when the 2-D float input ``name`` reaches a one-channel ``NCT`` or ``NTC`` tensor (or a
    4-D map of one channel, a 1-D convolution written as a 2-D one) or a framing op through shape
    moves and elementwise arithmetic only."""
    maps = map_layouts(info)
    frontier, seen = [name], {name}
    for _ in range(MAX_DEPTH):
        following = []
        for tensor in frontier:
            for node in info.consumers.get(tensor, []):
                if node.op_type in FRAMING and node.input[0] == tensor:
                    return True
                if node.op_type not in WAVEFORM_MOVES:
                    continue
                out = node.output[0]
                shape = info.shape(out)
                layout = layouts.get(out) or maps.get(out)
                if layout and "C" in layout and shape is not None and shape[layout.index("C")] == 1:
                    return True
                if out not in seen:
                    seen.add(out)
                    following.append(out)
        frontier = following
    return False


def signal_layout(info: GraphInfo, name: str, layouts: dict[str, str]) -> tuple[str, str]:
    """The explained signal's layout and how it was found (``"read from the graph"`` or the guess)."""
    shape = info.shape(name) or ()
    if len(shape) == 2:
        return "NT", "a waveform: one channel over time"
    found = layouts.get(name)
    if found is not None and found[0] != "N":
        raise ModelError(
            f"the input {name!r} is laid out {found} (time first, as torch's recurrent layers without "
            "batch_first export): export the model with the batch first"
        )
    if found in (NCT, NTC):
        return found, "read from the graph"
    a, b = (shape[1], shape[2]) if len(shape) == 3 else (None, None)
    guess = NTC if isinstance(a, int) and isinstance(b, int) and a > b else NCT
    return guess, f"guessed from the shape {list(shape)} (fewer channels than time steps)"


def signal_candidates(info: GraphInfo, doms: list[str], layouts: dict[str, str]) -> list[LayerView]:
    """3-D target-layer candidates, the default first (module docstring)."""
    convolved = dependents(info, [n.output[0] for n in info.nodes() if n.op_type in CONVOLUTIONS])
    found = []
    for name in doms[1:]:
        layout = layouts.get(name)
        shape = info.shape(name)
        if info.rank(name) == 2 or (
            layout in (NCT, NTC) and shape is not None and shape[layout.index("T")] == 1
        ):
            break
        if (
            info.rank(name) == 3
            and info.is_float(name)
            and layout in (NCT, NTC)
            and name in convolved
            and shape is not None
            and shape[layout.index("C")] != 1
        ):
            found.append(LayerView(name, layout))
    return found[::-1]


def input_layouts(info: GraphInfo, image: str, kind: str) -> tuple[dict[str, str], str]:
    """The tracked layouts an input of ``kind`` needs, and for a signal (a table's ``[N, T]`` that
    is a waveform included) how its layout was found."""
    if kind == "image":
        return tensor_layouts(info, image), ""
    if kind not in ("signal", "table"):
        return {}, ""
    layouts = signal_layouts(info, unit_axis_layouts(info))
    if kind == "table" and not is_waveform(info, image, layouts):
        return {}, ""
    layouts[image], note = signal_layout(info, image, layouts)
    return layouts, note
