"""The method contract and the registry that feeds the API, the CLI, ``inspect`` and the README.

A method is one class (pytorch-grad-cam's shape for the CAM family; PAIR saliency's
``call_model_function`` for the rest). It declares:

- ``sets``: the output sets (:data:`onnx_xai.graph.contract.OUTPUT_SETS`) one run of the model must give
  it; methods of one ``explain_many`` call share that run;
- ``attribute(ctx, opts)``: its raw attribution from the shared run's outputs (``ctx.outputs``), and
  from more runs (``ctx.call``) for sampling and perturbation methods;
- ``family``: ``"gradient"`` (raw shaped like the input) or ``"cam"`` (raw ``[N, h, w]`` on the
  target layer's grid), which decides how raw becomes pixels; ``signed`` for attributions whose sign
  means something (shown on a diverging colormap);
- ``Options``: a frozen dataclass of its options, checked where they enter;
- ``cost(opts, facts)``: the model runs (instances) it adds to the shared run for a batch, known
  before it runs (:class:`Facts`; :mod:`onnx_xai.runtime.work` admits or refuses them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from ...support.errors import InputError
from .run_sizes import PerRun, RunSizes, cap, size_of

Call = Callable[..., dict]  # (x, objectives, sets, owners) -> the run's outputs by name
KINDS = ("image", "table", "signal", "tokens", "tensor")  # what an explained input is (the record's kind)
IMAGES = ("image",)


@dataclass
class Context:
    """What a method computes from: the batch (in the model's type), the objective per sample (the
        resolved classes, int64 ``[N]``, or the seeds, float32 ``[N, *output]``: index either with the
        same owners), the shared run's outputs, a way to run the model again, the input's layout, and the
    model cut at its target layer (built when a method first asks)."""

    x: np.ndarray
    targets: np.ndarray
    outputs: dict[str, np.ndarray]
    call: Call
    layout: str | None  # an image's layout, None for other inputs
    head: Callable[[], Any] | None = None  # the model from the target layer on (runtime.head.LayerHead)
    output_name: str = ""  # the explained output's name in ``outputs``
    score_kind: str = "logit"  # how the score relates to that output: logit, pre-softmax, pre-sigmoid
    # LRP of (x, objective) by a composite
    relevance: Callable[[np.ndarray, np.ndarray, Any], np.ndarray] | None = None
    found: dict = field(default_factory=dict)  # by-products a method hands back: "base" (SHAP's)
    rows: np.ndarray | None = None  # each row's sample in the caller's batch (None: the same rows)
    inputs: dict = field(default_factory=dict)  # the model's other inputs, as given (batch first)
    input_name: str = ""  # the explained input's name
    trees: Callable[[], Any] | None = None  # the tree ensemble behind the output (runtime.margins)
    # a token model's ids (``x`` is then their embedding), the runs of the model on ids (the
    # perturbation methods' copies) and the embedding of any ids
    ids: np.ndarray | None = None
    call_ids: Call | None = None
    embed: Callable[[np.ndarray], np.ndarray] | None = None
    sizes: RunSizes = field(default_factory=RunSizes)  # the copies per run found (the Explainer's)

    def image_layout(self) -> str:
        """The input's layout, for the methods that work on images only."""
        if self.layout is None:
            raise InputError("this method works on images; the model's input is not one")
        return self.layout

    def layer_head(self):
        """The :class:`~onnx_xai.runtime.head.LayerHead` of this model and objective."""
        if self.head is None:
            raise InputError("this method needs the model's target layer, which this run has not found")
        return self.head()

    def reference(self, value) -> np.ndarray:
        """A baseline as a point shaped like ``x``, float32: zeros for None; for a token model, token
        ids (one id, ``[T]`` or ``[N, T]``) become their embeddings; for a signal, ``"mean"`` is each
        channel's mean over time, per sample; else broadcast to ``x``."""
        x = self.x.astype(np.float32)
        if value is None:
            return np.zeros_like(x)
        if isinstance(value, str):
            if value != "mean" or self.layout is None or "T" not in self.layout:
                raise InputError(f"baseline {value!r}: a number or an array ('mean' for a signal)")
            return np.broadcast_to(x.mean(axis=self.layout.index("T"), keepdims=True), x.shape).copy()
        if self.embed is not None and self.ids is not None and _integers(value):
            return self.embed(np.broadcast_to(np.asarray(value, np.int64), self.ids.shape))
        try:
            return np.broadcast_to(np.asarray(value, np.float32), x.shape).copy()
        except ValueError:
            raise InputError(
                f"baseline has shape {np.shape(value)}, which does not broadcast to the batch's {x.shape}"
            ) from None

    def references(self, values) -> np.ndarray:
        """Several baselines (``[B, ...]``, or ``[N, B, ...]`` per sample) as points, float32; a token
        model's ids ``[B, T]`` (``[N, B, T]``) become their embeddings."""
        if self.embed is not None and _integers(values):
            ids = np.asarray(values, np.int64)
            return self.embed(ids.reshape(-1, ids.shape[-1])).reshape(*ids.shape, -1)
        return np.asarray(values, np.float32)

    def run_ids(
        self, ids: np.ndarray, targets: np.ndarray, sets: tuple[str, ...], owners: np.ndarray
    ) -> dict:
        """A run of a token model on ids (copies of rows ``owners`` of the batch)."""
        if self.call_ids is None:
            raise InputError("this method's copies are of token ids; the model's input is not ids")
        return self.call_ids(ids, targets, sets, owners if self.rows is None else self.rows[owners], None)

    def run(
        self,
        x: np.ndarray,
        targets: np.ndarray,
        sets: tuple[str, ...],
        owners: np.ndarray | None = None,
        given: dict | None = None,
    ) -> dict[str, np.ndarray]:
        """One more run of the model on ``x`` for the classes ``targets``; ``owners``: the row of this
        context's batch each row of ``x`` is a copy of (the model's other inputs are then those of
        that row; None: ``x`` is the batch itself); ``given``: other inputs' values for these rows,
        in place of the owners' (a table's columns held in other inputs, changed)."""
        if owners is None and len(x) == len(self.x):
            owners = np.arange(len(x))
        if owners is not None and self.rows is not None:
            owners = self.rows[owners]
        return self.call(x, targets, sets, owners, given)


