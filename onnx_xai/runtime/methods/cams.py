"""The CAM family: maps on the target layer's grid, ``ReLU(sum_k w_k A_k)`` or a variant of it.

One base computes ``ReLU(image)`` with ``image = sum_k weights_k A_k`` from the target activation A
(``[N, K, h, w]``, channels-first) and its gradient G; each method overrides its weights or its
image, as in pytorch-grad-cam, whose definitions these follow:

- ``cam`` (Zhou et al. 2016): the head's class weights, read in-graph (no ReLU, as Zhou et al.);
- ``gradcam`` (Selvaraju et al. 2017): weights = spatial mean of G;
- ``gradcam_pp`` (Chattopadhay et al. 2018): weights = sum_ij ReLU(G) a_ij,
  a = G^2 / (2 G^2 + sum_ij A * G^3 + 1e-6), a = 0 where G = 0;
- ``xgradcam`` (Fu et al. 2020): weights = sum_ij G A / (sum_ij A + 1e-7);
- ``hirescam`` (Draelos & Carin 2020): image = sum_k G_k A_k, no spatial averaging;
- ``layercam`` (Jiang et al. 2021): image = sum_k ReLU(G_k) A_k;
- ``eigencam`` (Muhammad & Yeasin 2020): image = A's centred channels projected on their first
  right-singular vector (numpy's SVD, whose sign pytorch-grad-cam keeps too); needs no gradient;
- ``scorecam`` (Wang et al. 2020): weights = softmax over k of the target score of the input masked
  by each activation map, upsampled (bilinear, corners aligned) and min-max normalized; one run per
  channel, batched.

With several target layers (a multi-scale neck), each method's map is computed on every layer and
the maps fused as pytorch-grad-cam fuses them: each one ReLU'd, scaled to [0, 1] on its own grid and
upsampled to the input, then their mean (``fuse="mean"``, pytorch-grad-cam's) or their maximum
(``fuse="max"``); the fused map is the raw attribution, at the input's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from ..maps import interpolation_matrix, upsample
from .base import (
    IMAGES,
    BatchedOptions,
    Context,
    Cost,
    Facts,
    Method,
    MethodOptions,
    Options,
    chunks,
    register,
)

FUSIONS = ("mean", "max")


@dataclass(frozen=True)
class CamOptions(Options):
    """``fuse``: how the maps of several target layers combine, ``"mean"`` (pytorch-grad-cam's) or
    ``"max"``; one target layer ignores it."""

    fuse: str = "mean"

    def check(self) -> None:
        super().check()
        if self.fuse not in FUSIONS:
            raise InputError(f"fuse must be one of {', '.join(FUSIONS)}, not {self.fuse!r}")


class CamMethod(Method):
    """``ReLU(image(A, G))``, ``image = sum_k weights_k A_k``; subclasses override one of the two."""

    family = "cam"
    kinds: ClassVar[tuple[str, ...]] = (
        *IMAGES,
        "signal",
    )  # a signal's layer read with a unit height, [N, K, 1, T']
    sets = ("gradcam",)
    Options: ClassVar[type[MethodOptions]] = CamOptions
    relu = True

    def attribute(self, ctx: Context, opts: MethodOptions) -> np.ndarray:
        layers = _layer_count(ctx.outputs)
        if layers == 1:
            return self.on_layer(ctx, opts, 0)
        height, width = (ctx.x.shape[ctx.image_layout().index(axis)] for axis in "HW")
        maps = np.stack(
            [
                upsample(_scaled(np.maximum(self.on_layer(ctx, opts, k), 0)), height, width)
                for k in range(layers)
            ]
        )
        fused = maps.mean(axis=0) if getattr(opts, "fuse", "mean") == "mean" else maps.max(axis=0)
        return fused.astype(np.float32)

    def on_layer(self, ctx: Context, opts: MethodOptions, layer: int) -> np.ndarray:
        """The method's map on one target layer's grid."""
        activation = ctx.outputs[c.layer_output(c.ACTIVATION, layer)].astype(np.float64)
        gradient = ctx.outputs.get(c.layer_output(c.ACTIVATION_GRAD, layer))
        image = self.image(activation, None if gradient is None else gradient.astype(np.float64), ctx, opts)
        return (np.maximum(image, 0) if self.relu else image).astype(np.float32)

    def image(self, a: np.ndarray, g: np.ndarray | None, ctx: Context, opts: MethodOptions) -> np.ndarray:
        return np.einsum("nk,nkhw->nhw", self.weights(a, g, ctx, opts), a)

    def weights(self, a: np.ndarray, g: np.ndarray | None, ctx: Context, opts: MethodOptions) -> np.ndarray:
        raise NotImplementedError


@register
class Cam(CamMethod):
    name = "cam"
    sets = ("cam",)
    Options = Options  # one layer: the one the head pools
    relu = False
    summary = "sum_k w_k^c A_k with the GAP -> linear head's weights (Zhou et al. 2016)"
    reference = "the head's weights"
    agreement = "1e-5, the head's weights"

    def image(self, a, g, ctx, opts):
        return ctx.outputs[c.CAM]


@register
class GradCam(CamMethod):
    name = "gradcam"
    summary = "ReLU(sum_k mean_ij(G_k) A_k) (Selvaraju et al. 2017)"
    reference = "pytorch-grad-cam `GradCAM`"
    agreement = "1e-5, definition"

    def weights(self, a, g, ctx, opts):
        return g.mean(axis=(2, 3))


@register
class GradCamPlusPlus(CamMethod):
    name = "gradcam_pp"
    summary = "Grad-CAM++ weights from G alone (Chattopadhay et al. 2018)"
    reference = "pytorch-grad-cam `GradCAMPlusPlus`"
    agreement = "1e-5, definition"

    def weights(self, a, g, ctx, opts):
        g2 = g * g
        alpha = g2 / (2 * g2 + a.sum(axis=(2, 3), keepdims=True) * g2 * g + 1e-6)
        return (np.maximum(g, 0) * np.where(g != 0, alpha, 0)).sum(axis=(2, 3))


@register
class XGradCam(CamMethod):
    name = "xgradcam"
    summary = "weights sum_ij G A / sum_ij A (Fu et al. 2020)"
    reference = "pytorch-grad-cam `XGradCAM`"
    agreement = "1e-5, definition"

    def weights(self, a, g, ctx, opts):
        return (g * a / (a.sum(axis=(2, 3), keepdims=True) + 1e-7)).sum(axis=(2, 3))


@register
class HiResCam(CamMethod):
    name = "hirescam"
    summary = "ReLU(sum_k G_k A_k), no spatial averaging (Draelos & Carin 2020)"
    reference = "pytorch-grad-cam `HiResCAM`"
    agreement = "1e-5, definition"

    def image(self, a, g, ctx, opts):
        return (g * a).sum(axis=1)


@register
class LayerCam(CamMethod):
    name = "layercam"
    summary = "ReLU(sum_k ReLU(G_k) A_k) (Jiang et al. 2021)"
    reference = "pytorch-grad-cam `LayerCAM`"
    agreement = "1e-5, definition"

    def image(self, a, g, ctx, opts):
        return (np.maximum(g, 0) * a).sum(axis=1)


@register
class EigenCam(CamMethod):
    name = "eigencam"
    sets = ("activation",)
    summary = "first principal component of A, gradient-free (Muhammad & Yeasin 2020)"
    reference = "pytorch-grad-cam `EigenCAM`"
    agreement = "1e-5, definition"

    def image(self, a, g, ctx, opts):
        return _first_component(a)


def _first_component(a: np.ndarray) -> np.ndarray:
    """Each sample's ``[K, h, w]`` projected on its first right singular vector (over the K channels,
    centred), the sign fixed so that its largest channel weight is positive (scikit-learn's
    ``svd_flip``): an SVD's signs are arbitrary, and LAPACK flipped them under float32 noise
    (onnxruntime's and OpenVINO's activations of one MobileNet, 6e-7 apart, gave opposite maps)."""
    maps = []
    for sample in a:
        flat = sample.reshape(len(sample), -1).T
        flat = flat - flat.mean(axis=0)
        first = np.linalg.svd(flat, full_matrices=False)[2][0]
        first = first * np.sign(first[np.argmax(np.abs(first))])
        maps.append((flat @ first).reshape(sample.shape[1:]))
    return np.stack(maps)


@register
class EigenGradCam(CamMethod):
    name = "eigengradcam"
    summary = "first principal component of G * A (pytorch-grad-cam's EigenGradCAM)"
    reference = "pytorch-grad-cam `EigenGradCAM`"
    agreement = "1e-5, definition"

    def image(self, a, g, ctx, opts):
        return _first_component(g * a)


@register
class GradCamElementWise(CamMethod):
    name = "gradcam_elementwise"
    summary = "ReLU(sum_k ReLU(G_k * A_k)), the product's positive part per position"
    reference = "pytorch-grad-cam `GradCAMElementWise`"
    agreement = "1e-5, definition"

    def image(self, a, g, ctx, opts):
        return np.maximum(g * a, 0).sum(axis=1)


@dataclass(frozen=True)
class ScoreCamOptions(CamOptions, BatchedOptions):
    """``batch_size``: masked copies per run (16, as pytorch-grad-cam), or ``max_batch_bytes``: as
    many as fit that many bytes of input; ``fuse`` as the others."""


@register
class ScoreCam(CamMethod):
    name = "scorecam"
    kinds = IMAGES  # its masks are upsampled to an image's height and width
    sets = ("activation",)
    Options = ScoreCamOptions
    summary = "weights = softmax_k of the score of x masked by each normalized map (Wang et al. 2020)"
    reference = "pytorch-grad-cam `ScoreCAM`"
    agreement = "1e-5, definition"

    def cost(self, opts: ScoreCamOptions, facts: Facts) -> Cost:
        channels = sum(k for k, _, _ in facts.layers)
        return facts.batch * channels, f"one run per channel of the target layer ({channels})"

    def weights(self, a, g, ctx, opts: ScoreCamOptions):
        x = ctx.x.astype(np.float32)
        height, width = x.shape[ctx.image_layout().index("H")], x.shape[ctx.image_layout().index("W")]
        scores = np.zeros(a.shape[:2])
        for i, sample in enumerate(a):
            per_run = opts.copies_per_run(x, default=16)
            for part in chunks(len(sample), per_run):  # the masks of a chunk of channels at a time
                masks = _aligned_upsample(sample[part], height, width)
                low, high = masks.min(axis=(1, 2), keepdims=True), masks.max(axis=(1, 2), keepdims=True)
                masks = np.expand_dims((masks - low) / (high - low + 1e-8), ctx.image_layout().index("C"))
                masked = (x[i : i + 1] * masks).astype(np.float32)
                targets = np.repeat(ctx.targets[i : i + 1], len(masked), axis=0)
                scores[i, part] = ctx.run(masked, targets, ("activation",), np.full(len(masked), i))[c.SCORE]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)


def _scaled(maps: np.ndarray) -> np.ndarray:
    """Each map minus its minimum over its maximum plus 1e-7 (pytorch-grad-cam's ``scale_cam_image``)."""
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    return maps / (1e-7 + maps.max(axis=(1, 2), keepdims=True))


def _layer_count(outputs: dict) -> int:
    count = 1
    while c.layer_output(c.ACTIVATION, count) in outputs:
        count += 1
    return count


def _aligned_upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(K, h, w)`` maps resized bilinearly with corners aligned (torch's UpsamplingBilinear2d)."""
    rows = interpolation_matrix(height, maps.shape[1], aligned=True)
    cols = interpolation_matrix(width, maps.shape[2], aligned=True)
    return rows @ maps @ cols.T
