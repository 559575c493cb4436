"""SmoothGrad (Smilkov et al. 2017), written once over any method, and its kinds.

``kind="mean"`` averages the base method's raw attribution over noisy copies of the input,
``"square"`` averages its square (SmoothGrad-Squared), ``"var"`` takes its variance (VarGrad,
Adebayo et al. 2018): Captum's ``NoiseTunnel`` ``smoothgrad``, ``smoothgrad_sq`` and ``vargrad``.
Noise is N(0, sigma^2) with sigma = ``noise_level`` times each sample's value range (PAIR's
convention), from a generator seeded by ``noise_seed``, or an explicit ``noise`` array. Copies of all
samples are streamed in chunks of ``batch_size`` (or of as many copies as fit ``max_batch_bytes`` of
input), so memory stays bounded whatever ``n_samples`` is;
every copy is explained for the class resolved on the clean input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .base import (
    REGISTRY,
    BatchedOptions,
    Context,
    Method,
    accumulate,
    chunks,
    finite,
    finite_array,
    get,
    register,
    whole,
)

KINDS = ("mean", "square", "var")


@dataclass(frozen=True)
class SmoothGradOptions(BatchedOptions):
    """``noise`` (n_samples, *x.shape[1:]) overrides the seeded noise."""

    n_samples: int = 50
    noise_level: float = 0.15
    noise_seed: int | None = None
    noise: object = None
    base: str = "gradient"
    kind: str = "mean"

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

    def attribute(self, ctx: Context, opts: SmoothGradOptions) -> np.ndarray:
        base = get(opts.base)
        base_opts = base.Options.parse(base.name, {})
        total: np.ndarray | None = None
        squares: np.ndarray | None = None
        for noisy, owners in noisy_batches(ctx.x, opts):
            targets = ctx.targets[owners]
            outputs = ctx.run(noisy, targets, base.sets_for(base_opts)) if base.sets_for(base_opts) else {}
            raw = base.attribute(Context(noisy, targets, outputs, ctx.call, ctx.layout), base_opts).astype(
                np.float64
            )
            if total is None or squares is None:
                shape = (len(ctx.x),) + raw.shape[1:]
                total, squares = np.zeros(shape), np.zeros(shape)
            accumulate(total, owners, raw)
            accumulate(squares, owners, raw * raw)
        count = len(np.asarray(opts.noise)) if opts.noise is not None else opts.n_samples
        if total is None or squares is None:
            raise InputError("smoothgrad ran no samples")
        mean, mean_square = total / count, squares / count
        result = {"mean": mean, "square": mean_square, "var": mean_square - mean * mean}[opts.kind]
        return np.asarray(result, np.float32)


def noisy_batches(x: np.ndarray, opts: SmoothGradOptions) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of (noisy copies, index of the sample each copy belongs to), grouped by sample."""
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
    pairs = [(i, j) for i in range(len(x)) for j in range(n_samples)]
    for part in chunks(len(pairs), opts.copies_per_run(x)):
        owners = np.array([i for i, _ in pairs[part]])
        if opts.noise is not None:
            added = noise[[j for _, j in pairs[part]]]
        else:
            added = rng.standard_normal((len(owners),) + x.shape[1:], dtype=np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                added *= sigmas[owners].reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            noisy = x[owners] + added
        if not np.isfinite(noisy).all():
            raise InputError(f"noise_level {opts.noise_level} makes the noisy copies overflow float32")
        yield noisy, owners
