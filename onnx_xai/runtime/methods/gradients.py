"""The gradient family: attributions shaped like the input.

- ``gradient``: d score / d x (Simonyan et al. 2014), as Captum's ``Saliency(abs=False)``.
- ``input_x_gradient``: x * d score / d x, as Captum's ``InputXGradient`` (signed).
- ``guided_backprop``: the guided input gradient (Springenberg et al. 2015; ReLUs pass only positive
  cotangents), as Captum's ``GuidedBackprop``.
- ``guided_gradcam``: guided backprop times Grad-CAM upsampled to the input (Selvaraju et al. 2017),
  as Captum's ``GuidedGradCam`` but with bilinear upsampling where Captum's default is nearest.
- ``integrated_gradients``: (x - x') times the path integral of the gradient from a baseline x' to x
  (Sundararajan et al. 2017), with Captum's quadratures (Gauss-Legendre by default, or the trapezoid
  rule), the points of every sample batched in chunks (signed).
- ``gradient_shap`` (Lundberg & Lee 2017): the mean, over random baselines, points of the path and
  Gaussian noise on the input, of (noisy x - baseline) times the gradient at the point, as Captum's
  ``GradientShap`` (signed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from ..maps import upsample
from .base import (
    IMAGES,
    BatchedOptions,
    Context,
    Cost,
    Facts,
    Method,
    Options,
    accumulate,
    chunks,
    finite,
    finite_array,
    register,
    sample_rows,
    whole,
)
from .run_sizes import PerRun, timed


@register
class Gradient(Method):
    name = "gradient"
    sets = ("input_grad",)
    summary = "d score / d x (Simonyan et al. 2014)"
    reference = "Captum `Saliency(abs=False)`"
    agreement = "1e-4, Captum"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        return ctx.outputs[c.INPUT_GRAD]


@register
class InputXGradient(Method):
    name = "input_x_gradient"
    signed = True
    sets = ("input_grad",)
    summary = "x * d score / d x"
    reference = "Captum `InputXGradient`"
    agreement = "1e-4, Captum"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        return ctx.x.astype(np.float32) * ctx.outputs[c.INPUT_GRAD]


GAUSS_LEGENDRE_MOST = 4096  # its nodes come from an n x n eigenproblem: 128 MiB at this n


def quadrature(rule: str, n: int, steps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1] and weights of Captum's integration rules (of the ``steps`` given, else of
    all); its trapezoid rule weighs every step 1/n (the ends 1/2n), so its weights add up to
    (n - 1)/n, and so do ours. The trapezoid's are computed for the steps asked only."""
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        points, weights = 0.5 * (nodes + 1), 0.5 * weights
        return (points, weights) if steps is None else (points[steps], weights[steps])
    steps = np.arange(n) if steps is None else steps
    weights = np.where((steps == 0) | (steps == n - 1), 0.5 / n, 1.0 / n)
    return steps / max(n - 1, 1), weights


@dataclass(frozen=True)
class IntegratedGradientsOptions(BatchedOptions):
    """``baseline``: a number or an array broadcastable to the batch (default zeros); ``n_steps``;
    ``integration``: ``"gausslegendre"`` or ``"riemann_trapezoid"``; ``batch_size``: points per run,
    or ``max_batch_bytes``: as many as fit that many bytes of input (:class:`.base.BatchedOptions`)."""

    baseline: object = None
    n_steps: int = 50
    integration: str = "gausslegendre"

    def check(self) -> None:
        super().check()
        if self.integration not in ("gausslegendre", "riemann_trapezoid"):
            raise InputError(
                f"integration must be 'gausslegendre' or 'riemann_trapezoid', not {self.integration!r}"
            )
        whole("n_steps", self.n_steps, 2 if self.integration == "riemann_trapezoid" else 1)
        if self.integration == "gausslegendre" and self.n_steps > GAUSS_LEGENDRE_MOST:
            raise InputError(
                f"n_steps {self.n_steps} with gausslegendre: its points need an n x n eigenproblem; "
                f"at most {GAUSS_LEGENDRE_MOST}, or integration='riemann_trapezoid' for more"
            )
        if self.baseline is not None and not isinstance(self.baseline, str):  # "mean": a signal's
            finite_array("baseline", self.baseline)


