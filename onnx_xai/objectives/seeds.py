"""Seeds for what to explain beyond a class: segmentation, detection, dense maps.

A seed is a float array shaped like the explained output; the explained score of each sample is
``sum(seed * output)`` (pytorch-grad-cam's target objects, as arrays). These helpers build seeds from
the model's own output (``Explainer.predict``), in the output's layout, one seed per sample:

- :func:`class_seed`: a class of a classifier, as ``target=`` does;
- :func:`segmentation_seed`: class c summed over a mask, by default the pixels where c is the
  argmax (pytorch-grad-cam's ``SemanticSegmentationTarget``), optionally within a box;
- :func:`detection_seed`: the class score of one candidate of a pre-NMS detector output, chosen by
  index or as the highest-scoring candidate of class c whose box overlaps a given box (IoU >= 0.5);
  :class:`DetectionLayout` says how boxes and scores are laid out (YOLO's ``[N, 4 + C, A]``,
  ``cx, cy, w, h`` by default);
- :func:`dense_seed`: the sum of one channel of a dense map over a region: a box, a mask, or by
  default the largest connected region above a threshold (a text detector's strongest region);
- :func:`value_seed`: one value of a regression or landmark output (a coordinate, a face flag), or
  the sum of several (a landmark's x and y).

:func:`output_kind` says which of them an output calls for, from its shape and its layout (a
channels-last map, as Keras and TFLite write segmenters, is a map; ``[N, 1, 1, K]`` is a vector).

Boxes are (x0, y0, x1, y1) in the output's own pixels (dense and segmentation maps) or in the
coordinates the detector's boxes use (input pixels, for YOLO exports). Each helper returns the seed
and, per sample, a description of what it chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError

KINDS = ("class", "segmentation", "detection", "dense", "regression")


def output_kind(shape: tuple, layout: str | None = None) -> str:
    """The objective an output of this shape calls for: ``[N, K]`` a class; ``[N, A, B]`` detection
    candidates; a 4-D output with one dimension besides the batch above 1 a vector of values
    (regression, landmarks: ``[N, 1, 1, K]``); another 4-D output a map (its channel axis from
    ``layout``, channels-first when unknown), a segmentation with several channels or a dense map
    with one."""
    if len(shape) == 2:
        return "class"
    if len(shape) == 3:
        return "detection"
    if len(shape) != 4:
        raise InputError(
            f"an output of shape {list(shape)} has no objective the command line knows: give a seed"
        )
    if sum(d != 1 for d in shape[1:]) <= 1:  # [N, 1, 1, K] or [N, K, 1, 1]: values, not a map
        return "regression"
    order = layout if layout and sorted(layout) == sorted("NCHW") else "NCHW"
    channels = shape[order.index("C")]
    return "segmentation" if isinstance(channels, int) and channels > 1 else "dense"


def value_seed(output, index) -> tuple[np.ndarray, list[dict]]:
    """One value of each sample's output, by its index in the flattened sample (a landmark
    coordinate, a regression value, a face flag), or the sum of several (``index`` a sequence: a
    landmark's x and y)."""
    output = np.asarray(output)
    per_sample = int(np.prod(output.shape[1:]))
    indices = [int(i) for i in np.atleast_1d(index)]
    bad = [i for i in indices if not 0 <= i < per_sample]
    if bad or len(set(indices)) != len(indices):
        raise InputError(
            f"value {bad[0] if bad else indices} is out of range (or repeated) for an output of "
            f"{per_sample} values per sample"
        )
    seed = np.zeros((len(output), per_sample), np.float32)
    seed[:, indices] = 1
    values = output.reshape(len(output), -1)[:, indices].sum(axis=1)
    where = {"index": indices[0]} if np.ndim(index) == 0 else {"indices": indices}
    return seed.reshape(output.shape), [{"kind": "regression", **where, "value": float(v)} for v in values]


def _batched(output, rank: int, what: str) -> np.ndarray:
    output = np.asarray(output)
    if output.ndim != rank or output.dtype.kind not in "fiu":
        raise InputError(f"{what} needs the model's output of rank {rank}, got shape {output.shape}")
    return output.astype(np.float32)


def class_seed(output, classes) -> tuple[np.ndarray, list[dict]]:
    """One-hot seeds of ``classes`` (an int, one per sample, or -1 for the top class) on ``[N, K]``."""
    output = _batched(output, 2, "class_seed")
    chosen = np.broadcast_to(np.asarray(classes), (len(output),)).astype(np.int64)
    chosen = np.where(chosen < 0, output.argmax(axis=1), chosen)
    seed = np.zeros_like(output)
    seed[np.arange(len(output)), chosen] = 1
    return seed, [{"kind": "class", "class": int(c)} for c in chosen]


def _box_mask(shape: tuple[int, int], box) -> np.ndarray:
    height, width = shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros(shape, bool)
    mask[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)] = True
    return mask


