"""Explaining photo files end to end: load, preprocess, explain in batches, write overlays and JSON.

Every input is decoded once up front, so a missing, non-image or truncated file stops the run before
anything is written (or, with ``keep_going``, is left out and reported). Then the work goes in stages
that never overlap, as the server's (:mod:`.reading`): a wave of photos made into inputs in worker
threads, then per batch of photos of one input shape the model's run, with every core, and its
pictures and records written in the worker threads. Per photo: one PNG overlay per method (heatmap on
the original photo, box in original pixels), optionally a side-by-side sheet of the methods, and one
JSON record listing them; the set is written aside and moved into place whole
(:class:`onnx_xai.support.files.Staging`), so an interrupted run leaves complete sets and no temporary files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..imaging.images import Prepared
from ..imaging.preprocessing import Preprocessing, default_references, preprocessing_for
from ..objectives.boxes import BoxDecoder
from ..objectives.seeds import DetectionLayout
from ..runtime import Explainer
from ..runtime.methods import options_for
from ..support.errors import InputError
from ..support.files import OutputFolder, Staging, output_folder
from ..support.names import unique_names
from ..support.signals import interruptible
from .objectives import objective
from .reading import PhotoReads
from .records import picks, stage_photo

WAVE_BYTES = 64 * 2**20  # the inputs one read stage prepares, at most (at least one batch's)
BATCH_PIXELS = 2**18  # a model of any input size: a batch's input pixels per photo of --batch-size


@dataclass
class ExplainOptions:
    """How to explain a set of photos (the ``explain`` command's flags, as a value)."""

    methods: Sequence[str] = ("gradcam",)
    target: int | None = None
    preprocessing: Preprocessing = Preprocessing()
    smooth: int | None = None  # SmoothGrad samples: smooth every method with this many
    noise_seed: int = 0
    steps: int | None = None  # integrated_gradients' n_steps (None: its default)
    cmap: str = "jet"
    alpha: float = 0.5
    batch_size: int = 8
    sheets: bool = False
    labels: list[str] = field(default_factory=list)
    keep_going: bool = False  # leave out photos that do not decode instead of stopping
    # what to explain beyond a class (onnx_xai.photos.objectives): the kind, and where
    objective: str = "auto"
    region: tuple[float, float, float, float] | None = None  # x0 y0 x1 y1 in photo pixels
    channel: int = 0
    values: tuple[int, ...] | None = None  # a regression's values to sum (a landmark's x and y)
    candidate: int | None = None
    detection: DetectionLayout | None = None  # None: read from the output's shape (seeds.detection_layout)
    decoder: BoxDecoder | None = None  # a scores output's boxes; None: paired by shape (boxes.pair_boxes)
    threshold: float = 0.3
    fuse: str = "mean"  # how the CAM family's maps of several target layers combine
    image_format: str = "png"  # the pictures': "png" (lossless) or "jpg"
    overlays: bool = True  # False: only the JSON records
    baselines: np.ndarray | None = None  # deeplift_shap's references [B, ...]; None: reference_options


def explain_files(
    ex: Explainer,
    files: Sequence[Path | tuple[Path, str]],
    out: Path,
    opts: ExplainOptions,
    sha256: str,
    progress: Callable | None = None,
    on_skip: Callable | None = None,
    reads: PhotoReads | None = None,
) -> list[dict]:
    """Explain photo files with each method; returns the JSON records written (one per photo).

    Args:
        files: paths, or (path, output name) pairs as :func:`~onnx_xai.imaging.images.image_files` gives.
        progress: called with the number of photos once they are decoded; returns a progress bar
            (``update(n)``, ``close()``).
        on_skip: called with (path, reason) for a photo left out (``opts.keep_going``).
        reads: the photos' reading, started ahead (:class:`~.reading.PhotoReads`; the caller closes
            it); None: started here.

    Every photo is decoded before anything is written: a bad one stops the run, or, with
    ``opts.keep_going``, is left out. Then reading, the model's runs and writing go in stages that
    never overlap (:mod:`.reading`).
    """
    pairs = [f if isinstance(f, tuple) else (Path(f), Path(f).name) for f in files]
    with interruptible(), ExitStack() as stack:
        if reads is None:
            reads = stack.enter_context(PhotoReads([path for path, _ in pairs]))
        preprocessing, problem = _preprocessing(ex, opts)
        if preprocessing is not None:
            reads.settle(preprocessing)
        pairs = reads.readable(pairs, opts.keep_going, on_skip)
        if problem is not None:  # said after the photos' own problems, as ever
            raise problem
        assert preprocessing is not None
        out = output_folder(out)
        paths = [path for path, _ in pairs]
        by_path = dict(zip(paths, unique_names([name for _, name in pairs])))
        OutputFolder(out).check(str(PurePosixPath(name).parent) for name in by_path.values())
        names = [by_path[path] for path in paths]
        batches = _batches([reads.size(path) for path in paths], preprocessing, opts.batch_size)
        bar = progress(len(pairs)) if progress is not None else None
        if bar is not None:
            stack.callback(bar.close)
        staging = stack.enter_context(Staging(out))
        run = _Run(ex, reads, preprocessing, staging, opts, sha256, bar)
        records: dict[int, dict] = {}
        for wave in _waves(batches, paths, reads, preprocessing):
            records |= run.wave(wave, paths, names)
        return [records[k] for k in range(len(paths))]


def _preprocessing(ex: Explainer, opts: ExplainOptions) -> tuple[dict | None, InputError | None]:
    """:func:`~onnx_xai.imaging.preprocessing.preprocessing_for` the model and the options, or why not."""
    try:
        return preprocessing_for(ex, opts.preprocessing), None
    except InputError as exc:
        return None, exc


def _batches(sizes: list[tuple[int, int]], preprocessing: dict, batch_size: int) -> list[list[int]]:
    """The photos (indices) of each run: ``batch_size`` at a time in order for a model of one input
    size; for a model that takes any size, photos of one size together (the same input shape), at
    most ``batch_size`` of them and no more input pixels than ``batch_size`` x :data:`BATCH_PIXELS`,
    in the order of their first photo."""
    if preprocessing["size"] is not None:
        return [list(range(k, min(k + batch_size, len(sizes)))) for k in range(0, len(sizes), batch_size)]
    batches: list[list[int]] = []
    open_batch: dict[tuple[int, int], list[int]] = {}
    for k, size in enumerate(sizes):
        limit = max(1, min(batch_size, batch_size * BATCH_PIXELS // _input_pixels(size, preprocessing)))
        batch = open_batch.get(size)
        if batch is None or len(batch) >= limit:
            batch = open_batch[size] = []
            batches.append(batch)
        batch.append(k)
    return batches


def _input_pixels(size: tuple[int, int], preprocessing: dict) -> int:
    """About the pixels of a photo of ``size`` (W, H) as the model's input."""
    if preprocessing["size"] is not None:
        return preprocessing["size"][0] * preprocessing["size"][1]
    scale = min(1.0, 960 / max(size))  # images.natural_size
    return max(1, int(size[0] * scale) * int(size[1] * scale))


def _waves(batches: list[list[int]], paths: list[Path], reads: PhotoReads, preprocessing: dict):
    """Consecutive batches whose photos and inputs, together, stay under :data:`WAVE_BYTES` (at
    least one batch): what one read stage prepares."""
    wave: list[list[int]] = []
    held = 0
    for batch in batches:
        sizes = [reads.size(paths[k]) for k in batch]  # RGB bytes, and float32 RGB inputs
        size = sum(3 * w * h + 12 * _input_pixels((w, h), preprocessing) for w, h in sizes)
        if wave and held + size > WAVE_BYTES:
            yield wave
            wave, held = [], 0
        wave.append(batch)
        held += size
    if wave:
        yield wave


class _Run:
    """The stages of a wave of batches: its photos read (the workers), then per batch the model's
    run (this thread, every core to it), its pictures and records staged (the workers), and each
    photo's set committed in order (this thread, signals held)."""

    def __init__(self, ex, reads: PhotoReads, preprocessing: dict, staging: Staging, opts, sha256: str, bar):
        self.ex, self.reads, self.preprocessing, self.staging = ex, reads, preprocessing, staging
        self.opts, self.sha256, self.bar = opts, sha256, bar

    def wave(self, wave: list[list[int]], paths: list[Path], names: list[str]) -> dict[int, dict]:
        flat = [k for batch in wave for k in batch]
        prepared = dict(zip(flat, self.reads.prepared([paths[k] for k in flat], self.preprocessing)))
        records = {}
        for batch in wave:
            results, chosen = explain_prepared(self.ex, [prepared[k] for k in batch], self.opts)

            def stage(i: int, batch=batch, results=results, chosen=chosen):  # picked in the worker
                k = batch[i]
                found, opts = picks(results, i), self.opts
                return stage_photo(
                    paths[k], names[k], prepared[k], found, chosen[i], self.staging, opts, self.sha256
                )

            for k, done in zip(batch, self.reads.stage(stage, range(len(batch)))):
                records[k] = _commit(self.staging, done, self.bar)
                del prepared[k]
        return records


def _commit(staging: Staging, done: tuple[list[str], str, dict], bar) -> dict:
    written, record_name, record = done
    staging.commit([*written, record_name], staging.previous_set(record_name))
    if bar is not None:
        bar.update(1)
    return record


def explain_prepared(
    ex: Explainer, prepared: list[Prepared], opts: ExplainOptions
) -> tuple[dict, list[dict | None]]:
    """Every method on a batch (one shared run for all of them, or SmoothGrad of each), and what each
    photo's objective is when it is not a class (:mod:`onnx_xai.photos.objectives`)."""
    batch = np.concatenate([p.array for p in prepared])
    wanted, chosen = objective(ex, batch, prepared, opts)
    references = reference_options(ex, batch, opts)
    if opts.smooth:
        return {
            m: ex.explain(
                batch,
                "smoothgrad",
                base=m,
                n_samples=opts.smooth,
                noise_seed=opts.noise_seed,
                objective=wanted,
                base_options=references if m in REFERENCED else None,
            )  # fmt: skip
            for m in opts.methods
        }, chosen
    options = options_for(opts.methods, opts.noise_seed, opts.steps, opts.fuse)
    apart = [m for m in opts.methods if m == "gradient_shap" and references and opts.baselines is None]
    together = [
        m for m in opts.methods if m not in apart
    ]  # deeplift_shap's own references: not gradient_shap's
    results = ex.explain_many(batch, together, objective=wanted, **options, **references)
    if apart:
        results |= ex.explain_many(batch, apart, objective=wanted, **options_for(apart, opts.noise_seed))
    return {m: results[m] for m in opts.methods}, chosen


def cost_per_photo(ex: Explainer, opts: ExplainOptions) -> tuple[int, str] | None:
    """The model runs explaining one photo takes beyond its shared run, and what asks for them, when
    the model's input size is fixed (else None: each photo's size decides)."""
    shape = (1, *ex.input_shape[1:])
    if not all(isinstance(d, int) for d in shape):
        return None
    return explain_cost(ex, shape, opts)


def explain_cost(ex: Explainer, shape: tuple, opts: ExplainOptions) -> tuple[int, str]:
    """The model runs explaining a batch of ``shape`` as :func:`explain_prepared` does takes beyond
    its shared run, and what asks for them (:meth:`onnx_xai.Explainer.cost`)."""
    references = reference_options(ex, np.zeros(shape, ex.input_dtype), opts)
    if opts.smooth:
        costs = [
            ex.cost(shape, ["smoothgrad"], n_samples=opts.smooth, base=m,
                    base_options=references if m in REFERENCED else None)
            for m in opts.methods
        ]  # fmt: skip
        return sum(runs for runs, _ in costs), "; ".join(why for runs, why in costs if runs)
    options = options_for(opts.methods, opts.noise_seed, opts.steps, opts.fuse)
    return ex.cost(shape, opts.methods, **options, **references)


REFERENCED = ("deeplift_shap", "gradient_shap")  # the methods that take ``baselines``


def reference_options(ex: Explainer, batch: np.ndarray, opts: ExplainOptions) -> dict:
    """``baselines`` for the methods asked that take them: the ``--baselines`` file's, or for
    ``deeplift_shap`` each photo's own three (:func:`~onnx_xai.imaging.preprocessing.default_references`);
    ``gradient_shap`` keeps its default (zeros) unless a file is given."""
    if not any(m in REFERENCED for m in opts.methods):
        return {}
    if opts.baselines is not None:
        return {"baselines": opts.baselines}
    if "deeplift_shap" not in opts.methods:
        return {}
    settings = preprocessing_for(ex, opts.preprocessing)
    return {"baselines": default_references(batch, settings)}
