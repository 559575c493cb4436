"""Explaining photo files end to end: load, preprocess, explain in batches, write overlays and JSON.

Every input is decoded once up front, so a missing, non-image or truncated file stops the run before
anything is written (or, with ``keep_going``, is left out and reported). Per photo: one PNG overlay per
method (heatmap on the original photo, box in original pixels), optionally a side-by-side sheet of the
methods, and one JSON record listing them; the set is written aside and moved into place whole
(:class:`onnx_xai.support.files.Staging`), so an interrupted run leaves complete sets and no temporary files.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path, PurePosixPath

import numpy as np

from ..imaging.images import Prepared, load_image, prepare
from ..imaging.preprocessing import Preprocessing, default_references, preprocessing_for
from ..objectives.boxes import BoxDecoder
from ..objectives.seeds import DetectionLayout
from ..runtime import Explainer
from ..runtime.methods import options_for
from ..support.errors import InputError
from ..support.files import OutputFolder, Staging, output_folder
from ..support.names import unique_names
from ..support.signals import critical, interruptible
from .objectives import objective
from .records import picks, stage_photo

WORKERS = 2  # decoding and encoding threads beside inference (measured on 2 cores: see docs/benchmarks.md)
CACHE_PIXELS = 64 * 2**20  # photos decoded up front and kept for the run: at most 192 MiB of RGB


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
) -> list[dict]:
    """Explain photo files with each method; returns the JSON records written (one per photo).

    Args:
        files: paths, or (path, output name) pairs as :func:`~onnx_xai.imaging.images.image_files` gives.
        progress: called with the number of photos once they are decoded; returns a progress bar
            (``update(n)``, ``close()``).
        on_skip: called with (path, reason) for a photo left out (``opts.keep_going``).

    Every photo is decoded before anything is written: a bad one stops the run, or, with
    ``opts.keep_going``, is left out.
    """
    pairs = [f if isinstance(f, tuple) else (Path(f), Path(f).name) for f in files]
    with interruptible():
        cache = DecodedCache()
        pairs = _readable(pairs, opts.keep_going, on_skip, cache)
        preprocessing = preprocessing_for(ex, opts.preprocessing)
        out = output_folder(out)
        names = dict(zip([path for path, _ in pairs], unique_names([name for _, name in pairs])))
        OutputFolder(out).check(str(PurePosixPath(name).parent) for name in names.values())
        step = opts.batch_size if preprocessing["size"] is not None else 1  # any size: each photo its own
        chunks = [[path for path, _ in pairs[k : k + step]] for k in range(0, len(pairs), step)]
        bar = progress(len(pairs)) if progress is not None else None
        try:
            with Staging(out) as staging:
                return _run_chunks(
                    ex,
                    chunks,
                    names,
                    lambda f: prepare(cache.take(f), **preprocessing),
                    staging,
                    opts,
                    sha256,
                    bar,
                )
        finally:
            if bar is not None:
                bar.close()


def _run_chunks(
    ex: Explainer,
    chunks: list[list[Path]],
    names: dict,
    prepared_photo: Callable,
    staging: Staging,
    opts: ExplainOptions,
    sha256: str,
    bar,
) -> list[dict]:
    """Inference on one batch while the next is decoded and the last ones' pictures are encoded, in
    worker threads (Pillow and the runtime release the GIL); commits stay in this thread, in order,
    with signals held; at most two batches of pictures are in flight."""

    def load(chunk):
        return [prepared_photo(f) for f in chunk]

    pool = ThreadPoolExecutor(max_workers=WORKERS)
    records, staged = [], deque()
    try:
        pool.submit(import_module, "scipy.ndimage")  # the boxes need it; half a second, meanwhile
        upcoming = pool.submit(load, chunks[0])
        for k, chunk in enumerate(chunks):
            prepared = upcoming.result()
            if k + 1 < len(chunks):
                upcoming = pool.submit(load, chunks[k + 1])
            results, chosen = explain_prepared(ex, prepared, opts)

            def stage(i: int, f, p: Prepared, results=results, chosen=chosen):  # picked in the worker
                return stage_photo(f, names[f], p, picks(results, i), chosen[i], staging, opts, sha256)

            for i, (f, p) in enumerate(zip(chunk, prepared)):
                staged.append(pool.submit(stage, i, f, p))
            while len(staged) > 2 * len(chunk) or (k + 1 == len(chunks) and staged):
                records.append(_commit(staging, staged.popleft().result(), bar))
    finally:
        with critical():  # the workers finish before the staging folder goes
            pool.shutdown(wait=True, cancel_futures=True)
    return records


def _commit(staging: Staging, done: tuple[list[str], str, dict], bar) -> dict:
    written, record_name, record = done
    staging.commit([*written, record_name], staging.previous_set(record_name))
    if bar is not None:
        bar.update(1)
    return record


class DecodedCache:
    """Photos decoded while checking them, kept (up to :data:`CACHE_PIXELS`) so that the run does
    not decode them again; each is handed out once."""

    def __init__(self):
        self._photos, self._pixels, self._lock = {}, 0, threading.Lock()

    def keep(self, path: Path, photo) -> None:
        with self._lock:
            if self._pixels + photo.width * photo.height <= CACHE_PIXELS:
                self._photos[path] = photo
                self._pixels += photo.width * photo.height

    def take(self, path: Path):
        with self._lock:
            photo = self._photos.pop(path, None)
        return photo if photo is not None else load_image(path)


def _readable(
    pairs: list[tuple[Path, str]], keep_going: bool, on_skip, cache: DecodedCache
) -> list[tuple[Path, str]]:
    """The photos that decode (decoded in worker threads, and kept in ``cache``); without
    ``keep_going`` the first that does not raises."""

    def problem(path: Path) -> str | None:
        try:
            cache.keep(path, load_image(path))
        except InputError as exc:
            return str(exc)
        return None

    kept = []
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for (path, name), reason in zip(pairs, pool.map(problem, [path for path, _ in pairs])):
            if reason is not None:
                if not keep_going:
                    raise InputError(reason)
                if on_skip is not None:
                    on_skip(path, reason)
                continue
            kept.append((path, name))
    if not kept:
        raise InputError("none of the photos could be read")
    return kept


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
