"""Surrogate models on superpixels: LIME and KernelSHAP, as Captum's ``Lime`` and ``KernelShap``.

Each sample's features are its superpixels (:func:`onnx_xai.runtime.superpixels.slic` on the input,
or a ``feature_mask`` given: an ``[H, W]`` array of feature indexes). ``n_samples`` on/off vectors
``z`` over the features make as many copies of the input, the features switched off replaced by
``baseline``; the model scores each copy, and a linear model fitted to (z, score) by weighted least
squares gives each feature its coefficient, which every pixel of the feature receives.

- ``lime`` (Ribeiro et al. 2016): features on with probability 1/2; each copy weighted by
  ``exp(-d² / (2 kernel_width²))``, ``d`` the cosine distance between the copy and the input
  (Captum's default similarity); a ridge penalty ``alpha`` on the coefficients (Captum fits a Lasso
  by default: its ``interpretable_model`` is a choice, a closed form keeps ours exact).
- ``kernel_shap`` (Lundberg & Lee 2017): first every feature on, then none, then copies whose count
  of features on, ``k``, is drawn with probability proportional to ``(M - 1) / (k (M - k))`` and the
  ``k`` features uniformly (the Shapley kernel as a sampling distribution, Captum's scheme); all on
  and all off weigh 10⁶, the rest 1; no penalty. The coefficients approximate Shapley values.

``noise_seed`` repeats the samples; :func:`lime_samples` and :func:`kernel_shap_samples` make them.
They are drawn and scored chunk by chunk, and the fit is kept as the QR factor of the weighted
design (``(M + 1)²`` numbers), so memory is that of a chunk whatever ``n_samples`` is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...support.errors import InputError
from ..features import Superpixels
from ..superpixels import slic
from .base import (
    IMAGES,
    BatchedOptions,
    Context,
    Cost,
    Facts,
    Method,
    chunks,
    finite,
    number_or_ids,
    register,
    whole,
)
from .coalitions import coalition_count, kernel_shap, table_kernel_shap
from .perturbation import score_copies
from .time_windows import channel_axis, is_signal, time_segments
from .tokens import lime_tokens, tokens_of

ENDPOINT_WEIGHT = 1e6  # KernelSHAP's weight of the all-on and all-off copies (Captum's)


@dataclass(frozen=True)
class SurrogateOptions(BatchedOptions):
    """``n_samples`` copies; ``segments`` superpixels of ``compactness`` (or ``feature_mask``, an
    ``[H, W]`` array of feature indexes 0..M-1, for every sample); ``baseline``: the value of a feature
    switched off (input units: 0 is the normalization's mean); ``noise_seed`` repeats the samples;
    ``background``: for a table, the rows its left-out columns come from (:mod:`.coalitions`)."""

    n_samples: int = 1000
    segments: int = 50
    compactness: float = 3.0
    feature_mask: Any = None
    baseline: Any = 0.0  # on tokens: the id a removed token takes (an int, or ids like the input)
    noise_seed: int | None = None
    background: Any = None  # a table's rows its columns are drawn from when left out

    def check(self) -> None:
        super().check()
        whole("n_samples", self.n_samples, 2)
        whole("segments", self.segments, 1)
        finite("compactness", self.compactness, 0.0)
        number_or_ids("baseline", self.baseline)
        whole("noise_seed", self.noise_seed, 0, optional=True)
        if self.feature_mask is not None:
            mask = np.asarray(self.feature_mask)
            if mask.ndim != 2 or mask.dtype.kind not in "iu" or mask.size == 0 or mask.min() < 0:
                raise InputError("feature_mask must be an [H, W] array of feature indexes >= 0")


@dataclass(frozen=True)
class LimeOptions(SurrogateOptions):
    """Also ``kernel_width`` (of the similarity on cosine distance) and ``alpha`` (ridge penalty)."""

    kernel_width: float = 1.0
    alpha: float = 1.0

    def check(self) -> None:
        super().check()
        finite("kernel_width", self.kernel_width, 1e-12)
        finite("alpha", self.alpha, 0.0)


def lime_sample_chunks(
    count: int, features: int, noise_seed: int | None, per_chunk: int
) -> Iterator[np.ndarray]:
    """LIME's on/off vectors in chunks ``[k, features]``: each feature on with probability 1/2."""
    rng = np.random.default_rng(noise_seed)
    for part in chunks(count, per_chunk):
        yield (rng.random((part.stop - part.start, features)) < 0.5).astype(np.float64)


def kernel_shap_sample_chunks(
    count: int, features: int, noise_seed: int | None, per_chunk: int
) -> Iterator[np.ndarray]:
    """KernelSHAP's on/off vectors in chunks ``[k, features]`` (module docstring)."""
    rng = np.random.default_rng(noise_seed)
    sizes = np.arange(1, features)
    chances = (features - 1) / (sizes * (features - sizes)) if features > 1 else sizes
    for part in chunks(count, per_chunk):
        samples = np.zeros((part.stop - part.start, features))
        for k, row in enumerate(range(part.start, part.stop)):
            if row == 0:
                samples[k] = 1
            elif row > 1 and features > 1:
                chosen = rng.choice(sizes, p=chances / chances.sum())
                samples[k, rng.permutation(features)[:chosen]] = 1
        yield samples


def lime_samples(count: int, features: int, noise_seed: int | None) -> np.ndarray:
    """All of LIME's on/off vectors ``[count, features]`` at once."""
    return np.concatenate(list(lime_sample_chunks(count, features, noise_seed, 256)))


def kernel_shap_samples(count: int, features: int, noise_seed: int | None) -> np.ndarray:
    """All of KernelSHAP's on/off vectors ``[count, features]`` at once."""
    return np.concatenate(list(kernel_shap_sample_chunks(count, features, noise_seed, 256)))


class WeightedFit:
    """The coefficients of ``y ≈ b + z · β`` minimizing ``Σ w (y - b - z·β)² + alpha |β|²`` (the
    intercept not penalized), from rows added chunk by chunk: the QR factor ``R`` of the weighted
    design ``[1, z]`` (the penalty as rows ``[0, sqrt(alpha) I]``) and ``Qᵀ y`` are kept; the intercept
    is eliminated by its row of ``R``, and the rest solved in the least-squares sense (the smallest
    ``β`` when the samples do not determine it)."""

    def __init__(self, features: int, alpha: float):
        penalty = np.sqrt(alpha) * np.eye(features + 1)[1:] if alpha > 0 else np.zeros((0, features + 1))
        self.r, self.qty = penalty, np.zeros(len(penalty))

    def add(self, z: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        root = np.sqrt(weights)
        rows = root[:, None] * np.hstack([np.ones((len(z), 1)), z])
        q, self.r = np.linalg.qr(np.vstack([self.r, rows]))
        self.qty = q.T @ np.concatenate([self.qty, root * y])

    def coefficients(self) -> np.ndarray:
        """``β``."""
        return np.linalg.lstsq(self.r[1:, 1:], self.qty[1:], rcond=None)[0]


class _Surrogate(Method):
    signed = True
    forward_only = True
    sets = ("activation",)

    def sample_chunks(self, count: int, features: int, noise_seed: int | None, per_chunk: int):
        raise NotImplementedError

    def cost(self, opts: SurrogateOptions, facts: Facts) -> Cost:
        if facts.layout is None and opts.background is not None:
            given = opts.background
            blocks = (
                [np.asarray(v) for v in given.values()] if isinstance(given, dict) else [np.asarray(given)]
            )
            rows = len(blocks[0])
            features = sum(b.shape[1] if b.ndim == 2 else 1 for b in blocks)
            count = coalition_count(features, opts.n_samples)
            return facts.batch * (count + 1) * rows, f"{count} coalitions x {rows} background rows"
        return facts.batch * opts.n_samples, f"n_samples {opts.n_samples}"

    def weights(self, sample: np.ndarray, copies: np.ndarray, z: np.ndarray, opts) -> np.ndarray:
        raise NotImplementedError

    def penalty(self, opts) -> float:
        return 0.0

    def attribute(self, ctx: Context, opts: SurrogateOptions) -> np.ndarray:
        if ctx.ids is not None:
            return self.on_tokens(ctx, opts)
        if ctx.layout is None:
            return self.on_table(ctx, opts)
        if isinstance(opts.baseline, str):
            raise InputError(f"{self.name}'s baseline is a number (the value a removed feature takes)")
        x = ctx.x.astype(np.float32)
        raw = np.zeros(x.shape, np.float32)
        signal = is_signal(ctx.layout)
        channel = channel_axis(ctx.layout) if signal else ctx.layout.index("C") - 1
        for i in range(len(x)):
            pixels = (x[i] if channel is None else np.moveaxis(x[i], channel, -1)).astype(np.float64)
            pixels = pixels[..., None] if channel is None else pixels  # [T, C] or [H, W, C]
            mask = (
                time_segments(len(pixels), opts.segments, opts.feature_mask)
                if signal
                else _features(pixels, opts)
            )
            features = Superpixels(x[i], mask, channel, opts.baseline)
            fit = WeightedFit(features.count, self.penalty(opts))
            for z in self.sample_chunks(
                opts.n_samples, features.count, opts.noise_seed, opts.copies_per_run(x)
            ):
                found = score_copies(ctx, i, features.copies(z)[0])
                fit.add(z, found, self.weights(pixels, features.mask, z, opts))
            raw[i] = features.spread(fit.coefficients())
        return raw

    def on_table(self, ctx: Context, opts: SurrogateOptions) -> np.ndarray:
        if ctx.x.ndim != 2:
            raise InputError(
                f"{self.name} needs an image or a table's rows [N, columns], not {list(ctx.x.shape)}"
            )
        raise InputError(f"{self.name} on a table: use kernel_shap (its Shapley values over the columns)")

    def on_tokens(self, ctx: Context, opts: SurrogateOptions) -> np.ndarray:
        raise NotImplementedError


def _features(pixels: np.ndarray, opts: SurrogateOptions) -> np.ndarray:
    """The sample's feature index per pixel ``[H, W]``: the mask given, or its superpixels."""
    if opts.feature_mask is None:
        return slic(pixels, opts.segments, opts.compactness)
    mask = np.asarray(opts.feature_mask, np.int64)
    if mask.shape != pixels.shape[:2]:
        raise InputError(f"feature_mask is {list(mask.shape)}; the input is {list(pixels.shape[:2])}")
    return mask


@register
class Lime(_Surrogate):
    name = "lime"
    kinds = (*IMAGES, "tokens", "signal")
    Options = LimeOptions
    summary = "a weighted linear model of the score on which superpixels are kept, fitted to random copies"
    reference = "Captum `Lime` (cosine-distance kernel), ridge fit; superpixels by SLIC"
    agreement = "1e-4, Captum (same samples)"

    def sample_chunks(self, count: int, features: int, noise_seed: int | None, per_chunk: int):
        return lime_sample_chunks(count, features, noise_seed, per_chunk)

    def weights(self, pixels: np.ndarray, mask: np.ndarray, z: np.ndarray, opts: LimeOptions) -> np.ndarray:
        """Each copy's similarity to the input, from per-feature sums (no copy made: a copy's dot
        product with the input and its squared norm are linear in ``z``)."""
        features, b = z.shape[1], opts.baseline
        squares = np.bincount(mask.ravel(), (pixels**2).sum(-1).ravel(), features)
        sums = np.bincount(mask.ravel(), pixels.sum(-1).ravel(), features)
        counts = np.bincount(mask.ravel(), minlength=features) * pixels.shape[-1]
        dot = z @ squares + b * (sums.sum() - z @ sums)
        norms = np.sqrt(np.maximum(z @ squares + b * b * (counts.sum() - z @ counts), 0))
        cosine = dot / np.maximum(norms * np.sqrt(squares.sum()), 1e-8)
        return np.exp(-((1 - cosine) ** 2) / (2 * opts.kernel_width**2))

    def penalty(self, opts: LimeOptions) -> float:
        return opts.alpha

    def on_tokens(self, ctx: Context, opts: LimeOptions) -> np.ndarray:
        return lime_tokens(ctx, opts, self.sample_chunks, lambda count: WeightedFit(count, opts.alpha))


@register
class KernelShap(_Surrogate):
    name = "kernel_shap"
    kinds = ("image", "table", "tokens", "signal")
    Options = SurrogateOptions
    summary = (
        "Shapley values of superpixels (or a table's columns against background rows), by a linear "
        "fit on copies drawn from the Shapley kernel (on a table, every coalition where they fit)"
    )
    reference = (
        "Captum `KernelShap` (same sampling and weights), superpixels by SLIC; tables: the Shapley "
        "values by enumeration"
    )
    agreement = "1e-4, Captum (same samples); 1e-5, enumeration"

    def sample_chunks(self, count: int, features: int, noise_seed: int | None, per_chunk: int):
        return kernel_shap_sample_chunks(count, features, noise_seed, per_chunk)

    def weights(self, pixels, mask, z, opts) -> np.ndarray:
        ends = (z.sum(axis=1) == 0) | (z.sum(axis=1) == z.shape[1])
        return np.where(ends, ENDPOINT_WEIGHT, 1.0)

    def on_table(self, ctx: Context, opts: SurrogateOptions) -> np.ndarray:
        if ctx.x.ndim != 2:
            raise InputError(
                f"kernel_shap needs an image or a table's rows [N, columns], not {list(ctx.x.shape)}"
            )
        raw, base = table_kernel_shap(ctx, opts)
        ctx.found["base"] = base
        return raw

    def on_tokens(self, ctx: Context, opts: SurrogateOptions) -> np.ndarray:
        raw, base = kernel_shap(ctx, opts, tokens_of(ctx, opts, "kernel_shap"))
        ctx.found["base"] = base
        return raw
