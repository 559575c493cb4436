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

from dataclasses import dataclass

import numpy as np

from ... import contract as c
from ...errors import InputError
from ..maps import upsample
from .base import (
    BatchedOptions,
    Context,
    Method,
    Options,
    accumulate,
    chunks,
    finite,
    finite_array,
    register,
    whole,
)


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


def quadrature(rule: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1] and weights of Captum's integration rules; its trapezoid rule weighs every
    step 1/n (the ends 1/2n), so its weights add up to (n - 1)/n, and so do ours."""
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1), 0.5 * weights
    weights = np.full(n, 1.0 / n)
    weights[[0, -1]] /= 2
    return np.linspace(0.0, 1.0, n), weights


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
        if self.baseline is not None:
            finite_array("baseline", self.baseline)


@register
class IntegratedGradients(Method):
    name = "integrated_gradients"
    signed = True
    Options = IntegratedGradientsOptions
    summary = "(x - baseline) * mean gradient along the straight path (Sundararajan et al. 2017)"
    reference = "Captum `IntegratedGradients`"
    agreement = "1e-4, Captum"

    def attribute(self, ctx: Context, opts: IntegratedGradientsOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        baseline = np.zeros_like(x) if opts.baseline is None else broadcast(opts.baseline, x)
        alphas, weights = quadrature(opts.integration, opts.n_steps)
        pairs = [(i, j) for i in range(len(x)) for j in range(len(alphas))]
        total = np.zeros(x.shape, np.float64)
        for part in chunks(len(pairs), opts.copies_per_run(x)):
            owners = np.array([i for i, _ in pairs[part]])
            steps = np.array([j for _, j in pairs[part]])
            alpha = alphas[steps].reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
            points = baseline[owners] + alpha * (x[owners] - baseline[owners])
            grads = ctx.run(points, ctx.targets[owners], ("input_grad",))[c.INPUT_GRAD]
            accumulate(total, owners, grads * weights[steps].reshape(alpha.shape))
        return ((x - baseline) * total).astype(np.float32)


@dataclass(frozen=True)
class GradientShapOptions(BatchedOptions):
    """``baselines``: ``[B, *sample shape]`` (or one sample's shape; default: one of zeros);
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


def gradient_shap_draws(opts: GradientShapOptions, x: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """For ``count`` baselines and ``len(x) * n_samples`` rows (sample i's rows together): each row's
    baseline index, its point on the path and its noise, drawn from NumPy's ``RandomState(noise_seed)``
    in Captum's order (baseline indexes, then the points; Captum's noise comes from torch)."""
    rng = np.random.RandomState(opts.noise_seed)
    rows = len(x) * opts.n_samples
    indexes = rng.choice(count, rows)
    alphas = rng.uniform(0.0, 1.0, rows)
    noise = (
        rng.normal(0.0, opts.stdevs, (rows, *x.shape[1:]))
        if opts.stdevs > 0
        else np.zeros((rows, *x.shape[1:]))
    )
    return indexes, alphas, noise


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

    def attribute(self, ctx: Context, opts: GradientShapOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        baselines = (
            np.zeros((1, *x.shape[1:]), np.float32)
            if opts.baselines is None
            else np.asarray(opts.baselines, np.float32)
        )
        if baselines.shape == x.shape[1:]:
            baselines = baselines[None]
        if baselines.shape[1:] != x.shape[1:]:
            raise InputError(
                f"baselines have shape {list(baselines.shape)}; want [B, {', '.join(map(str, x.shape[1:]))}]"
            )
        indexes, alphas, noise = gradient_shap_draws(opts, x, len(baselines))
        owners = np.repeat(np.arange(len(x)), opts.n_samples)
        total = np.zeros(x.shape, np.float64)
        for part in chunks(len(owners), opts.copies_per_run(x)):
            noisy = x[owners[part]] + noise[part].astype(np.float32)
            start = baselines[indexes[part]]
            alpha = alphas[part].reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
            grads = ctx.run(start + alpha * (noisy - start), ctx.targets[owners[part]], ("input_grad",))[
                c.INPUT_GRAD
            ]
            accumulate(total, owners[part], grads * (noisy - start))
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
    sets = ("guided", "gradcam")
    summary = "guided backprop * Grad-CAM upsampled to the input (bilinear; Captum's is nearest)"
    reference = "Captum `GuidedGradCam`"
    agreement = "1e-4, Captum (bilinear)"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        from .cams import GradCam

        gradcam = GradCam().attribute(ctx, opts)
        return ctx.outputs[c.GUIDED_INPUT_GRAD] * spread(gradcam, ctx.layout, ctx.x)


def broadcast(baseline, x: np.ndarray) -> np.ndarray:
    """A baseline (a number or an array) broadcast to the batch ``x``, as float32."""
    try:
        return np.broadcast_to(np.asarray(baseline, np.float32), x.shape).copy()
    except ValueError:
        raise InputError(
            f"baseline has shape {np.shape(baseline)}, which does not broadcast to the batch's {x.shape}"
        ) from None
