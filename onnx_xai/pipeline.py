"""Explaining photo files end to end: load, preprocess, explain in batches, write overlays and JSON.

Every input is decoded once up front, so a missing, non-image or truncated file stops the run before
anything is written. Outputs are written atomically (temporary file, then rename): a run never leaves
a half-written file. Per photo: one PNG overlay per method (heatmap on the original photo, box in
original pixels), optionally a side-by-side sheet of the methods, and one JSON record.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError
from .images import Prepared, load_image, prepare
from .runtime import Explainer
from .visuals import overlay, sheet

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
    cmap: str = "jet"
    alpha: float = 0.5
    batch_size: int = 8
    sheets: bool = False
    labels: list[str] = field(default_factory=list)


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
    """A class index from a number or a label name (case-insensitive); the range is checked when
    the class count is known (the Explainer checks it again at run time)."""
    if text is None:
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


def explain_files(ex: Explainer, files: Sequence[Path], out: Path, opts: Options, sha256: str,
                  progress=None) -> list[dict]:
    """Explain photo files with each method; returns the JSON records written (one per photo)."""
    for f in files:  # decode everything first: a bad file stops the run before anything is written
        load_image(f)
    preprocessing = model_preprocessing(ex, opts)
    out = prepare_output_folder(out)
    stems = unique_stems(files)
    records = []
    for start in range(0, len(files), opts.batch_size):
        chunk = files[start:start + opts.batch_size]
        prepared = [prepare(load_image(f), **preprocessing) for f in chunk]
        batch = np.concatenate([p.array for p in prepared])
        results = _explain(ex, batch, opts)
        for i, (f, p) in enumerate(zip(chunk, prepared)):
            records.append(_write_photo(f, stems[f], p, {m: _pick(r, i) for m, r in results.items()},
                                        out, opts, sha256))
        if progress is not None:
            progress.update(len(chunk))
    return records


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


def input_size(ex: Explainer, opts: Options) -> tuple[int, int]:
    shape = ex.input_shape
    dims = (shape[ex.layout.index("H")], shape[ex.layout.index("W")])
    if opts.size is not None:
        return tuple(opts.size)
    if not all(isinstance(d, int) for d in dims):
        raise InputError(f"the model's input size is not fixed ({shape}); give --size H W")
    return dims


def unique_stems(files: Sequence[Path]) -> dict[Path, str]:
    seen: dict[str, int] = {}
    stems = {}
    for f in files:
        n = seen.get(f.stem, 0) + 1
        seen[f.stem] = n
        stems[f] = f.stem if n == 1 else f"{f.stem}_{n}"
    return stems


def _explain(ex: Explainer, batch: np.ndarray, opts: Options) -> dict:
    """Every method on a batch: one shared run for the plain ones, or SmoothGrad of each."""
    if opts.smooth:
        return {m: ex.explain(batch, "smoothgrad", target=opts.target, base=m, n_samples=opts.smooth,
                              seed=opts.seed) for m in opts.methods}
    seed = {"seed": opts.seed} if "smoothgrad" in opts.methods else {}
    return ex.explain_many(batch, opts.methods, target=opts.target, **seed)


def _pick(result, i: int) -> dict:
    return {"target": int(result.targets[i]), "score": float(result.scores[i]), "map": result.maps[i],
            "box": result.boxes[i].tolist()}


def _write_photo(path: Path, stem: str, p: Prepared, per_method: dict, out: Path, opts: Options,
                 sha256: str) -> dict:
    panels, entries = [], []
    for method, r in per_method.items():
        box = p.box_to_photo(r["box"]) if r["box"][2] > r["box"][0] else None
        picture = overlay(p.photo, p.map_to_photo(r["map"]), opts.cmap, opts.alpha, box, p.region())
        name = f"{stem}.{method}.png"
        write_atomic(out / name, lambda tmp, im=picture: im.save(tmp, format="PNG"))
        label = opts.labels[r["target"]] if opts.labels else None
        title = f"{('smooth ' if opts.smooth else '')}{method}: {label or r['target']}"
        panels.append((title, picture))
        entries.append({"method": method, "smoothgrad_samples": opts.smooth, "target": r["target"],
                        "label": label, "score": round(r["score"], 6),
                        "box": list(box) if box else None, "overlay": name})
    record = {"file": str(path), "model_sha256": sha256, "size": list(p.photo.size),
              "explanations": entries}
    if opts.sheets:
        record["sheet"] = f"{stem}.sheet.png"
        picture = sheet(p.photo, panels)
        write_atomic(out / record["sheet"], lambda tmp: picture.save(tmp, format="PNG"))
    write_atomic(out / f"{stem}.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return record


def write_atomic(path: Path, write) -> None:
    """Call ``write(temporary_path)`` then rename the result to ``path``; nothing half-written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
