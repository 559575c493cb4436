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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import contract as c
from ...errors import InputError
from ..maps import upsample
from .base import BatchedOptions, Context, Method, Options, accumulate, chunks, finite_array, register, whole


@register
class Gradient(Method):
    name = "gradient"
    sets = ("input_grad",)
    summary = "d score / d x (Simonyan et al. 2014)"
    reference = "Captum `Saliency(abs=False)`"

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        return ctx.outputs[c.INPUT_GRAD]


@register
class InputXGradient(Method):
    name = "input_x_gradient"
    signed = True
    sets = ("input_grad",)
    summary = "x * d score / d x"
    reference = "Captum `InputXGradient`"

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

    def attribute(self, ctx: Context, opts: IntegratedGradientsOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        baseline = np.zeros_like(x) if opts.baseline is None else _broadcast(opts.baseline, x)
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


@register
class GuidedBackprop(Method):
    name = "guided_backprop"
    sets = ("guided",)
    summary = "d score / d x with ReLUs passing only positive gradients (Springenberg et al. 2015)"
    reference = "Captum `GuidedBackprop`"

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

    def attribute(self, ctx: Context, opts: Options) -> np.ndarray:
        from .cams import GradCam

        gradcam = GradCam().attribute(ctx, opts)
        return ctx.outputs[c.GUIDED_INPUT_GRAD] * spread(gradcam, ctx.layout, ctx.x)


def _broadcast(baseline, x: np.ndarray) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(baseline, np.float32), x.shape).copy()
    except ValueError:
        raise InputError(
            f"baseline has shape {np.shape(baseline)}, which does not broadcast to the batch's {x.shape}"
        ) from None
