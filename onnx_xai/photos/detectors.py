"""A detector's outputs as photos meet them: their shapes at the photo's input size, and heads with
one scores output per grid level (PicoDet, GFL, multi-level SSD heads).

Exporters often declare a head's candidate count as a symbolic dimension; :func:`output_shapes` runs
the model once at the input's size to read the real ones, so that outputs pair by candidate count
(:func:`onnx_xai.objectives.boxes.detector_outputs`). Each level is a scores output paired with its own box
output; levels are the pairs whose scores have as many classes. A photo's candidate may be on any of them, so
each photo is explained on the level that holds the candidate its objective picks (the best of
``--target``'s class, or of any, overlapping ``--region`` when given), compared across levels by the
same score; the photos of each level are then explained with that level's output. The record of each
photo names the level's output, and the command line says that it chose per photo.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..imaging.images import load_image, prepare
from ..imaging.preprocessing import preprocessing_for
from ..objectives import boxes, seeds
from ..support.errors import InputError
from ..support.names import unique_names


def output_shapes(ex, size: tuple[int, int] | None = None) -> dict[str, tuple]:
    """Every output's shape: as declared, or, where a rank-3 output's dimensions are symbolic, as one
    run at the input's size (``size``, or the model's fixed one) gives them (the batch left symbolic),
    that run made once per explainer and size."""
    declared = ex.outputs
    size = size or input_size(ex)
    if size is None or all(all(isinstance(d, int) for d in s[1:]) for s in declared.values() if len(s) == 3):
        return declared
    known = _MEASURED.setdefault(ex, {})
    if size not in known:
        known[size] = _measured(ex, declared, size)
    return known[size]


_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _measured(ex, declared: dict[str, tuple], size: tuple[int, int]) -> dict[str, tuple]:
    shape = [
        1 if axis == "N" else size[0] if axis == "H" else size[1] if axis == "W" else 0 for axis in ex.layout
    ]
    shape[ex.layout.index("C")] = ex.input_channels or 3
    try:
        found = ex.predict_outputs(np.zeros(shape, np.float32), list(declared))
    except InputError:
        return declared
    return {name: ("N", *array.shape[1:]) for name, array in zip(declared, found)}


def levels_of(ex) -> list[str]:
    """The scores outputs of ``ex``'s model that are levels of the same head as its explained output
    (itself first), or ``[]`` when it is not one of several."""
    shapes = output_shapes(ex)
    pairs = boxes.detector_outputs(shapes, input_size(ex), ex.probability_outputs)
    explained = ex.record.output
    if explained not in pairs or pairs[explained][1] is None:
        return []
    classes = boxes.candidates_of(shapes[explained])[1]  # type: ignore[index]
    alike = [
        name
        for name, (_, decoder, _) in pairs.items()
        if decoder is not None and boxes.candidates_of(shapes[name])[1] == classes  # type: ignore[index]
    ]
    return sorted(alike, key=lambda name: name != explained) if len(alike) > 1 else []


def input_size(ex) -> tuple[int, int] | None:
    height, width = (ex.input_shape[ex.layout.index(axis)] for axis in "HW")
    return (height, width) if isinstance(height, int) and isinstance(width, int) else None


def split_by_level(ex, levels: Sequence[str], pairs: list[tuple[Path, str]], opts, on_skip=None) -> dict:
    """``{level output: [(path, name), ...]}``: each photo under the level of its best candidate."""
    pairs = list(zip([p for p, _ in pairs], unique_names([n for _, n in pairs])))
    settings = preprocessing_for(ex, opts.preprocessing)
    shapes = output_shapes(ex)
    decoders = {
        name: boxes.pair_boxes(shapes, name, input_size(ex), ex.probability_outputs)[1] for name in levels
    }
    layout = opts.detection or seeds.detection_layout(shapes[levels[0]], True, len(opts.labels) or None)
    grouped: dict[str, list] = {name: [] for name in levels}
    for path, name in pairs:
        try:
            p = prepare(load_image(path), **settings)
        except InputError as exc:
            if not opts.keep_going:
                raise
            if on_skip is not None:
                on_skip(path, str(exc))
            continue
        grouped[_best_level(ex, p, decoders, replace(opts, detection=layout))].append((path, name))
    return {level: found for level, found in grouped.items() if found}


def _best_level(ex, p, decoders: dict, opts) -> str:
    """The level whose candidate, as the objective picks it, scores highest for this photo."""
    names = [*decoders, *(d.output for d in decoders.values())]
    outputs = dict(zip(names, ex.predict_outputs(p.array, names)))
    region = p.box_to_input(opts.region) if opts.region is not None else None
    best, problems = None, []
    for level, decoder in decoders.items():
        try:
            _, (chosen,) = seeds.detection_seed(
                outputs[level],
                opts.target,
                None,
                region,
                layout=opts.detection,
                boxes=decoder.decode(outputs[decoder.output], p.size),
            )
        except InputError as exc:
            problems.append(f"{level}: {exc}")
            continue
        rank = chosen["score"] * chosen.get("objectness", 1.0)
        if best is None or rank > best[0]:
            best = (rank, level)
    if best is None:
        raise InputError(f"no level of the detector has the candidate asked for ({'; '.join(problems)})")
    return best[1]


def explain_levels(
    make: Callable[[str], object], levels: Sequence[str], pairs, run: Callable, opts, on_skip=None
) -> list[dict]:
    """Each level's photos explained by ``run(explainer, pairs)`` with that level's explainer
    (``make(output name)``); the records of all levels, in the photos' order."""
    first = make(levels[0])
    grouped = split_by_level(first, levels, pairs, opts, on_skip)
    records = []
    for level, found in grouped.items():
        records += run(first if level == levels[0] else make(level), found)
    order = {str(path): k for k, (path, _) in enumerate(pairs)}
    return sorted(records, key=lambda rec: order.get(rec["file"], len(order)))
