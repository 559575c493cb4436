"""More CAMs: three read from the activation alone, one from a contrastive objective.

- ``kpca_cam`` (Karmani et al. 2024, pytorch-grad-cam's ``KPCA_CAM``): each sample's centred
  ``[h*w, K]`` activation projected on the first component of a kernel PCA (scikit-learn's
  ``KernelPCA``: the kernel matrix centred, its top eigenvector times the root of its eigenvalue,
  signed so its largest entry is positive); ``kernel`` sigmoid (the default: ``tanh(gamma x.y + 1)``),
  rbf, poly (degree 3) or linear, ``gamma`` 1/K by default. Solved exactly (scikit-learn switches to
  a randomized solver above 200 positions).
- ``activation_map`` (OpenVINO-XAI's ``ActivationMap``): the activation's mean over its channels,
  the same for every class.
- ``fullgrad`` (Srinivas & Fleuret 2019, pytorch-grad-cam's ``FullGrad``): ``|x * d score / dx|``
  per input channel plus, for every convolution and BatchNorm with a bias, ``|bias * d score / d
  output|`` per channel, each map scaled to [0, 1] and upsampled to the input (bilinear), all
  summed; the bias terms come from one sweep of a graph of their own (:mod:`onnx_xai.graph.sweeps`).
- ``fem`` (Fuad et al. 2020, pytorch-grad-cam's ``FEM``): each channel weighs the share of its
  positions above its mean plus ``k`` standard deviations; ``ReLU(sum_k w_k A_k)``.
- ``finer_cam`` (Zhang et al. 2025, pytorch-grad-cam's ``FinerCAM``): Grad-CAM of
  ``sum_j p_j (y_c - alpha y_j) / sum_j p_j`` over the classes ``j`` that rank ``comparisons``
  (1, 2, 3: the three nearest) by their distance to the target's output ``y_c``, ``p`` the softmax
  of the output (differentiated too, as pytorch-grad-cam does). The gradient of that objective
  with respect to the output, taken at the output, is the seed of one seeded run (the chain rule),
  passed through the Softmax, LogSoftmax or Sigmoid the model ends in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from ..maps import upsample
from .base import IMAGES, Context, Cost, Facts, Method, finite, register, whole
from .cams import CamMethod, CamOptions, GradCam

KERNELS = ("sigmoid", "rbf", "poly", "linear")


@dataclass(frozen=True)
class KpcaOptions(CamOptions):
    """``kernel`` and ``gamma`` (None: 1 / channels), as scikit-learn's ``KernelPCA``."""

    kernel: str = "sigmoid"
    gamma: float | None = None

    def check(self) -> None:
        super().check()
        if self.kernel not in KERNELS:
            raise InputError(f"kernel must be one of {', '.join(KERNELS)}, not {self.kernel!r}")
        if self.gamma is not None and (isinstance(self.gamma, bool) or not float(self.gamma) > 0):
            raise InputError(f"gamma must be a number > 0, not {self.gamma!r}")


