"""Detector boxes kept in an output of their own: which output holds them, and how they decode.

SSD, BlazeFace, PicoDet and DETR-style exports put a candidate's class scores in one output and its
box in another (PicoDet: one pair per grid level). A :class:`BoxDecoder` names the box output and how
its rows become (x0, y0, x1, y1) boxes in input pixels:

- ``xyxy`` / ``cxcywh``: the box itself, in input pixels or, ``normalized``, in fractions of the input
  (DETR's ``[N, Q, 4]``: ``cxcywh`` normalized);
- ``dfl``: four distributions of ``bins`` values (left, top, right, bottom), their expectation times
  the level's stride away from the grid point (GFL, PicoDet, YOLOv8's distribution-focal boxes);
- ``anchors``: offsets from anchors laid on grids of ``strides`` with ``per_cell`` anchors per cell:
  centre = anchor + offset / ``scale`` x anchor size, size = offset / ``scale`` x anchor size
  (MediaPipe's BlazeFace) or exp(offset / ``scale``) x anchor size (``size: "exp"``, SSD).

:func:`pair_boxes` finds the box output of a scores output by its candidate count and reads the
decoding from the shapes when they leave one reading (four columns: a box; ``4 x bins`` columns on one
grid: distributions); anything else (anchors) takes a decoder spec (:func:`decoder_from_spec`, a small
JSON object). Every choice is described in words for ``inspect`` and the records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError

FORMS = ("xyxy", "cxcywh", "dfl", "anchors")


@dataclass(frozen=True)
class BoxDecoder:
    """How the box output ``output`` decodes into (x0, y0, x1, y1) input pixels (module docstring)."""

    output: str
    form: str = "cxcywh"
    normalized: bool = False
    strides: tuple[int, ...] = ()
    per_cell: tuple[int, ...] = ()
    offset: float = 0.5  # a grid point's place in its cell (0.5: the centre)
    scale: float = 1.0
    size: str = "linear"
    anchor_size: float | None = None  # anchors' size in input pixels (default: the input's size)
    bins: int = 0
    column: int = 0  # the box's first column in the output's rows (BlazeFace: 0, keypoints after)
    anchors_last: bool = False  # the box output is [N, K, A] rather than [N, A, K]

    def describe(self) -> str:
        """The decoding in words, as ``inspect`` and a record state it."""
        where = f"boxes in {self.output!r}"
        if self.form == "dfl":
            return f"{where}: {self.bins} bins per side (distribution-focal), strides {list(self.strides)}"
        if self.form == "anchors":
            return (
                f"{where}: offsets from anchors on strides {list(self.strides)} ({list(self.per_cell)} per "
                f"cell), / {self.scale:g}, sizes {self.size}"
            )
        return f"{where}: {self.form}{', normalized to the input' if self.normalized else ', input pixels'}"

    def decode(self, raw: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
        """``[N, A, 4]`` boxes (x0, y0, x1, y1) in input pixels from the box output ``[N, A, K]``."""
        raw = np.asarray(raw, np.float64)
        raw = raw.transpose(0, 2, 1) if self.anchors_last else raw
        height, width = input_size
        if self.form == "dfl":
            return _distributions(raw, self.bins, *_grid(self.strides, (1,), self.offset, input_size))
        if self.form == "anchors":
            return self._from_anchors(raw[..., self.column : self.column + 4], input_size)
        boxes = raw[..., self.column : self.column + 4]
        if self.normalized:
            boxes = boxes * np.array([width, height, width, height])
        if self.form == "xyxy":
            return boxes
        return np.concatenate([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)

    def _from_anchors(self, offsets: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
        anchors, _ = _grid(self.strides, self.per_cell, self.offset, input_size)
        if len(anchors) != offsets.shape[1]:
            raise InputError(
                f"the decoder's anchors (strides {list(self.strides)}, {list(self.per_cell)} per cell) "
                f"number {len(anchors)}, the box output has {offsets.shape[1]} candidates"
            )
        extent = np.array(
            [input_size[1], input_size[0]] if self.anchor_size is None else [self.anchor_size] * 2
        )
        centre = anchors + offsets[..., :2] / self.scale * extent
        ratio = offsets[..., 2:] / self.scale
        size = (np.exp(ratio) if self.size == "exp" else ratio) * extent
        return np.concatenate([centre - size / 2, centre + size / 2], -1)


def _grid(strides, per_cell, offset: float, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid points ``[A, 2]`` (x, y) in input pixels, level after level, row-major, each repeated
    ``per_cell`` times (one count for every level, or one per level), and each point's stride."""
    counts = per_cell if len(per_cell) == len(strides) else tuple(per_cell[:1]) * len(strides)
    points, steps = [], []
    for stride, count in zip(strides, counts):
        rows, cols = math.ceil(input_size[0] / stride), math.ceil(input_size[1] / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([xs.ravel() + offset, ys.ravel() + offset], -1) * stride
        points.append(np.repeat(centres, count, axis=0))
        steps.append(np.full(len(points[-1]), float(stride)))
    return np.concatenate(points).astype(np.float64), np.concatenate(steps)[:, None]


def _distributions(raw: np.ndarray, bins: int, points: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """Boxes from four distributions over ``bins`` distances per candidate, in strides of the grid."""
    if raw.shape[-1] != 4 * bins or raw.shape[1] != len(points):
        raise InputError(
            f"a box output of shape {list(raw.shape)} is not {len(points)} candidates of 4 x {bins} bins"
        )
    logits = raw.reshape(*raw.shape[:2], 4, bins)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    distances = (weights / weights.sum(-1, keepdims=True)) @ np.arange(bins)
    return np.concatenate([points - distances[..., :2] * stride, points + distances[..., 2:] * stride], -1)


def grid_stride(candidates: int, input_size: tuple[int, int]) -> int | None:
    """The stride of the one grid of ``candidates`` points over an input of this size, if there is one."""
    height, width = input_size
    for stride in range(1, min(height, width) + 1):
        if math.ceil(height / stride) * math.ceil(width / stride) == candidates:
            return stride
    return None


def candidates_of(shape: tuple) -> tuple[int, int] | None:
    """A rank-3 output's (candidates, columns): candidates along the longer of its two axes."""
    if len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return (shape[1], shape[2]) if shape[1] >= shape[2] else (shape[2], shape[1])


def detector_outputs(
    outputs: dict[str, tuple], input_size: tuple[int, int] | None, probabilities=()
) -> dict[str, tuple]:
    """Scores outputs paired with their box outputs by candidate count: scores name -> (box output,
    decoder or None when the shapes leave it open, why). Of two outputs of as many candidates the
    boxes are the one of four columns, else the other of too few columns for a box holds the scores,
    else the one of ``4 x bins`` columns on a grid holds distributions; a pair none of these tell
    apart is left out. Four columns of ``probabilities`` (outputs through a Sigmoid) decode as DETR's
    normalized cxcywh; four columns of raw values (pixels, or offsets from anchors) take a decoder."""
    groups = _by_candidates(outputs)
    pairs = {}
    for count, names in groups.items():
        if len(names) != 2:
            continue
        columns = {n: _columns(outputs[n], count) for n in names}
        scores = _scores_of(columns, count, input_size)
        if scores is not None:
            box_output = next(n for n in names if n != scores)
            decoded = _decoder(box_output, outputs, count, input_size, box_output in probabilities)
            pairs[scores] = (box_output, *decoded)
    return pairs


def _by_candidates(outputs: dict[str, tuple]) -> dict[int, list[str]]:
    """Rank-3 outputs grouped by candidate count: their longer axis, or for one left alone, its shorter
    axis when that is the count of one other output left alone (a small level's box bins
    ``[N, 16, 32]`` beside its scores ``[N, 16, 3]``)."""
    groups: dict[int, list[str]] = {}
    for name, shape in outputs.items():
        found = candidates_of(shape)
        if found is not None:
            groups.setdefault(found[0], []).append(name)
    for count, names in list(groups.items()):
        if len(names) == 1 and count in groups and len(groups[count]) == 1:
            shorter = candidates_of(outputs[names[0]])[1]  # type: ignore[index]
            if shorter != count and len(groups.get(shorter, [])) == 1:
                groups[shorter].append(names[0])
                del groups[count]
    return groups


def _columns(shape: tuple, count: int) -> int:
    return shape[2] if shape[1] == count else shape[1]


def _scores_of(columns: dict[str, int], count: int, input_size) -> str | None:
    (a, ca), (b, cb) = columns.items()
    if (ca == 4) != (cb == 4):
        return b if ca == 4 else a
    if (ca < 4) != (cb < 4):
        return a if ca < 4 else b
    grid = input_size is not None and grid_stride(count, input_size) is not None
    bins = {n: c % 4 == 0 and c >= 8 and grid for n, c in columns.items()}
    return (b if bins[a] else a) if bins[a] != bins[b] else None


def _decoder(
    name: str, outputs: dict[str, tuple], count: int, input_size, probability: bool
) -> tuple[BoxDecoder | None, str]:
    columns = _columns(outputs[name], count)
    last = outputs[name][2] == count and outputs[name][1] != count
    if columns == 4 and probability:
        return (
            BoxDecoder(name, "cxcywh", normalized=True, anchors_last=last),
            f"{name!r} has four columns through a Sigmoid: read as DETR's normalized cxcywh",
        )
    if columns == 4:
        return None, (
            f"{name!r} has four columns of raw values (boxes in pixels, or offsets from anchors): "
            "say which with a decoder spec (--decoder)"
        )
    stride = grid_stride(count, input_size) if input_size else None
    if columns % 4 == 0 and columns >= 8 and stride is not None:
        bins = columns // 4
        return (
            BoxDecoder(name, "dfl", strides=(stride,), bins=bins, anchors_last=last),
            f"{name!r} has {columns} columns on one grid of stride {stride}: 4 distributions of {bins} bins",
        )
    return None, f"{name!r} has {columns} columns: offsets from anchors need a decoder spec (--decoder)"


def pair_boxes(
    outputs: dict[str, tuple], scores: str, input_size: tuple[int, int] | None, probabilities=()
) -> tuple[str | None, BoxDecoder | None, str]:
    """The box output of the scores output ``scores`` (None when no output pairs with it), how it
    decodes when the shapes say (:func:`detector_outputs`; else None), and in words what was found."""
    pairs = detector_outputs(outputs, input_size, probabilities)
    if scores in pairs:
        return pairs[scores]
    found = candidates_of(outputs[scores])
    if found is None:
        return None, None, "the scores' candidate count is not fixed"
    alike = [n for n, s in outputs.items() if (candidates_of(s) or (0,))[0] == found[0]]
    if len(alike) == 1:
        return None, None, f"no other output has {found[0]} candidates"
    listed = ", ".join(map(repr, alike))
    return None, None, f"the outputs of {found[0]} candidates ({listed}) are not one scores-boxes pair"


def decoder_from_spec(spec: dict, outputs: dict[str, tuple]) -> BoxDecoder:
    """A :class:`BoxDecoder` from a JSON object (its fields by name; ``boxes``: the box output)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("boxes"), str):
        raise InputError('a decoder spec is a JSON object naming its box output: {"boxes": "NAME", ...}')
    unknown = set(spec) - ({"boxes"} | set(BoxDecoder.__dataclass_fields__) - {"output"})
    if unknown:
        raise InputError(f"the decoder spec has unknown fields: {', '.join(sorted(unknown))}")
    if spec["boxes"] not in outputs:
        listed = ", ".join(outputs)
        raise InputError(f"the decoder's box output {spec['boxes']!r} is not an output ({listed})")
    if spec.get("form", "cxcywh") not in FORMS or spec.get("size", "linear") not in ("linear", "exp"):
        raise InputError(f"the decoder's form is one of {', '.join(FORMS)}; its size linear or exp")
    fields = {k: v for k, v in spec.items() if k != "boxes"}
    for key in ("strides", "per_cell"):
        if key in fields:
            fields[key] = tuple(int(v) for v in np.atleast_1d(fields[key]))
    if fields.get("form") in ("dfl", "anchors") and not fields.get("strides"):
        raise InputError(f"a {fields['form']} decoder needs its grid strides")
    if fields.get("form") == "dfl" and int(fields.get("bins", 0)) < 2:
        raise InputError("a dfl decoder needs its bins per side (2 or more)")
    fields.setdefault("per_cell", (1,))
    try:
        return BoxDecoder(spec["boxes"], **fields)
    except TypeError as exc:
        raise InputError(f"the decoder spec is not valid: {exc}") from None
