"""What the command line explains for each photo: a class, or a seed for any other output.

The kind follows the explained output's shape and layout unless ``--objective`` says otherwise:
``[N, K]`` is a classifier (``--target`` a class), ``[N, 4 + C, A]`` a pre-NMS detector (the best
candidate of ``--target``'s class, or of any class, overlapping ``--region`` when given, or
``--candidate``), a 4-D map (channels first or last, as the graph says) a segmenter when it has
several channels (``--target``'s class where it wins, within ``--region``) and a dense map when one
(``--channel``, over ``--region`` or its largest region above ``--threshold``); a 4-D output of
spatial size 1 x 1 holds values (a regression, landmarks), of which ``--objective regression
--channel I`` explains one: there is no natural default, so none is guessed. Seeds come from
:mod:`onnx_xai.objectives.seeds`, built from each photo's own output; ``--region`` is given in photo
pixels and mapped to the model's input (detector boxes) or output (maps) pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..imaging.images import Prepared
from ..objectives import boxes, seeds
from ..objectives.objective import Objective
from ..support.errors import InputError
from .detectors import output_shapes

KINDS = ("auto", *seeds.KINDS)


def output_kind(shape: tuple, layout: str | None = None) -> str:
    """The objective an output of this shape and layout calls for
    (:func:`onnx_xai.objectives.seeds.output_kind`)."""
    return seeds.output_kind(shape, layout)


def objective(ex, batch: np.ndarray, prepared: list[Prepared], opts) -> tuple[Objective, list[dict | None]]:
    """The :class:`~onnx_xai.objectives.objective.Objective` of a batch (a class, or a seed per
    photo), and what each photo's seed stands for (None for classes)."""
    kind = output_kind(ex.output_shape, ex.output_layout) if opts.objective == "auto" else opts.objective
    if opts.region is not None and not (opts.region[2] > opts.region[0] and opts.region[3] > opts.region[1]):
        raise InputError(f"region {list(opts.region)} is empty: give x0 y0 x1 y1 with x1 > x0 and y1 > y0")
    if kind == "class":
        return Objective.coerce(opts.target), [None] * len(prepared)
    if kind == "regression" and opts.objective == "auto" and not opts.values:
        values = int(np.prod([d for d in ex.output_shape[1:] if isinstance(d, int)]))
        raise InputError(
            f"the output {ex.record.output!r} of shape {list(ex.output_shape)} holds {values} values "
            "per sample "
            "(a regression or landmarks): say which with --objective regression --channel I (or --values I J "
            "for a sum, a landmark's x and y), or explain "
            "another output with --output"
        )
    decoded, boxes_from = None, None
    if kind == "detection":
        opts, output, decoded, boxes_from = _detector(ex, batch, prepared, opts)
    else:
        output = ex.predict(batch)
    to_maps, back = _channels_first(output, ex.output_layout)
    seed_list, chosen = [], []
    for i, p in enumerate(prepared):
        found = None if decoded is None else decoded[i : i + 1]
        seed, described = _seed(kind, to_maps(output[i : i + 1]), p, opts, found)
        described[0] |= {"output": ex.record.output, "score_kind": ex.record.score_kind}
        if boxes_from is not None:
            described[0]["boxes_from"] = boxes_from
        if described[0].get("pixels") == 0:
            raise InputError(
                f"the {kind} objective covers no pixel of the output map"
                + (
                    f" (class {opts.target} wins nowhere; choose another --target)"
                    if kind == "segmentation"
                    else " (the region lies outside the photo's input)"
                )
            )
        seed_list.append(back(seed))
        chosen.append(_with_photo_box(described[0], to_maps(output[:1]).shape[2:], p))
    return Objective.weighted(np.concatenate(seed_list)), chosen


def _channels_first(output: np.ndarray, layout: str | None):
    """Functions taking a 4-D output to channels-first (the seeds' layout) and a seed back, from the
    output's layout as the graph tracks it (channels-last maps of Keras and TFLite exports)."""
    if output.ndim != 4 or not layout or layout == "NCHW" or sorted(layout) != sorted("NCHW"):
        return (lambda a: a), (lambda a: a)
    order = [layout.index(axis) for axis in "NCHW"]
    return (lambda a: a.transpose(order)), (lambda a: a.transpose(np.argsort(order)))


def _with_photo_box(described: dict, map_size: tuple, p: Prepared) -> dict:
    """The description with its box also in photo pixels (``photo_box``): detector boxes are in input
    pixels, dense-map boxes in the map's own."""
    if described.get("box") is None:
        return described
    box = np.asarray(described["box"], np.float64)
    if described["kind"] != "detection":
        box = box * np.array([p.size[1] / map_size[1], p.size[0] / map_size[0]] * 2)
    return {**described, "photo_box": list(p.box_to_photo(box))}


def _detector(ex, batch: np.ndarray, prepared: list[Prepared], opts):
    """The options with the detector layout settled (said in each record's ``layout``), the output,
    and the candidates' boxes in input pixels when they are not the output's own pixel boxes: decoded
    from their own output (fetched in the same run) for an output of scores only, scaled from
    fractions of the input for rows that all went through a Sigmoid (RT-DETR's ``[N, Q, 4 + C]``);
    and how, in words."""
    size, explained = prepared[0].size, ex.record.output
    shapes = output_shapes(ex, size)
    box_output, paired, why = boxes.pair_boxes(shapes, explained, size, ex.probability_outputs)
    if opts.detection is None:
        scores_only = ex.record.score_kind != "logit" or opts.decoder is not None or box_output is not None
        layout = seeds.detection_layout(shapes[explained], scores_only, len(opts.labels) or None)
        opts = replace(opts, detection=layout)
    decoder, why = (opts.decoder, "given") if opts.decoder is not None else (paired, why)
    if opts.detection.boxes != "none" or decoder is None:
        output = ex.predict(batch)
        if opts.detection.boxes == "none":
            if opts.region is not None:
                raise InputError(
                    f"a --region needs the candidates' boxes, and the boxes of {explained!r} were not "
                    f"found ({why}); give a decoder spec with --decoder, or pick by class or --candidate"
                )
            return opts, output, None, None
        if explained not in ex.probability_outputs:
            return opts, output, None, None
        fractions = opts.detection.split(output.astype(np.float32))[0]
        scaled = fractions * np.array([size[1], size[0], size[1], size[0]], np.float32)
        return (
            opts,
            output,
            scaled,
            "boxes in the output's rows, in fractions of the input (every value through a Sigmoid)",
        )
    output, raw = ex.predict_outputs(batch, [explained, decoder.output])
    return opts, output, decoder.decode(raw, size), f"{decoder.describe()} ({why})"


def _seed(kind: str, output: np.ndarray, p: Prepared, opts, decoded=None) -> tuple[np.ndarray, list[dict]]:
    region = p.box_to_input(opts.region) if opts.region is not None else None
    if kind == "detection":
        return seeds.detection_seed(
            output, opts.target, opts.candidate, region, layout=opts.detection, boxes=decoded
        )
    if region is not None:  # from input pixels to the map's own
        scale = np.array([output.shape[3] / p.size[1], output.shape[2] / p.size[0]] * 2)
        region = tuple(np.asarray(region) * scale)
    if kind == "regression":
        return seeds.value_seed(output, list(opts.values) if opts.values else opts.channel)
    if kind == "segmentation":
        if opts.target is None:
            raise InputError("a segmentation output needs --target (the class to explain)")
        return seeds.segmentation_seed(output, opts.target, box=region)
    return seeds.dense_seed(output, opts.channel, box=region, threshold=opts.threshold)