def segmentation_seed(output, category: int, mask=None, box=None) -> tuple[np.ndarray, list[dict]]:
    """Class ``category`` of an ``[N, C, H, W]`` segmentation output summed over ``mask`` (``[H, W]``
    or ``[N, H, W]``; default: where ``category`` is the argmax), within ``box`` if given."""
    output = _batched(output, 4, "segmentation_seed")
    if not 0 <= category < output.shape[1]:
        raise InputError(f"class {category} is out of range for an output with {output.shape[1]} classes")
    masks = (
        (output.argmax(axis=1) == category)
        if mask is None
        else np.broadcast_to(np.asarray(mask, bool), (len(output),) + output.shape[2:])
    )
    if box is not None:
        masks = masks & _box_mask(output.shape[2:], box)
    seed = np.zeros_like(output)
    seed[:, category] = masks
    return seed, [{"kind": "segmentation", "class": int(category), "pixels": int(m.sum())} for m in masks]


@dataclass(frozen=True)
class DetectionLayout:
    """How a pre-NMS detector output lays out its candidates: ``anchors_last`` (``[N, 4 + C, A]``, as
    YOLOv5/v8 exports) or first (``[N, A, 4 + C]``); ``boxes``: ``"cxcywh"``, ``"xyxy"``, or
    ``"none"`` for an output of class scores only (SSD, BlazeFace and PicoDet keep boxes in another
    output); ``classes_from``: the row of the first class score (4, or 5 after an objectness score;
    0 for scores only)."""

    anchors_last: bool = True
    boxes: str = "cxcywh"
    classes_from: int = 4
    classes: int | None = None  # the class scores' count when a last "no object" column follows (DETR)

    def describe(self) -> str:
        """The layout in words, as a record states it."""
        if self.boxes == "none":
            left_out = "" if self.classes is None else ", the last (no object) left out"
            return f"class scores only, {'[N, C, A]' if self.anchors_last else '[N, A, C]'}{left_out}"
        rows = f"4+{'1+' if self.classes_from == 5 else ''}C"
        return (
            f"{'[N, ' + rows + ', A]' if self.anchors_last else '[N, A, ' + rows + ']'}, boxes {self.boxes}"
        )

    def objectness(self, output: np.ndarray) -> np.ndarray:
        """``[N, A]``: each candidate's objectness (the row before the class scores)."""
        rows = output if self.anchors_last else output.transpose(0, 2, 1)
        return rows[:, self.classes_from - 1]

    def split(self, output: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """``[N, A, 4]`` boxes as (x0, y0, x1, y1) (None for scores only) and ``[N, A, C]`` scores."""
        rows = output if self.anchors_last else output.transpose(0, 2, 1)
        if self.boxes == "none":
            return None, rows[:, self.classes_from :][:, : self.classes].transpose(0, 2, 1)
        if rows.shape[1] <= self.classes_from:
            raise InputError(
                f"a detector output of shape {output.shape} has no class scores after row "
                f"{self.classes_from} "
                f"(is the layout {'[N, 4+C, A]' if self.anchors_last else '[N, A, 4+C]'}?)"
            )
        raw, scores = rows[:, :4].transpose(0, 2, 1), rows[:, self.classes_from :].transpose(0, 2, 1)
        if self.boxes == "xyxy":
            return raw, scores
        centre, size = raw[..., :2], raw[..., 2:4]
        return np.concatenate([centre - size / 2, centre + size / 2], axis=-1), scores


def detection_layout(shape: tuple, scores_only: bool, classes: int | None = None) -> DetectionLayout:
    """The layout of a detector output of this shape, when nobody said: candidates along the longer
    axis; class scores only when the rows are too few for a box and a class (fewer than 5) or when
    every value went through a Sigmoid/Softmax (``scores_only``); else YOLO's ``4 + C`` rows, or
    ``4 + 1 + C`` (an objectness row, YOLOv5) when the model names ``classes`` classes and the rows
    are one more than a box and them. Scores only and one column more than the ``classes`` named: the
    last is DETR's "no object", left out."""
    if len(shape) != 3:
        raise InputError(
            f"a detection objective needs an output of rank 3, [N, candidates, attributes], "
            f"not of shape {list(shape)}"
        )
    anchors_last = not (isinstance(shape[1], int) and isinstance(shape[2], int) and shape[1] > shape[2])
    rows = shape[1] if anchors_last else shape[2]
    if scores_only or (isinstance(rows, int) and rows < 5):
        background = classes is not None and rows == classes + 1
        return DetectionLayout(anchors_last, "none", 0, classes if background else None)
    if classes is not None and rows == 5 + classes:
        return DetectionLayout(anchors_last, classes_from=5)
    return DetectionLayout(anchors_last)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each of ``boxes``."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def detection_seed(
    output,
    category: int | None = None,
    candidate: int | None = None,
    box=None,
    min_iou: float = 0.5,
    layout: DetectionLayout = DetectionLayout(),
    boxes=None,
) -> tuple[np.ndarray, list[dict]]:
    """The class score of one candidate per sample: ``candidate`` (an index), or the highest-scoring
    candidate of ``category`` (default: the highest-scoring class) whose box overlaps ``box`` with
    IoU >= ``min_iou`` (any box when none is given). After an objectness row (``classes_from`` 5)
    candidates are ranked by objectness x class score, as YOLOv5's NMS ranks them. ``boxes``: the
    candidates' ``[N, A, 4]`` (x0, y0, x1, y1) boxes when the output holds scores only
    (:mod:`onnx_xai.objectives.boxes` decodes them from the box output)."""
    output = _batched(output, 3, "detection_seed")
    own_boxes, scores = layout.split(output)
    boxes = own_boxes if boxes is None else np.asarray(boxes, np.float32)
    if boxes is None and box is not None:
        raise InputError(
            "this detector output holds class scores only and its boxes are not decoded (another "
            "output: give a decoder): pick the candidate by class or --candidate, not by a region"
        )
    ranking = scores * layout.objectness(output)[..., None] if layout.classes_from == 5 else scores
    seed, chosen = np.zeros_like(output), []
    for n in range(len(output)):
        index, cls = _pick_candidate(
            None if boxes is None else boxes[n], ranking[n], category, candidate, box, min_iou
        )
        row = layout.classes_from + cls
        seed[(n, row, index) if layout.anchors_last else (n, index, row)] = 1
        chosen.append(
            {
                "kind": "detection",
                "candidate": int(index),
                "class": int(cls),
                "score": float(scores[n, index, cls]),
                "box": None if boxes is None else [float(v) for v in boxes[n, index]],
                "layout": layout.describe(),
            }
            | ({"objectness": float(layout.objectness(output)[n, index])} if layout.classes_from == 5 else {})
        )
    return seed, chosen