def kernel_matrix(points: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    """scikit-learn's pairwise kernels (coef0 1, degree 3) between the rows of ``points``."""
    dots = points @ points.T
    if kernel == "sigmoid":
        return np.tanh(gamma * dots + 1.0)
    if kernel == "poly":
        return (gamma * dots + 1.0) ** 3
    if kernel == "rbf":
        squares = np.diag(dots)
        return np.exp(-gamma * np.maximum(squares[:, None] + squares[None] - 2 * dots, 0))
    return dots


def first_kernel_component(a: np.ndarray, kernel: str, gamma: float | None) -> np.ndarray:
    """Each sample's ``[K, h, w]`` as its first kernel principal component over the positions."""
    maps = []
    for sample in a:
        points = sample.reshape(len(sample), -1).T
        points = points - points.mean(axis=0)
        matrix = kernel_matrix(points, kernel, gamma if gamma is not None else 1.0 / points.shape[1])
        rows, total = matrix.mean(axis=0), matrix.mean()
        centred = matrix - rows[None] - rows[:, None] + total
        values, vectors = np.linalg.eigh(centred)
        top = vectors[:, -1] * np.sign(vectors[np.argmax(np.abs(vectors[:, -1])), -1])
        maps.append((top * np.sqrt(max(values[-1], 0.0))).reshape(sample.shape[1:]))
    return np.stack(maps)


@register
class KpcaCam(CamMethod):
    name = "kpca_cam"
    sets = ("activation",)
    Options = KpcaOptions
    summary = "first kernel principal component of A over the positions, gradient-free"
    reference = "pytorch-grad-cam `KPCA_CAM` (exact eigensolver)"
    agreement = "1e-5, kernel PCA in torch"

    def image(self, a, g, ctx, opts: KpcaOptions):
        return first_kernel_component(a, opts.kernel, opts.gamma)


@register
class ActivationMap(CamMethod):
    name = "activation_map"
    sets = ("activation",)
    summary = "the mean of A over its channels, gradient-free and class-blind"
    reference = "OpenVINO-XAI `ActivationMap`"
    agreement = "1e-5, definition"
    relu = False

    def image(self, a, g, ctx, opts):
        return a.mean(axis=1)


@register
class FullGrad(Method):
    name = "fullgrad"
    kinds = IMAGES
    family = "cam"  # its own run: a graph of its own (a sweep to every bias layer)
    summary = "|x * d score/dx| plus every bias layer's |bias * gradient|, each scaled, at the input"
    reference = "pytorch-grad-cam `FullGrad` (Srinivas & Fleuret 2019)"
    agreement = "1e-5, definition"

    def attribute(self, ctx: Context, opts) -> np.ndarray:
        x = ctx.x.astype(np.float64)
        outputs = ctx.run(ctx.x, ctx.targets, ("fullgrad",))
        channel, height, width = (ctx.image_layout().index(a) for a in "CHW")
        term = np.abs(x * outputs[c.FULLGRAD_INPUT])
        term = np.moveaxis(term, channel, 1)
        term = term - term.min(axis=(2, 3), keepdims=True)
        total = (term / (1e-7 + term.max(axis=(2, 3), keepdims=True))).sum(axis=1)
        size = (x.shape[height], x.shape[width])
        for name in c.numbered_outputs("fullgrad", set(outputs)):
            total += upsample(outputs[name].astype(np.float64), *size)
        return total.astype(np.float32)


@dataclass(frozen=True)
class FemOptions(CamOptions):
    """``k``: standard deviations above a channel's mean that count as its strong positions."""

    k: float = 2.0

    def check(self) -> None:
        super().check()
        finite("k", self.k)


@register
class Fem(CamMethod):
    name = "fem"
    sets = ("activation",)
    Options = FemOptions
    summary = "ReLU(sum_k w_k A_k), w_k the share of A_k above its mean + k std, gradient-free"
    reference = "pytorch-grad-cam `FEM` (Fuad et al. 2020)"
    agreement = "1e-5, definition"

    def weights(self, a, g, ctx, opts: FemOptions):
        strong = a > (a.mean(axis=(2, 3)) + opts.k * a.std(axis=(2, 3)))[:, :, None, None]
        return strong.mean(axis=(2, 3))


@dataclass(frozen=True)
class FinerOptions(CamOptions):
    """``alpha``: the comparison's strength; ``comparisons``: the ranks (by distance to the target's
    output, the target itself rank 0) of the classes compared with (those the model has)."""

    alpha: float = 1.0
    comparisons: tuple = (1, 2, 3)

    def check(self) -> None:
        super().check()
        finite("alpha", self.alpha)
        if not self.comparisons:
            raise InputError("comparisons must name at least one rank")
        for rank in self.comparisons:
            whole("each of comparisons", rank, 1)


def finer_seed(output: np.ndarray, targets: np.ndarray, opts: FinerOptions, kind: str) -> np.ndarray:
    """d objective / d logits (module docstring) per sample ``[N, K]``, from the output ``[N, K]``."""
    y = output.astype(np.float64)
    ranks = [r for r in opts.comparisons if r < y.shape[1]]  # a model of few classes has fewer
    if not ranks:
        raise InputError(f"finer_cam compares with other classes; the model has {y.shape[1]}")
    seeds = np.zeros_like(y)
    for i, (row, target) in enumerate(zip(y, targets)):
        order = np.argsort(np.abs(row - row[target]), kind="stable")
        others = order[ranks]
        p = np.exp(row - row.max())
        p /= p.sum()
        w = p[others]
        differences = row[target] - opts.alpha * row[others]
        numerator, denominator = (w * differences).sum(), w.sum() + 1e-9
        d_w = p[others][:, None] * (np.eye(len(row))[others] - p[None, :])  # d p_j / d y_m, j in others
        d_numerator = (differences[:, None] * d_w).sum(0) - opts.alpha * np.bincount(others, w, len(row))
        d_numerator[target] += w.sum()
        d_denominator = d_w.sum(0)
        seeds[i] = (d_numerator * denominator - numerator * d_denominator) / denominator**2
    return _through_output(seeds, y, kind).astype(np.float32)


def _through_output(seeds: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """A seed on the output carried back to the logits the score is read from (the chain rule
    through the model's last Softmax, LogSoftmax or Sigmoid)."""
    if kind == "pre-sigmoid":
        return seeds * y * (1 - y)
    if kind == "pre-softmax" and np.allclose(np.exp(y).sum(axis=1), 1, atol=1e-3):  # LogSoftmax
        return seeds - np.exp(y) * seeds.sum(axis=1, keepdims=True)
    if kind == "pre-softmax":
        return y * (seeds - (y * seeds).sum(axis=1, keepdims=True))
    return seeds


@register
class FinerCam(CamMethod):
    name = "finer_cam"
    Options = FinerOptions
    summary = "Grad-CAM of the target's output against the nearest classes' (Zhang et al. 2025)"
    reference = "pytorch-grad-cam `FinerCAM` (Grad-CAM base)"
    agreement = "1e-5, definition (torch autograd)"

    def cost(self, opts: FinerOptions, facts: Facts) -> Cost:
        return facts.batch, "a run seeded with the contrast"

    def attribute(self, ctx: Context, opts: FinerOptions) -> np.ndarray:
        if ctx.targets.dtype.kind == "f":
            raise InputError("finer_cam compares classes: give a class target, not a seed")
        output = ctx.outputs.get(ctx.output_name)
        if output is None or output.ndim != 2:
            raise InputError("finer_cam needs a classifier's [N, K] output")
        seeds = finer_seed(output, ctx.targets, opts, ctx.score_kind)
        outputs = ctx.run(ctx.x, seeds, ("gradcam",))
        seeded = replace(ctx, targets=seeds, outputs=outputs)
        return GradCam().attribute(seeded, CamOptions(fuse=opts.fuse))