def _integers(value) -> bool:
    """Whether a baseline is token ids (integers) rather than points."""
    return not isinstance(value, bool) and np.asarray(value).dtype.kind in "iu"


@dataclass(frozen=True)
class Options:
    """Base of every method's options: unknown names are an error, values checked by ``check``."""

    @classmethod
    def parse(cls, method: str, options: dict) -> Options:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            valid = f"valid: {', '.join(names)}" if names else "it takes none"
            raise InputError(f"unknown {method} option(s) {unknown}; {valid}")
        opts = cls(**options)
        opts.check()
        return opts

    def check(self) -> None:
        """Raise InputError naming any option with a bad value."""


def whole(name: str, value, low: int, optional: bool = False) -> None:
    """Check that an option is a whole number >= ``low`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")


def finite(name: str, value, low: float = -math.inf) -> None:
    """Check that an option is a finite real number >= ``low``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not low <= value < math.inf
    ):
        raise InputError(f"{name} must be a finite number >= {low}, not {value!r}")


def number_or_ids(name: str, value) -> None:
    """A value that replaces removed features: a finite number, token ids (an integer array), or a
    signal's ``"mean"``."""
    if isinstance(value, str) and value == "mean":
        return
    if np.ndim(value) == 0 or isinstance(value, (str, bool)):
        finite(name, value)
    elif np.asarray(value).dtype.kind not in "iu":
        raise InputError(f"{name} must be a finite number, or token ids (an integer array)")


def finite_array(name: str, value) -> np.ndarray:
    """An option that must be a non-empty numeric array of finite values."""
    array = np.asarray(value) if not isinstance(value, str) else np.asarray([])
    if array.dtype.kind not in "fiu" or array.size == 0 or not np.isfinite(array).all():
        raise InputError(f"{name} must be a non-empty numeric array of finite values")
    return array


@dataclass(frozen=True)
class Facts:
    """What a method's cost depends on: the batch's size and one sample's shape, the input's layout,
    and each target layer's ``(K, h, w)`` (channels-first; empty when the model has none)."""

    batch: int
    sample: tuple[int, ...]
    layout: str | None  # an image's (or a signal's: NCT, NTC, NT), None for other inputs
    layers: tuple[tuple[int, int, int], ...] = ()

    def size(self, axis: str) -> int:
        """An image's extent along ``axis`` (``"H"``, ``"W"``, ``"C"``)."""
        if self.layout is None:
            raise InputError(f"the input has no {axis} axis: it is not an image")
        return int(self.sample[self.layout.index(axis) - 1])

    def one(self) -> Facts:
        """The same facts for a batch of one."""
        return Facts(1, self.sample, self.layout, self.layers)


Cost = tuple[int, str]  # model runs (instances) beyond the shared run, and what asks for them


MethodOptions = Options  # the type of every method's options (``Method.Options`` names a class)


class Method:
    """A saliency method (see the module docstring)."""

    name: ClassVar[str]
    family: ClassVar[str] = "gradient"
    signed: ClassVar[bool] = False
    sets: ClassVar[tuple[str, ...]] = ()
    forward_only: ClassVar[bool] = False  # needs only the score: runs on models that cannot be rewritten
    kinds: ClassVar[tuple[str, ...]] = KINDS  # the inputs it explains (images only: maps, patches)
    Options: ClassVar[type[Options]] = Options
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    agreement: ClassVar[str] = ""  # the tested agreement with the reference (relative L2, and what)

    def attribute(self, ctx: Context, opts: MethodOptions) -> np.ndarray:
        raise NotImplementedError

    def cost(self, opts: MethodOptions, facts: Facts) -> Cost:
        """The model runs (instances) this method adds to the shared run, and the option that sets
        their number; none by default."""
        return 0, ""

    def family_for(self, opts: MethodOptions) -> str:
        return self.family

    def signed_for(self, opts: MethodOptions) -> bool:
        return self.signed

    def sets_for(self, opts: MethodOptions) -> tuple[str, ...]:
        return self.sets