def _pick_candidate(boxes, scores, category, candidate, box, min_iou) -> tuple[int, int]:
    if candidate is not None:
        if not 0 <= candidate < len(scores):
            raise InputError(f"candidate {candidate} is out of range for {len(scores)} candidates")
        return candidate, int(scores[candidate].argmax()) if category is None else category
    if category is not None and not 0 <= category < scores.shape[1]:
        raise InputError(f"class {category} is out of range for a detector with {scores.shape[1]} classes")
    per_candidate = scores.max(axis=1) if category is None else scores[:, category]
    if box is not None:
        per_candidate = np.where(iou(np.asarray(box, np.float32), boxes) >= min_iou, per_candidate, -np.inf)
        if not np.isfinite(per_candidate).any():
            shown = ", ".join(f"{v:.1f}" for v in box)
            raise InputError(
                f"no candidate's box overlaps the region ({shown} in the detector's input pixels) "
                f"with IoU >= {min_iou}"
            )
    index = int(per_candidate.argmax())
    return index, int(scores[index].argmax()) if category is None else category


def dense_seed(
    output, channel: int = 0, box=None, mask=None, threshold: float = 0.3
) -> tuple[np.ndarray, list[dict]]:
    """Channel ``channel`` of an ``[N, C, H, W]`` dense map summed over a region: ``box``, ``mask``, or
    by default the largest 8-connected region above ``threshold``."""
    output = _batched(output, 4, "dense_seed")
    if not 0 <= channel < output.shape[1]:
        raise InputError(f"channel {channel} is out of range for an output with {output.shape[1]} channels")
    seed, chosen = np.zeros_like(output), []
    for n, values in enumerate(output[:, channel]):
        region = (
            _box_mask(values.shape, box)
            if box is not None
            else np.asarray(mask, bool)
            if mask is not None
            else _largest_region(values, threshold)
        )
        seed[n, channel] = region
        ys, xs = np.nonzero(region)
        chosen.append(
            {
                "kind": "dense",
                "channel": int(channel),
                "pixels": int(region.sum()),
                "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                if len(xs)
                else None,
            }
        )
    return seed, chosen


def _largest_region(values: np.ndarray, threshold: float) -> np.ndarray:
    from scipy import ndimage  # only here: scipy takes a while to import

    labels, count = ndimage.label(values > threshold, structure=np.ones((3, 3)))
    if count == 0:
        raise InputError(f"no region of the map is above {threshold}; give a box or a lower threshold")
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
