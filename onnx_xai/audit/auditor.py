"""The per-batch auditor: a batch of photos in, one record per photo and method out.

Per batch of photos: decode and preprocess as ``explain`` does, run every method in one
``explain_many``, add the baseline maps (:mod:`.baselines`), and score every map with the metrics
asked for (:mod:`.curves`, :mod:`.localization`). :func:`audit_batch` is a function of an
:class:`Auditor` and the decoded photos alone, so that every engine (:mod:`.local`,
:mod:`.ray_engine`) runs the same arithmetic.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..imaging.images import Prepared, load_image, prepare
from ..imaging.preprocessing import Preprocessing, preprocessing_for
from ..objectives.labels import parse_target, read_labels
from ..runtime.maps import box as map_box
from ..runtime.methods import options_for
from ..support.errors import InputError
from .baselines import BASELINES, baseline_maps
from .curves import Protocol, Scorer, deletion, insertion, road
from .facts import model_facts
from .localization import POINTING_TOLERANCE, box_iou, boxes_for, pointing_hit

METRICS = ("deletion", "insertion", "road")  # pointing game and box IoU come with a boxes file
SANITY = ("randomization", "random_target")
THUMBNAIL = 176  # the report's pictures, pixels high


@dataclass
class AuditOptions:
    """What to audit and how (the ``audit`` command's flags, as a value)."""

    methods: Sequence[str] = ("gradient", "gradcam")
    target: int | str | None = None  # a class index or label; None: each photo's top-1 class
    labels: list[str] = field(default_factory=list)
    preprocessing: Preprocessing = Preprocessing()
    noise_seed: int = 0  # SmoothGrad's noise (the protocol has its own noise_seed)
    batch_size: int = 8
    metrics: Sequence[str] = METRICS
    sanity: Sequence[str] = SANITY
    protocol: Protocol = field(default_factory=Protocol)
    randomization_steps: int = 8
    sanity_photos: int = 8
    report_photos: int = 48  # photos shown one by one in the report (the tables count them all)
    boxes: dict | None = None  # {photo key: (k, 4) boxes in photo pixels} (localization.read_boxes)


class Auditor:
    """One Explainer and what the audit needs of the model: scorer, preprocessing, labels."""

    def __init__(self, explainer, model_path: str, opts: AuditOptions):
        self.ex, self.model_path, self.opts = explainer, model_path, opts
        shape = explainer.output_shape
        if len(shape) != 2:
            raise InputError(
                f"audit explains classifiers (an [N, K] output); {explainer.record.output!r} "
                f"has shape {list(shape)}"
            )
        self.preprocessing = preprocessing_for(explainer, opts.preprocessing)
        classes = explainer.num_classes
        if opts.labels and classes is not None and len(opts.labels) != classes:
            raise InputError(f"the labels name {len(opts.labels)} classes, the model has {classes}")
        self.labels = list(opts.labels) or read_labels(None, classes, explainer.metadata)
        self.target = parse_target(None if opts.target is None else str(opts.target), self.labels, classes)
        self.probabilities = explainer.record.score_kind in ("pre-softmax", "pre-sigmoid")
        self.scorer = Scorer(
            explainer.predict, self.probabilities, explainer.input_dtype, opts.batch_size * 2
        )
        self.options = options_for(opts.methods, opts.noise_seed)

    def model_facts(self) -> dict:
        curve = "model probability" if self.probabilities else "softmax of logits"
        return model_facts(self.ex, self.model_path, curve)


@dataclass
class PhotoAudit:
    """One photo's results: records per method (baselines included), maps and report pictures."""

    file: str
    records: list
    maps: dict  # method -> (H, W) float32 in [0, 1]
    raws: dict  # method -> the method's raw attribution (baselines: their map)
    array: np.ndarray | None  # the model input (1, ...), kept for the sanity checks' photos only
    pictures: dict = field(default_factory=dict)  # "photo" and method -> JPEG bytes


def audit_batch(auditor: Auditor, photos: list[tuple[Path, str]], start: int) -> list[PhotoAudit]:
    """Explain and score a batch of photos, each ``(path, shown name)``; ``start`` is the first one's
    place in the whole audit (the first ``report_photos`` get the report's pictures)."""
    opts, ex = auditor.opts, auditor.ex
    prepared = [prepare(load_image(path), **auditor.preprocessing) for path, _ in photos]
    batch = np.concatenate([p.array for p in prepared])
    results = ex.explain_many(batch, list(opts.methods), objective=auditor.target, **auditor.options)
    first = results[opts.methods[0]]
    out = []
    for i, ((path, shown), photo) in enumerate(zip(photos, prepared)):
        target, score = int(first.targets[i]), float(first.scores[i])
        chw = np.moveaxis(photo.array[0], ex.layout.replace("N", "").index("C"), 0)
        maps = {m: results[m].maps[i] for m in opts.methods}
        maps.update(
            {k: v.astype(np.float32) for k, v in baseline_maps(chw, opts.protocol.noise_seed).items()}
        )
        raws = {m: results[m].raw[i] for m in opts.methods} | {b: maps[b] for b in BASELINES}
        boxes = {m: tuple(int(v) for v in results[m].boxes[i]) for m in opts.methods}
        boxes.update({b: map_box(maps[b], 0.2) for b in BASELINES})
        truth = boxes_for(opts.boxes, path, shown) if opts.boxes is not None else None
        facts = {
            "file": shown,
            "target": target,
            "score": score,
            "probability": float(auditor.scorer(photo.array, target)[0]),
        }
        records = [
            _record(auditor, photo, facts | {"method": m}, maps[m], boxes[m], truth)
            for m in list(opts.methods) + list(BASELINES)
        ]
        audit = PhotoAudit(
            shown, records, maps, raws, photo.array if start + i < opts.sanity_photos else None
        )
        if start + i < opts.report_photos:
            audit.pictures = _pictures(photo, maps, opts.methods, boxes)
        out.append(audit)
    return out


def _record(
    auditor: Auditor, photo: Prepared, facts: dict, saliency: np.ndarray, box, truth: np.ndarray | None
) -> dict:
    """One photo x method record: ``facts`` (file, method, target, score, probability), the label, the
    map's box, and every metric asked for, with the protocol."""
    opts, protocol = auditor.opts, auditor.opts.protocol
    image, layout, target = photo.array[0], auditor.ex.layout, facts["target"]
    record = {
        "file": facts["file"],
        "method": facts["method"],
        "target": target,
        "label": auditor.labels[target] if target < len(auditor.labels) else str(target),
        "score": facts["score"],
        "probability": facts["probability"],
        "box": list(photo.box_to_photo(box)),
        "box_input": list(box),
    }
    if "deletion" in opts.metrics:
        record["deletion_auc"], curve = deletion(auditor.scorer, image, saliency, target, protocol, layout)
        record["deletion_curve"] = curve.round(6).tolist()
    if "insertion" in opts.metrics:
        record["insertion_auc"], curve = insertion(auditor.scorer, image, saliency, target, protocol, layout)
        record["insertion_curve"] = curve.round(6).tolist()
    if "road" in opts.metrics:
        values = road(auditor.scorer, image, saliency, target, protocol, layout)
        record.update({k: v.round(6).tolist() if isinstance(v, np.ndarray) else v for k, v in values.items()})
    if truth is not None:
        in_input = np.array([photo.box_to_input(b) for b in truth])
        record["truth_boxes"] = truth.tolist()
        record["pointing_hit"] = pointing_hit(saliency, in_input, POINTING_TOLERANCE)
        record["box_iou"] = box_iou(box, in_input)
    record["protocol"] = protocol.describe() | {
        "pointing_tolerance": POINTING_TOLERANCE,
        "box_threshold": 0.2,
    }
    return record


def _pictures(photo: Prepared, maps: dict, methods: Sequence[str], boxes: dict) -> dict:
    """The model's view of the photo and each method's overlay on it, as small JPEGs."""
    from ..imaging.visuals import overlay

    height, width = photo.size
    seen = photo.photo.crop(photo.region()).resize((width, height))
    scale = THUMBNAIL / height
    small = (max(1, round(width * scale)), THUMBNAIL)
    out = {"photo": _jpeg(seen.resize(small))}
    for m in list(methods) + list(BASELINES):
        out[m] = _jpeg(overlay(seen, maps[m], box=boxes[m]).resize(small))
    return out


def _jpeg(picture) -> bytes:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
