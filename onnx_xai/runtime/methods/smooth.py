"""SmoothGrad (Smilkov et al. 2017), written once over any method, and its kinds.

``kind="mean"`` averages the base method's raw attribution over noisy copies of the input,
``"square"`` averages its square (SmoothGrad-Squared), ``"var"`` takes its variance (VarGrad,
Adebayo et al. 2018): Captum's ``NoiseTunnel`` ``smoothgrad``, ``smoothgrad_sq`` and ``vargrad``.
Noise is N(0, sigma^2) with sigma = ``noise_level`` times each sample's value range (PAIR's
convention), from a generator seeded by ``noise_seed``, or an explicit ``noise`` array. Copies of all
samples are streamed in chunks of ``batch_size`` (or of as many copies as fit ``max_batch_bytes`` of
input), so memory stays bounded whatever ``n_samples`` is;
every copy is explained for the class resolved on the clean input, by the base method itself on a
context that differs from the method's own only in its input, objective and shared run (as Captum's
``NoiseTunnel`` calls the wrapped method), so that every method smooths: those that run the layer's
head, the relevance graph or read the model's output too. A base method that draws its own samples
(RISE, LIME, GradientSHAP ...) gets the same ``noise_seed``, so that each copy is explained alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ...support.errors import InputError
from .base import (
    REGISTRY,
    BatchedOptions,
    Context,
    Cost,
    Facts,
    Method,
    Options,
    accumulate,
    finite,
    finite_array,
    get,
    register,
    sample_rows,
    whole,
)
from .run_sizes import PerRun, timed

KINDS = ("mean", "square", "var")


@dataclass(frozen=True)
class SmoothGradOptions(BatchedOptions):
    """``noise`` (n_samples, *x.shape[1:]) overrides the seeded noise; ``base_options``: a dict of
    the base method's own options (``{"baselines": ...}`` for ``deeplift_shap``)."""

    n_samples: int = 50
    noise_level: float = 0.15
    noise_seed: int | None = None
    noise: object = None
    base: str = "gradient"
    kind: str = "mean"
    base_options: object = None

    def check(self) -> None:
        super().check()
        if self.base == "smoothgrad":
            raise InputError(
                f"smoothgrad cannot smooth itself; base must be one of "
                f"{', '.join(n for n in REGISTRY if n != 'smoothgrad')}"
            )
        get(self.base)
        if self.kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        whole("n_samples", self.n_samples, 1)
        whole("noise_seed", self.noise_seed, 0, optional=True)
        finite("noise_level", self.noise_level, 0)
        if self.noise_level > np.finfo(np.float32).max:
            raise InputError(f"noise_level {self.noise_level} overflows float32")
        if self.noise is not None:
            finite_array("noise", self.noise)
        if self.base_options is not None and not isinstance(self.base_options, dict):
            raise InputError(
                f"base_options must be a dict of {self.base}'s options, not {self.base_options!r}"
            )
        base_options(get(self.base), self)