REGISTRY: dict[str, Method] = {}


def register(cls: type[Method]) -> type[Method]:
    """Add a method class to the registry (one instance); registering a name twice raises."""
    if cls.name in REGISTRY:
        raise ValueError(f"a method named {cls.name!r} is already registered")
    REGISTRY[cls.name] = cls()
    return cls


def get(name) -> Method:
    """The registered method called ``name``."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise InputError(f"unknown method {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def chunks(total: int, size: PerRun):
    """``range`` slices of at most ``size`` covering ``total`` items (a ladder's sizes as it says)."""
    start = 0
    while start < total:
        stop = min(start + size_of(size), total)
        yield slice(start, stop)
        start = stop


def sample_rows(samples: int, per_sample: int, per_run: PerRun):
    """Chunks of rows over ``samples`` x ``per_sample`` copies, grouped by sample: each chunk's
    ``(owners, indexes)``, the sample and the copy's index within it, made as the chunks are taken
    (memory a function of the chunk, whatever the count)."""
    for part in chunks(samples * per_sample, per_run):
        rows = np.arange(part.start, part.stop, dtype=np.int64)
        yield rows // per_sample, rows % per_sample


SMALL_SAMPLES = 4 << 20  # input bytes a chunk of small samples may hold (4 MiB)
MOST_COPIES = 64


def chunk_size(batch: int, sample_bytes: int = 0) -> int:
    """Copies per run for sampling methods, by default: as many as the caller's batch, within 4..16;
    for small samples (a signal, a table's row) as many as fit :data:`SMALL_SAMPLES` bytes of input,
    up to :data:`MOST_COPIES`.

    Measured on 2 CPU cores (tools/bench_methods.py, input gradients at 224 x 224): the cost per image
    falls from batch 1 to 4 (ResNet-50: 145 to 109 ms) and is flat beyond (110 ms at 16 and 32;
    EfficientNet-Lite0: 25-28 ms at any batch), while the activation memory a run holds grows with
    the batch; a chunk the size of the caller's own batch, at least 4, takes the gain and keeps the
    peak close to that of one gradient call of that batch. Small samples are dominated by each run's
    own cost (integrated gradients of one 12 x 1,000 signal, 50 steps: a Conv1d-LSTM 542 ms in chunks
    of 4, 333 ms in one chunk of 50; a 1-D CNN 70 and 60 ms: ``tools/bench_signals.py``'s models).
    """
    usual = max(4, min(16, batch))
    if sample_bytes <= 0 or sample_bytes * usual >= SMALL_SAMPLES:
        return usual
    return max(usual, min(MOST_COPIES, SMALL_SAMPLES // sample_bytes))


@dataclass(frozen=True)
class BatchedOptions(Options):
    """Options of a method that runs many copies of its input (noisy samples, integration points,
    masked copies): ``batch_size`` copies per run, or ``max_batch_bytes``: as many as fit that many
    bytes of input (:meth:`copies_per_run`)."""

    batch_size: int | None = None
    max_batch_bytes: int | None = None

    def check(self) -> None:
        super().check()
        whole("batch_size", self.batch_size, 1, optional=True)
        whole("max_batch_bytes", self.max_batch_bytes, 1, optional=True)

    def copies_per_run(self, x: np.ndarray, default: int | None = None) -> int:
        """``batch_size`` when given; else as many copies as fit ``max_batch_bytes`` of input (at least
        one; a run's activation memory grows with its input bytes, so a budget in input bytes bounds
        it whatever the image size); else ``default``, or :func:`chunk_size` of the batch."""
        if self.batch_size is not None:
            return self.batch_size
        if self.max_batch_bytes is not None:
            return max(1, self.max_batch_bytes // max(1, x[:1].astype(np.float32).nbytes))
        return default if default is not None else chunk_size(len(x), x[:1].astype(np.float32).nbytes)

    def runs(self, x: np.ndarray, sizes: RunSizes, graph: str, copies: int = 1) -> PerRun:
        """:meth:`copies_per_run`, explored (:mod:`.run_sizes`) when neither ``batch_size`` nor
        ``max_batch_bytes`` is given: the Explainer's ladder for ``graph`` and one sample of ``x``;
        ``copies``: model copies per item (DeepLIFT-SHAP's pairs: 2)."""
        if self.batch_size is not None or self.max_batch_bytes is not None:
            return max(1, self.copies_per_run(x) // copies)
        sample_bytes = x[:1].astype(np.float32).nbytes
        start = chunk_size(len(x), sample_bytes)
        key = (graph, tuple(x.shape[1:]), str(x.dtype))
        most = cap(start, sample_bytes, MOST_COPIES)
        return sizes.ladder(key, max(1, start // copies), max(1, most // copies))


def accumulate(total: np.ndarray, owners: np.ndarray, values: np.ndarray) -> None:
    """``total[i] += sum of values[owners == i]``, for copies that arrive grouped by sample."""
    for owner in np.unique(owners):
        total[owner] += values[owners == owner].sum(axis=0, dtype=np.float64)
