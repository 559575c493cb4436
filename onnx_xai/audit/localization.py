"""Localization metrics against ground-truth boxes: the pointing game and box IoU, and the boxes file.

- **pointing game** (Zhang et al. 2018, "Top-down neural attention by excitation backprop"): a hit
  when the map's maximum lies inside a ground-truth box grown by ``tolerance`` pixels on each side
  (15 in the paper, in the model input's pixels); ties at the maximum take the first in raster order.
- **box IoU**: the intersection over union of the map's box (:attr:`Explanation.boxes`, the largest
  region above a fraction of the maximum) with the ground-truth box it overlaps most.

Boxes come per photo in photo pixels, ``(x0, y0, x1, y1)``, from a JSON object ``{"photo.jpg":
[[x0, y0, x1, y1], ...]}`` or a CSV with the header ``file,x0,y0,x1,y1`` (one row per box); a photo is
matched by its path as given on the command line, its path relative to the folder given, or its name.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from ..support.errors import InputError

POINTING_TOLERANCE = 15


def pointing_hit(saliency: np.ndarray, boxes: np.ndarray, tolerance: float = POINTING_TOLERANCE) -> bool:
    """Whether the maximum of ``saliency`` ``(H, W)`` falls in any box ``(k, 4)`` grown by ``tolerance``."""
    y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    px, py = x + 0.5, y + 0.5  # the pixel's centre, boxes being half-open in pixel edges
    return bool(
        any(
            b[0] - tolerance <= px <= b[2] + tolerance and b[1] - tolerance <= py <= b[3] + tolerance
            for b in boxes
        )
    )


def box_iou(box, boxes: np.ndarray) -> float:
    """The largest IoU of ``box`` (x0, y0, x1, y1) with any of ``boxes`` ``(k, 4)``; 0 for no boxes."""
    if len(boxes) == 0:
        return 0.0
    b = np.asarray(boxes, np.float64)
    w = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return float(np.max(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)))


def read_boxes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{photo key: (k, 4) float array}`` from a JSON or CSV boxes file (module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read boxes file {path}: {e}") from None
    rows = _json_rows(text, path) if text.lstrip()[:1] in ("{", "[") else _csv_rows(text, path)
    boxes = {}
    for key, values in rows:
        box = _box(values, path, key)
        boxes.setdefault(key, []).append(box)
    return {k: np.array(v, np.float64).reshape(-1, 4) for k, v in boxes.items()}


JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def boxes_for(boxes: dict[str, np.ndarray], path: Path, shown: str) -> np.ndarray | None:
    """The boxes of one photo: by its path as given, as shown (relative to its folder), or its name."""
    for key in (str(path), shown, path.name):
        if key in boxes:
            return boxes[key]
    return None


def _json_rows(text: str, path: Path) -> list[tuple[str, list]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"boxes file {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        found = (
            "an object whose values are not all lists"
            if isinstance(data, dict)
            else f"a JSON {JSON_KINDS.get(type(data), 'value')}"
        )
        raise InputError(
            f'boxes file {path}: expected a JSON object {{"photo.jpg": [[x0, y0, x1, y1], ...]}}, '
            f"found {found}"
        )
    return [(k, box) for k, v in data.items() for box in v]


def _csv_rows(text: str, path: Path) -> list[tuple[str, list]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"file", "x0", "y0", "x1", "y1"} <= set(reader.fieldnames):
        raise InputError(f"boxes file {path}: a CSV needs the header file,x0,y0,x1,y1 (or give JSON)")
    return [(row["file"], [row[k] for k in ("x0", "y0", "x1", "y1")]) for row in reader]


def _box(values, path: Path, key: str) -> list[float]:
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        box = []
    if len(box) != 4 or not all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(f"boxes file {path}: {key!r} has {values!r}; a box is four numbers x0 < x1, y0 < y1")
    return box