@register
class SmoothGrad(Method):
    name = "smoothgrad"
    Options = SmoothGradOptions
    summary = "mean (or mean square, or variance) of a base method over noisy copies (Smilkov et al. 2017)"
    reference = "Captum `NoiseTunnel` (smoothgrad, smoothgrad_sq, vargrad)"
    agreement = "1e-4, Captum (same noise)"

    def family_for(self, opts: SmoothGradOptions) -> str:
        return get(opts.base).family

    def signed_for(self, opts: SmoothGradOptions) -> bool:
        return opts.kind == "mean" and get(opts.base).signed

    def cost(self, opts: SmoothGradOptions, facts: Facts) -> Cost:
        base = get(opts.base)
        base_opts = base_options(base, opts)
        each, _ = base.cost(base_opts, facts.one())
        shared = 1 if base.sets_for(base_opts) else 0  # the base's own run of each copy
        count = _count(opts)
        return facts.batch * count * (shared + each), f"{count} noisy copies of {opts.base}"

    def attribute(self, ctx: Context, opts: SmoothGradOptions) -> np.ndarray:
        base = get(opts.base)
        base_opts = base_options(base, opts)
        total: np.ndarray | None = None
        squares: np.ndarray | None = None
        per_run = per_noisy_run(ctx, opts, base_opts)
        for noisy, owners in timed(noisy_batches(ctx.x, opts, per_run), per_run):
            targets = ctx.targets[owners]
            sets = base.sets_for(base_opts)
            outputs = ctx.run(noisy, targets, sets, owners) if sets else {}
            rows = owners if ctx.rows is None else ctx.rows[owners]
            noisy_ctx = replace(ctx, x=noisy, targets=targets, outputs=outputs, rows=rows, found={})
            raw = base.attribute(noisy_ctx, base_opts).astype(np.float64)
            if total is None or squares is None:
                shape = (len(ctx.x),) + raw.shape[1:]
                total, squares = np.zeros(shape), np.zeros(shape)
            accumulate(total, owners, raw)
            accumulate(squares, owners, raw * raw)
        count = _count(opts)
        if total is None or squares is None:
            raise InputError("smoothgrad ran no samples")
        mean, mean_square = total / count, squares / count
        result = {"mean": mean, "square": mean_square, "var": mean_square - mean * mean}[opts.kind]
        return np.asarray(result, np.float32)


def base_options(base: Method, opts: SmoothGradOptions) -> Options:
    """The base method's options: ``base_options``, and SmoothGrad's ``noise_seed`` if the base
    draws samples and was given none."""
    given: dict = dict(opts.base_options) if isinstance(opts.base_options, dict) else {}
    if "noise_seed" in base.Options.__dataclass_fields__:
        given.setdefault("noise_seed", opts.noise_seed)
    return base.Options.parse(base.name, given)


def per_noisy_run(ctx: Context, opts: SmoothGradOptions, base_opts: Options) -> PerRun:
    """Noisy copies per run: explored (:mod:`.run_sizes`) where the base runs each copy once; a base
    that batches its own copies (integrated gradients, Score-CAM ...) explores its own, so the copies
    it is given keep the usual size."""
    if isinstance(base_opts, BatchedOptions):
        return opts.copies_per_run(ctx.x)
    return opts.runs(ctx.x, ctx.sizes, f"smoothgrad of {opts.base}")


def _count(opts: SmoothGradOptions) -> int:
    return len(np.asarray(opts.noise)) if opts.noise is not None else opts.n_samples


def noisy_batches(
    x: np.ndarray, opts: SmoothGradOptions, per_run: PerRun | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of (noisy copies, index of the sample each copy belongs to), grouped by sample, made
    as they are taken, of ``per_run`` copies (default: :meth:`~.base.BatchedOptions.copies_per_run`);
    the noise is drawn chunk after chunk from one generator, the same whatever the chunks' sizes."""
    if opts.noise is not None:
        noise = np.asarray(opts.noise, np.float32)
        if noise.shape[1:] != x.shape[1:]:
            raise InputError(
                f"noise has shape {noise.shape}, expected (n_samples, {', '.join(map(str, x.shape[1:]))})"
            )
        n_samples = len(noise)
    else:
        n_samples, rng = opts.n_samples, np.random.default_rng(opts.noise_seed)
        flat = x.reshape(len(x), -1).astype(np.float64)
        sigmas = opts.noise_level * (flat.max(axis=1) - flat.min(axis=1))
    per_run = opts.copies_per_run(x) if per_run is None else per_run
    for owners, copies in sample_rows(len(x), n_samples, per_run):
        if opts.noise is not None:
            added = noise[copies]
        else:
            added = rng.standard_normal((len(owners),) + x.shape[1:], dtype=np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                added *= sigmas[owners].reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            noisy = x[owners] + added
        if not np.isfinite(noisy).all():
            raise InputError(f"noise_level {opts.noise_level} makes the noisy copies overflow float32")
        yield noisy, owners
