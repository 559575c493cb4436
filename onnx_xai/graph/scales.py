"""Target-layer candidates per scale, for multi-scale models (detector necks: P3, P4, P5).

The default candidates (:mod:`.target`) are tensors every path from the input to the score crosses;
a multi-scale detector has none after its backbone, since each scale reaches the output on its own
path. Per scale (a spatial grid, found by inferring shapes at one concrete input size), the candidate
is the last feature map of that grid that still has a convolution ahead of it on the way to the
score (so the head's logits and box decoding are left out), through which every later map of that
grid is computed and which is computed from every earlier one (so one branch of a head, its box bins
beside its class scores, is left out too): a neck's output that feeds its scale's head (YOLO's
P3-P5), or, in a classifier, the input of each stage's last convolution. Grids are the image's: a map
whose two strides differ (a head's tensor reshaped to 4-D) is none. A detector whose candidates
output is reached by two or more of them each on its own path takes them as its default target
layers (:func:`neck_layers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import LayerView
from .info import GraphInfo
from .layer import CONVOLUTIONS
from .layout import spatial_axes
from .paths import ancestors, dependents, dominators
from .shapes import concrete_shapes

PROBE_SIZE = 256  # the input size at which dynamic models are measured (a multiple of 32)


@dataclass(frozen=True)
class Scale:
    """One scale's candidate: its grid (h, w) and stride at the probe size, and the tensor."""

    grid: tuple[int, int]
    stride: float
    view: LayerView


def scale_candidates(info: GraphInfo, source: str, score: str, layouts: dict[str, str]) -> list[Scale]:
    """One candidate per spatial scale, finest first (see the module docstring)."""
    shapes = concrete_shapes(info.model, PROBE_SIZE)
    source_shape = shapes.get(source)
    if source_shape is None or len(source_shape) != 4 or source not in layouts:
        return []
    input_height, input_width = (source_shape[a] for a in spatial_axes(layouts[source]))
    maps, convolved_ahead = _feature_maps(info, source, score, layouts)
    by_grid: dict[tuple[int, int], list[str]] = {}
    for name in maps:
        shape = shapes.get(name)
        if shape is not None and len(shape) == 4:
            height, width = (shape[a] for a in spatial_axes(layouts[name]))
            if (height, width) != (1, 1) and abs(input_height / height - input_width / width) < 1:
                by_grid.setdefault((height, width), []).append(name)  # a grid of the image, not a reshape
    found = []
    for grid in sorted(by_grid, key=lambda g: -g[0] * g[1]):
        funnel = _funnel(info, source, by_grid[grid], convolved_ahead)
        if funnel is not None:
            found.append(Scale(grid, input_height / grid[0], LayerView(funnel, layouts[funnel])))
    return found


def neck_layers(info: GraphInfo, source: str, score: str, layouts: dict[str, str]) -> list[LayerView]:
    """A detector's default target layers: the per-scale candidates that reach its candidates output
    each on a path of its own (no single tensor carries them all: the neck outputs feeding a
    multi-scale head, YOLO's P3-P5), when there are two or more; else ``[]``."""
    if info.rank(score) != 3:
        return []
    crossed = set(dominators(info, source, score))
    necks = [s.view for s in scale_candidates(info, source, score, layouts) if s.view.name not in crossed]
    return necks if len(necks) >= 2 else []


def _feature_maps(info: GraphInfo, source: str, score: str, layouts: dict[str, str]) -> tuple[list[str], set]:
    """4-D float maps computed by a convolution from the input on a path to the score, in topological
    order (every branch of a head among them, so that a funnel must carry all of them), and the set of
    those with a convolution still ahead of them (the candidates)."""
    on_path = dependents(info, [source]) & ancestors(info, score)
    convolved = dependents(info, [n.output[0] for n in info.nodes() if n.op_type in CONVOLUTIONS])
    ahead: set[str] = set()
    for node in reversed(list(info.nodes())):
        if (node.op_type in CONVOLUTIONS and node.output[0] in on_path) or any(
            o in ahead for o in node.output
        ):
            ahead.update(info.inputs_of(node))
    maps = [
        o
        for n in info.nodes()
        for o in n.output
        if o in on_path and o in convolved and o in layouts and info.rank(o) == 4 and info.is_float(o)
    ]
    return maps, {o for o in maps if o in ahead}


def _funnel(info: GraphInfo, source: str, maps: list[str], allowed: set) -> str | None:
    """The last of ``maps`` (in topological order) in ``allowed`` through which every later one is
    computed and which is computed from every earlier one: a map on one branch of a head (the box
    bins beside the class scores, a distribution-focal decode) is neither."""
    for k in range(len(maps) - 1, -1, -1):
        if maps[k] not in allowed:
            continue
        later, earlier = maps[k + 1 :], maps[:k]
        if set(later) & _reachable_avoiding(info, source, maps[k]):
            continue
        if set(earlier) <= ancestors(info, maps[k]):
            return maps[k]
    return None


def _reachable_avoiding(info: GraphInfo, source: str, blocked: str) -> set[str]:
    """Tensors that depend on ``source`` along paths that do not pass through ``blocked``."""
    reached = {source}
    for node in info.nodes():
        if any(i in reached for i in info.inputs_of(node)):
            reached.update(o for o in node.output if o and o != blocked and info.carries_data(o))
    return reached
