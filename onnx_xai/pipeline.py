"""Explaining photo files end to end: load, preprocess, explain in batches, write overlays and JSON.

Every input is decoded once up front, so a missing, non-image or truncated file stops the run before
anything is written (or, with ``keep_going``, is left out and reported). Per photo: one PNG overlay per
method (heatmap on the original photo, box in original pixels), optionally a side-by-side sheet of the
methods, and one JSON record listing them; the set is written aside and moved into place whole
(:mod:`onnx_xai.outputs`), so an interrupted run leaves complete sets and no temporary files.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import interruptible
from .images import Prepared, load_image, prepare
from .objective import objective
from .outputs import Staging, unique_names
from .runtime import Explainer
from .runtime.methods import get
from .targets import DetectionLayout
from .visuals import outline, overlay, sheet, spotlight

DATA = resources.files("onnx_xai") / "data"
DEMO_MODEL = DATA / "efficientnet_lite0.onnx"
DEMO_PHOTOS = DATA / "photos"
IMAGENET_LABELS = DATA / "imagenet_classes.txt"


@dataclass
class Options:
    """How to explain a set of photos (the CLI's flags, as a value)."""
    methods: Sequence[str] = ("gradcam",)
    target: int | None = None
    preset: str | None = None  # None: "imagenet" for float inputs, nothing for integer pixels
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    crop: float = 0.875
    size: tuple[int, int] | None = None
    smooth: int | None = None  # SmoothGrad samples: smooth every method with this many
    seed: int = 0
    steps: int | None = None  # integrated_gradients' n_steps (None: its default)
    cmap: str = "jet"
    alpha: float = 0.5
    batch_size: int = 8
    sheets: bool = False
    labels: list[str] = field(default_factory=list)
    keep_going: bool = False  # leave out photos that do not decode instead of stopping
    # what to explain beyond a class (onnx_xai.objective): the kind, and where
    objective: str = "auto"
    region: tuple[float, float, float, float] | None = None  # x0 y0 x1 y1 in photo pixels
    channel: int = 0
    candidate: int | None = None
    detection: DetectionLayout = DetectionLayout()
    threshold: float = 0.3
    fuse: str = "mean"  # how the CAM family's maps of several target layers combine


def read_labels(path: str | os.PathLike | None, classes: int | None) -> list[str]:
    """Class names from a file (one per line); the bundled ImageNet names for 1000-class models.
    ``classes`` None (a model whose output does not declare its size) skips the count check."""
    if path is None:
        if classes != 1000:
            return []
        path = IMAGENET_LABELS
    try:
        names = [line.strip() for line in Path(str(path)).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}") from None
    names = [n for n in names if n]
    if classes is not None and len(names) != classes:
        raise InputError(f"labels file {path} has {len(names)} names, the model has {classes} classes")
    return names


def parse_target(text: str | None, labels: list[str], classes: int | None) -> int | None:
    """A class index from a number or a label name (case-insensitive), or None for -1 (each photo's
    top-1 class, as the API's -1); the range is checked when the class count is known (the Explainer
    checks it again at run time)."""
    if text is None or text.strip() == "-1":
        return None
    if text.lstrip("-").isdigit():
        index = int(text)
    else:
        lowered = [name.lower() for name in labels]
        if text.lower() not in lowered:
            raise InputError(f"unknown class {text!r}" + ("" if labels else " (no labels: give --labels)"))
        index = lowered.index(text.lower())
    if index < 0 or classes is not None and index >= classes:
        size = f" for a model with {classes} classes" if classes is not None else ""
        raise InputError(f"class {index} is out of range{size}")
    return index


def prepare_output_folder(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def model_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def explain_files(ex: Explainer, files: Sequence[Path | tuple[Path, str]], out: Path, opts: Options,
                  sha256: str, progress: Callable | None = None, on_skip: Callable | None = None
                  ) -> list[dict]:
    """Explain photo files with each method; returns the JSON records written (one per photo).

    Args:
        files: paths, or (path, output name) pairs as :func:`~onnx_xai.images.image_files` gives.
        progress: called with the number of photos once they are decoded; returns a progress bar
            (``update(n)``, ``close()``).
        on_skip: called with (path, reason) for a photo left out (``opts.keep_going``).

    Every photo is decoded before anything is written: a bad one stops the run, or, with
    ``opts.keep_going``, is left out.
    """
    pairs = [f if isinstance(f, tuple) else (Path(f), Path(f).name) for f in files]
    pairs = _readable(pairs, opts.keep_going, on_skip)
    preprocessing = model_preprocessing(ex, opts)
    out = prepare_output_folder(out)
    names = dict(zip([path for path, _ in pairs], unique_names([name for _, name in pairs])))
    records, bar = [], progress(len(pairs)) if progress is not None else None
    step = opts.batch_size if preprocessing["size"] is not None else 1  # any size: each photo its own
    try:
        with interruptible(), Staging(out) as staging:
            for start in range(0, len(pairs), step):
                chunk = [path for path, _ in pairs[start:start + step]]
                prepared = [prepare(load_image(f), **preprocessing) for f in chunk]
                results, chosen = _explain(ex, prepared, opts)
                for i, (f, p) in enumerate(zip(chunk, prepared)):
                    picked = {m: _pick(r, i) for m, r in results.items()}
                    records.append(_write_photo(f, names[f], p, picked, chosen[i], staging, opts, sha256))
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return records


def _readable(pairs: list[tuple[Path, str]], keep_going: bool, on_skip) -> list[tuple[Path, str]]:
    """The photos that decode; without ``keep_going`` the first that does not raises."""
    kept = []
    for path, name in pairs:
        try:
            load_image(path)
        except InputError as exc:
            if not keep_going:
                raise
            if on_skip is not None:
                on_skip(path, str(exc))
            continue
        kept.append((path, name))
    if not kept:
        raise InputError("none of the photos could be read")
    return kept


def model_preprocessing(ex: Explainer, opts: Options) -> dict:
    """The arguments of :func:`~onnx_xai.images.prepare` for this model: its size, layout and
    channels, and either the normalization asked for or, for a model that takes integer pixels,
    none at all (its preprocessing is inside; normalizing again would explain the wrong input)."""
    pixels = ex.input_dtype.kind in "iu"
    if pixels and (opts.preset is not None or opts.mean is not None or opts.std is not None):
        raise InputError(f"the model takes {ex.input_dtype} pixels and normalizes them itself; "
                         "drop --preset/--mean/--std")
    return dict(size=input_size(ex, opts), layout=ex.layout, preset=opts.preset or "imagenet",
                mean=opts.mean, std=opts.std, crop=opts.crop, channels=ex.input_channels or 3,
                pixels=pixels)


def input_size(ex: Explainer, opts: Options) -> tuple[int, int] | None:
    """The input's (H, W): the model's, or ``--size``; None when neither fixes it (each photo is
    then given at its own size, :func:`~onnx_xai.images.natural_size`)."""
    shape = ex.input_shape
    dims = (shape[ex.layout.index("H")], shape[ex.layout.index("W")])
    fixed = [d for d in dims if isinstance(d, int)]
    if opts.size is not None:
        if any(isinstance(d, int) and d != s for d, s in zip(dims, opts.size)):
            raise InputError(f"--size {opts.size[0]} {opts.size[1]} contradicts the model's input size "
                             f"{' x '.join(str(d) for d in dims)}")
        return tuple(opts.size)
    if len(fixed) == 1:
        raise InputError(f"the model fixes one side of its input ({shape}); give --size H W")
    return dims if fixed else None


def _explain(ex: Explainer, prepared: list[Prepared], opts: Options) -> tuple[dict, list[dict | None]]:
    """Every method on a batch (one shared run for all of them, or SmoothGrad of each), and what each
    photo's objective is when it is not a class (:mod:`onnx_xai.objective`)."""
    batch = np.concatenate([p.array for p in prepared])
    wanted, chosen = objective(ex, batch, prepared, opts)
    if opts.smooth:
        return {m: ex.explain(batch, "smoothgrad", base=m, n_samples=opts.smooth, noise_seed=opts.seed,
                              **wanted) for m in opts.methods}, chosen
    options = {"noise_seed": opts.seed} if "smoothgrad" in opts.methods else {}
    if opts.steps and "integrated_gradients" in opts.methods:
        options["n_steps"] = opts.steps
    if any("fuse" in get(m).Options.__dataclass_fields__ for m in opts.methods):
        options["fuse"] = opts.fuse
    return ex.explain_many(batch, opts.methods, **wanted, **options), chosen


def _pick(result, i: int) -> dict:
    return {"target": int(result.targets[i]), "score": float(result.scores[i]), "map": result.maps[i],
            "box": result.boxes[i].tolist(), "family": result.family,
            "signed": None if result.signed is None else result.signed[i]}


def _picture(p: Prepared, r: dict, opts: Options, box):
    """The photo with one method's map: a heatmap for the CAM family, a spotlight (signed ones
    tinted) for the gradient family (:mod:`onnx_xai.visuals`)."""
    if r["family"] == "cam":
        return overlay(p.photo, p.map_to_photo(r["map"]), opts.cmap, opts.alpha, box, p.region())
    signed = p.map_to_photo(r["signed"]) if r["signed"] is not None else None
    return spotlight(p.photo, p.map_to_photo(r["map"]), signed, box, p.region())


def _title(chosen: dict | None, target: int, opts: Options) -> tuple[str, str | None]:
    """What a panel explains, in words, and the class label (None for seeds, or without labels)."""
    cls = target if chosen is None else chosen.get("class")
    label = opts.labels[cls] if opts.labels and cls is not None and 0 <= cls < len(opts.labels) else None
    if chosen is None:
        return str(label or target), label
    what = f"{chosen['kind']} {label or ('' if cls is None else cls)}".strip()
    return (what + (f" #{chosen['candidate']}" if "candidate" in chosen else "")), label


def _write_photo(path: Path, name: str, p: Prepared, per_method: dict, chosen: dict | None,
                 staging: Staging, opts: Options, sha256: str) -> dict:
    """Stage the photo's overlays, sheet and JSON record, then move them into place together; the
    objective's own region (a detection, a dense region), when it has one, is outlined in green."""
    panels, entries, written = [], [], []
    for method, r in per_method.items():
        box = p.box_to_photo(r["box"]) if r["box"][2] > r["box"][0] else None
        picture = outline(_picture(p, r, opts, box), (chosen or {}).get("photo_box"))
        written.append(f"{name}.{method}.png")
        picture.save(staging.path(written[-1]), format="PNG")
        what, label = _title(chosen, r["target"], opts)
        panels.append((f"{('smooth ' if opts.smooth else '')}{method}: {what}", picture))
        entries.append({"method": method, "smoothgrad_samples": opts.smooth,
                        "target": r["target"] if chosen is None else None, "label": label,
                        "score": round(r["score"], 6), "box": list(box) if box else None, "overlay": written[-1]})
    record = {"file": str(path), "name": name, "model_sha256": sha256, "size": list(p.photo.size),
              "input_size": list(p.size), "objective": chosen or {"kind": "class"}, "explanations": entries}
    if opts.sheets:
        record["sheet"] = f"{name}.sheet.png"
        written.append(record["sheet"])
        sheet(p.photo, panels).save(staging.path(record["sheet"]), format="PNG")
    record["outputs"] = written
    staging.path(f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    staging.commit(written, f"{name}.json")
    return record
