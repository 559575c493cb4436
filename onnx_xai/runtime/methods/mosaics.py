"""Methods that change the target layer's activation and score it again, through the head only.

The model is cut once at its first target layer (:mod:`onnx_xai.runtime.head`); each sample's
activation is computed once, and its changed copies run through the head alone, many per run
(``batch_size`` copies, or as many as fit ``max_batch_bytes`` of activation; 64 by default).

- ``reciprocam`` (Byun & Lee 2022, ReciproCAM; on a token layer ViT-ReciproCAM, Byun & Lee 2023):
  one copy per position of the layer's grid, the activation kept at that position only (or, with
  ``gaussian``, weighted by a 3 x 3 Gaussian around it: 1/4 at the centre, 1/8 beside, 1/16 on the
  diagonals), a token layer's tokens before the grid (class, registers) kept whole; the map is each
  copy's score, as OpenVINO-XAI computes it: for a class, its softmax probability (the paper's;
  the output read as it is when the model ends in Softmax), or the score (``probability=False``,
  and for seed objectives). ``gaussian`` defaults to on for token layers and off for feature maps,
  OpenVINO-XAI's defaults.
- ``ablationcam`` (Desai & Ramaswamy 2020, as pytorch-grad-cam's ``AblationCAM``): one copy per
  channel with that channel ablated: set to 0 where the activation's minimum is 0 (after a ReLU),
  else to that minimum minus 10⁷ (pytorch-grad-cam's rule; its value drifts lower along a batch,
  ours stays); channel ``k`` weighs ``(score - ablated score) / score``; the map is
  ``ReLU(sum_k w_k A_k)``.

Both run on a model the gradient cannot cross, wherever its target layer is found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...support.progress import copies_done
from .base import IMAGES, BatchedOptions, Context, Cost, Facts, Method, chunks, register

GAUSSIAN = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0
HEAD_RUN = 64  # copies per head run by default: the head is light
ABLATION_OFFSET = 1e7  # pytorch-grad-cam's ablation value below the activation's minimum


def reciprocam_masks(height: int, width: int, gaussian: bool) -> np.ndarray:
    """One mask per position of an ``height`` x ``width`` grid ``[h * w, h, w]``, row-major: 1 at
    the position, or the 3 x 3 Gaussian centred on it (cut at the edges)."""
    padded = np.zeros((height * width, height + 2, width + 2))
    kernel = GAUSSIAN if gaussian else np.pad([[1.0]], 1)
    for k in range(height * width):
        row, col = divmod(k, width)
        padded[k, row : row + 3, col : col + 3] = kernel
    return padded[:, 1:-1, 1:-1].astype(np.float32)


def _per_run(opts: BatchedOptions, sample: dict) -> int:
    biggest = max(sample.values(), key=lambda v: v.nbytes)
    return opts.copies_per_run(biggest, default=HEAD_RUN)


def _head_scores(ctx: Context, head, i: int, copies_of, count: int, per_run: int, probability: bool):
    """The score (or class probability) of sample ``i``'s ``count`` changed activations."""
    found = np.zeros(count)
    objective, x = ctx.targets[i : i + 1], ctx.x[i : i + 1]
    for part in chunks(count, per_run):
        scores, output = head.scores(copies_of(part), objective, x)
        if probability and objective.dtype.kind in "iu":
            values = output.reshape(len(output), -1).astype(np.float64)
            if not head.probabilities:
                values = np.exp(values - values.max(axis=1, keepdims=True))
                values /= values.sum(axis=1, keepdims=True)
            scores = values[:, int(objective[0])]
        found[part] = scores
        copies_done(part.stop - part.start)
    return found


@dataclass(frozen=True)
class ReciproCamOptions(BatchedOptions):
    """``gaussian``: masks of a 3 x 3 Gaussian (None: on for token layers); ``probability``: read
    a class's softmax probability, not its score."""

    gaussian: bool | None = None
    probability: bool = True


@register
class ReciproCam(Method):
    name = "reciprocam"
    family = "cam"
    kinds = IMAGES
    forward_only = True
    sets = ("activation",)
    Options = ReciproCamOptions
    summary = "each grid position's score with the layer's activation kept there only, through the head"
    reference = "Byun & Lee 2022 (ReciproCAM; ViT-ReciproCAM on tokens), as OpenVINO-XAI"
    agreement = "1e-5, definition (CNN and ViT)"

    def cost(self, opts: ReciproCamOptions, facts: Facts) -> Cost:
        _, height, width = facts.layers[0] if facts.layers else (0, 0, 0)
        return facts.batch * (1 + height * width), f"one head run per position of the {height}x{width} grid"

    def attribute(self, ctx: Context, opts: ReciproCamOptions) -> np.ndarray:
        head = ctx.layer_head()
        acts = head.activation(ctx.x, ctx.targets)
        height, width = head.grid(acts).shape[2:]
        gaussian = head.tokens if opts.gaussian is None else opts.gaussian
        masks = reciprocam_masks(height, width, gaussian)
        maps = np.zeros((len(ctx.x), height, width), np.float32)
        for i in range(len(ctx.x)):
            sample = head.sample(acts, i)
            found = _head_scores(
                ctx, head, i, lambda part, sample=sample: head.masked(sample, masks[part]), len(masks),
                _per_run(opts, sample), opts.probability,
            )  # fmt: skip
            maps[i] = found.reshape(height, width)
        return maps


@register
class AblationCam(Method):
    name = "ablationcam"
    family = "cam"
    kinds = IMAGES
    forward_only = True
    sets = ("activation",)
    Options = BatchedOptions
    summary = "ReLU(sum_k w_k A_k), w_k the score's relative drop with channel k ablated, through the head"
    reference = "pytorch-grad-cam `AblationCAM` (Desai & Ramaswamy 2020)"
    agreement = "1e-5, definition"

    def cost(self, opts: BatchedOptions, facts: Facts) -> Cost:
        channels = facts.layers[0][0] if facts.layers else 0
        return facts.batch * (2 + channels), f"one head run per channel of the layer ({channels})"

    def attribute(self, ctx: Context, opts: BatchedOptions) -> np.ndarray:
        head = ctx.layer_head()
        acts = head.activation(ctx.x, ctx.targets)
        grid = head.grid(acts).astype(np.float64)
        channels = np.arange(grid.shape[1])
        maps = np.zeros((len(ctx.x), *grid.shape[2:]), np.float32)
        for i in range(len(ctx.x)):
            sample = head.sample(acts, i)
            low = float(sample[head.view.name].min())
            value = 0.0 if low == 0 else low - ABLATION_OFFSET

            def copies(part, sample=sample, value=value):
                return head.ablated(sample, channels[part], value)

            ablated = _head_scores(ctx, head, i, copies, len(channels), _per_run(opts, sample), False)
            score = _head_scores(ctx, head, i, lambda part, sample=sample: sample, 1, 1, probability=False)[0]
            weights = (score - ablated) / score  # the score through the head, as the ablated ones
            maps[i] = np.maximum(np.tensordot(weights, grid[i], axes=1), 0)
        return maps