@register
class IntegratedGradients(Method):
    name = "integrated_gradients"
    signed = True
    Options = IntegratedGradientsOptions
    summary = "(x - baseline) * mean gradient along the straight path (Sundararajan et al. 2017)"
    reference = "Captum `IntegratedGradients`"
    agreement = "1e-4, Captum"

    def cost(self, opts: IntegratedGradientsOptions, facts: Facts) -> Cost:
        return facts.batch * opts.n_steps, f"n_steps {opts.n_steps}"

    def attribute(self, ctx: Context, opts: IntegratedGradientsOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        baseline = ctx.reference(opts.baseline)
        total = np.zeros(x.shape, np.float64)
        per_run = opts.runs(ctx.x, ctx.sizes, self.name)
        for owners, steps in timed(sample_rows(len(x), opts.n_steps, per_run), per_run):
            alphas, weights = quadrature(opts.integration, opts.n_steps, steps)
            alpha = alphas.reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
            points = baseline[owners] + alpha * (x[owners] - baseline[owners])
            grads = ctx.run(points, ctx.targets[owners], ("input_grad",), owners)[c.INPUT_GRAD]
            accumulate(total, owners, grads * weights.reshape(alpha.shape))
        return ((x - baseline) * total).astype(np.float32)


@dataclass(frozen=True)
class GradientShapOptions(BatchedOptions):
    """``baselines``: ``[B, *sample shape]``, ``[N, B, *sample shape]`` (each sample its own), or one
    sample's shape (default: one of zeros);
    ``n_samples`` per input; ``stdevs``: the Gaussian noise added to the input; ``noise_seed``."""

    baselines: object = None
    n_samples: int = 5
    stdevs: float = 0.0
    noise_seed: int | None = None

    def check(self) -> None:
        super().check()
        whole("n_samples", self.n_samples, 1)
        whole("noise_seed", self.noise_seed, 0, optional=True)
        finite("stdevs", self.stdevs, 0.0)
        if self.baselines is not None:
            finite_array("baselines", self.baselines)


DRAW_BLOCK = 2**18  # rows whose baselines and points are drawn together, in Captum's order


def gradient_shap_draws(
    opts: GradientShapOptions, samples: int, sample: tuple, count: int, per_run: PerRun
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of the ``samples * n_samples`` rows (sample i's rows together), each chunk's owners,
    baseline indexes (among ``count``), points on the path and noise, drawn from NumPy's
    ``RandomState(noise_seed)`` in Captum's order (baseline indexes, then the points, then the noise),
    block by block of :data:`DRAW_BLOCK` rows so that memory stays that of a chunk (a single block,
    as Captum draws, up to 262,144 rows; the noise of each chunk drawn in turn, the same whatever the
    chunks' sizes); Captum's noise comes from torch."""
    rng = np.random.RandomState(opts.noise_seed)
    rows = samples * opts.n_samples
    for block in range(0, rows, DRAW_BLOCK):
        size = min(DRAW_BLOCK, rows - block)
        indexes, alphas = rng.choice(count, size), rng.uniform(0.0, 1.0, size)
        for part in chunks(size, per_run):
            start, stop = part.start, part.stop
            noise = rng.normal(0.0, opts.stdevs, (stop - start, *sample)) if opts.stdevs > 0 else None
            owners = np.arange(block + start, block + stop) // opts.n_samples
            zeros = np.zeros((stop - start, *sample))
            yield owners, indexes[start:stop], alphas[start:stop], zeros if noise is None else noise


@register
class GradientShap(Method):
    name = "gradient_shap"
    signed = True
    Options = GradientShapOptions
    summary = (
        "mean over random baselines, noise and points of the path of (x - baseline) * the gradient there"
    )
    reference = "Captum `GradientShap` (same draws with `np.random.seed`, `stdevs=0`)"
    agreement = "1e-4, Captum (same draws)"

    def cost(self, opts: GradientShapOptions, facts: Facts) -> Cost:
        return facts.batch * opts.n_samples, f"n_samples {opts.n_samples}"

    def attribute(self, ctx: Context, opts: GradientShapOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        baselines = (
            np.zeros((1, *x.shape[1:]), np.float32)
            if opts.baselines is None
            else ctx.references(opts.baselines)
        )
        if baselines.shape == x.shape[1:]:
            baselines = baselines[None]
        each = baselines.ndim == x.ndim + 1  # [N, B, ...]: every sample its own baselines
        if baselines.shape[1 + each :] != x.shape[1:] or (each and len(baselines) != len(x)):
            one = ", ".join(map(str, x.shape[1:]))
            raise InputError(
                f"baselines have shape {list(baselines.shape)}; want [B, {one}] or [{len(x)}, B, {one}]"
            )
        total = np.zeros(x.shape, np.float64)
        count = baselines.shape[1] if each else len(baselines)
        per_run = opts.runs(ctx.x, ctx.sizes, self.name)
        draws = gradient_shap_draws(opts, len(x), x.shape[1:], count, per_run)
        for owners, indexes, alphas, noise in timed(draws, per_run):
            noisy = x[owners] + noise.astype(np.float32)
            start = baselines[owners, indexes] if each else baselines[indexes]
            alpha = alphas.reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
            point = start + alpha * (noisy - start)
            grads = ctx.run(point, ctx.targets[owners], ("input_grad",), owners)[c.INPUT_GRAD]
            accumulate(total, owners, grads * (noisy - start))
        return (total / opts.n_samples).astype(np.float32)


@register
class GuidedBackprop(Method):
    name = "guided_backprop"
    sets = ("guided",)
    summary = "d score / d x with ReLUs passing only positive gradients (Springenberg et al. 2015)"
    reference = "Captum `GuidedBackprop`"
    agreement = "1e-4, Captum"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        return ctx.outputs[c.GUIDED_INPUT_GRAD]


@register
class Deconvolution(Method):
    name = "deconvolution"
    sets = ("deconv",)
    summary = (
        "d score / d x with ReLUs passing positive gradients whatever their input (Zeiler & Fergus 2014)"
    )
    reference = "Captum `Deconvolution`"
    agreement = "1e-4, Captum"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        return ctx.outputs[c.DECONV_INPUT_GRAD]


def spread(maps: np.ndarray, layout: str, like: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` maps upsampled to ``like``'s spatial size and repeated along its channels."""
    height, width = like.shape[layout.index("H")], like.shape[layout.index("W")]
    full = upsample(maps, height, width)
    return np.expand_dims(full, layout.index("C"))


@register
class GuidedGradCam(Method):
    name = "guided_gradcam"
    kinds = IMAGES
    sets = ("guided", "gradcam")
    summary = "guided backprop * Grad-CAM upsampled to the input (bilinear; Captum's is nearest)"
    reference = "Captum `GuidedGradCam`"
    agreement = "1e-4, Captum (bilinear)"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        from .cams import GradCam

        gradcam = GradCam().attribute(ctx, opts)
        return ctx.outputs[c.GUIDED_INPUT_GRAD] * spread(gradcam, ctx.image_layout(), ctx.x)
