"""Forward-only methods: the score of masked copies of the input, no gradient.

- ``occlusion`` (Zeiler & Fergus 2014, as Captum's ``Occlusion``): a ``window`` x ``window`` patch over
  every channel (a signal's: ``window`` time steps, :mod:`.time_windows`) slides by ``stride`` (the
  last patch of a row or column clipped at the edge, as Captum's shift count
  ``ceil((size - window) / stride) + 1`` places it), replaced by ``baseline``; each pixel gets the
  mean, over the patches that cover it, of the score's drop.
- ``rise`` (Petsiuk et al. 2018): ``n_masks`` random masks, each a ``grid`` x ``grid`` field of
  cells kept with probability ``p``, upsampled bilinearly to ``(grid + 1)`` cells' worth of the image
  and cut at a random offset within one cell (so cells do not align with pixels); the saliency is
  the mean of the masked copies' scores weighted by their masks, over ``p``
  (:func:`rise_masks` makes them; ``noise_seed`` repeats them).

Both run the rewritten model's lightest graph on batches of copies (``batch_size`` or
``max_batch_bytes``), for a class or any seed objective; on a model whose graph cannot be rewritten
they run the model itself, on its output (:mod:`onnx_xai.runtime.forward_only`). Patches and masks
are made chunk by chunk, as the copies are scored, so memory is that of a chunk whatever their count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...graph import contract as c
from ...support.progress import copies_done
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
from .time_windows import is_signal, occlude_signal, occlusion_count
from .tokens import occlude_tokens


def _axes(layout: str) -> tuple[int, int, int]:
    """The channel, height and width axes of a 4-D input in ``layout``."""
    return layout.index("C"), layout.index("H"), layout.index("W")


def score_copies(ctx: Context, i: int, copies: np.ndarray) -> np.ndarray:
    """The objective's score of sample ``i`` on a chunk of perturbed copies of it (one run)."""
    targets = np.repeat(ctx.targets[i : i + 1], len(copies), axis=0)
    owners = np.full(len(copies), i)
    found = ctx.run(copies.astype(ctx.x.dtype), targets, ("activation",), owners)[c.SCORE].astype(np.float64)
    copies_done(len(copies))
    return found


def spread(ctx: Context, masks: np.ndarray) -> np.ndarray:
    """``[K, H, W]`` masks with a channel axis where the layout has it, to broadcast over a sample."""
    return np.expand_dims(masks, ctx.image_layout().index("C"))


@dataclass(frozen=True)
class OcclusionOptions(BatchedOptions):
    """``window``: the patch's side in pixels; ``stride``: its step; ``baseline``: the value that
    replaces it (in the model's input units: 0 is the normalization's mean)."""

    window: int = 16
    stride: int = 8
    baseline: Any = 0.0  # on tokens: the id a removed token takes (an int, or ids like the input)
    per_channel: bool = False  # a signal's windows over each channel alone (:mod:`.time_windows`)

    def check(self) -> None:
        super().check()
        whole("window", self.window, 1)
        whole("stride", self.stride, 1)
        number_or_ids("baseline", self.baseline)


def occlusion_shape(height: int, width: int, window: int, stride: int) -> tuple[int, int]:
    """How many rows and columns of patches Captum's ``Occlusion`` slides over an image."""
    rows = math.ceil(max(height - window, 0) / stride) + 1
    cols = math.ceil(max(width - window, 0) / stride) + 1
    return rows, cols


def occlusion_windows(height: int, width: int, window: int, stride: int, part: slice | None = None):
    """The patches (row and column slices, clipped at the edges), row-major; ``part`` of them."""
    rows, cols = occlusion_shape(height, width, window, stride)
    found = []
    for k in range(rows * cols)[part or slice(None)]:
        r, col = divmod(k, cols)
        found.append(
            (
                slice(r * stride, min(r * stride + window, height)),
                slice(col * stride, min(col * stride + window, width)),
            )
        )
    return found


def occlusion_masks(height: int, width: int, opts: OcclusionOptions, part: slice) -> np.ndarray:
    """``[k, height, width]``: 1 inside each patch of ``part``."""
    windows = occlusion_windows(height, width, opts.window, opts.stride, part)
    masks = np.zeros((len(windows), height, width), np.float32)
    for k, (rows, cols) in enumerate(windows):
        masks[k, rows, cols] = 1
    return masks


@register
class Occlusion(Method):
    name = "occlusion"
    signed = True
    forward_only = True
    kinds = (*IMAGES, "tokens", "signal")
    sets = ("activation",)
    Options = OcclusionOptions
    summary = "the score's mean drop when a sliding patch covering each pixel is replaced by a baseline"
    reference = "Captum `Occlusion` (sliding window over all channels)"
    agreement = "1e-4, Captum"

    def cost(self, opts: OcclusionOptions, facts: Facts) -> Cost:
        if facts.layout is None:  # tokens: one copy per token
            count = int(facts.sample[0]) if facts.sample and isinstance(facts.sample[0], int) else 0
            return facts.batch * count, f"{count} tokens"
        if is_signal(facts.layout):
            count = occlusion_count(facts.sample, str(facts.layout), opts)
            return facts.batch * count, f"{count} windows of {opts.window} steps by stride {opts.stride}"
        rows, cols = occlusion_shape(facts.size("H"), facts.size("W"), opts.window, opts.stride)
        return facts.batch * rows * cols, f"{rows * cols} patches of {opts.window} by stride {opts.stride}"

    def attribute(self, ctx: Context, opts: OcclusionOptions) -> np.ndarray:
        if ctx.ids is not None:
            return occlude_tokens(ctx, opts)
        if is_signal(ctx.layout):
            return occlude_signal(ctx, opts, score_copies)
        x = ctx.x.astype(np.float32)
        _, h_axis, w_axis = _axes(ctx.image_layout())
        height, width = x.shape[h_axis], x.shape[w_axis]
        rows, cols = occlusion_shape(height, width, opts.window, opts.stride)
        raw = np.zeros(x.shape, np.float64)
        for i in range(len(x)):
            sample = x[i : i + 1]
            total, covered = np.zeros((height, width)), np.zeros((height, width))
            for part in chunks(rows * cols, opts.copies_per_run(x)):
                masks = occlusion_masks(height, width, opts, part)
                patched = spread(ctx, masks)
                found = score_copies(ctx, i, sample * (1 - patched) + opts.baseline * patched)
                total += np.tensordot(ctx.outputs[c.SCORE][i] - found, masks, axes=1)
                covered += masks.sum(axis=0)
            mean = total / np.maximum(covered, 1)
            raw[i] = np.broadcast_to(np.expand_dims(mean, ctx.image_layout().index("C") - 1), x.shape[1:])
        return raw.astype(np.float32)


@dataclass(frozen=True)
class RiseOptions(BatchedOptions):
    """``n_masks`` random masks of a ``grid`` x ``grid`` field whose cells are kept with probability
    ``p``; ``noise_seed`` repeats them."""

    n_masks: int = 2000
    grid: int = 7
    p: float = 0.5
    noise_seed: int | None = None

    def check(self) -> None:
        super().check()
        whole("n_masks", self.n_masks, 1)
        whole("grid", self.grid, 1)
        whole("noise_seed", self.noise_seed, 0, optional=True)
        finite("p", self.p, 0.0)
        if not 0 < self.p <= 1:
            from ...support.errors import InputError

            raise InputError(f"p must be in (0, 1], not {self.p!r}")


def rise_mask_chunks(
    count: int, grid: int, p: float, height: int, width: int, noise_seed: int | None, per_chunk: int
) -> Iterator[np.ndarray]:
    """RISE's masks in chunks of ``[k, height, width]`` in [0, 1] (see the module docstring), each
    mask drawn in turn (its cells, then its offset), so the masks do not depend on the chunking."""
    from scipy import ndimage

    rng = np.random.default_rng(noise_seed)
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    big_h, big_w = (grid + 1) * cell_h, (grid + 1) * cell_w
    for part in chunks(count, per_chunk):
        masks = np.empty((part.stop - part.start, height, width), np.float32)
        for k in range(len(masks)):
            cells = (rng.random((grid, grid)) < p).astype(np.float32)
            field = ndimage.zoom(cells, (big_h / grid, big_w / grid), order=1, mode="nearest", grid_mode=True)
            dy, dx = rng.integers(0, cell_h), rng.integers(0, cell_w)
            masks[k] = field[dy : dy + height, dx : dx + width]
        yield masks


def rise_masks(
    count: int, grid: int, p: float, height: int, width: int, noise_seed: int | None
) -> np.ndarray:
    """All of RISE's masks ``[count, height, width]`` at once (the method draws them in chunks)."""
    return np.concatenate(list(rise_mask_chunks(count, grid, p, height, width, noise_seed, 64)))


@register
class Rise(Method):
    name = "rise"
    forward_only = True
    kinds = IMAGES
    sets = ("activation",)
    Options = RiseOptions
    summary = "the mean of random masks weighted by the score of the input they keep, over p"
    reference = "Petsiuk et al. 2018 (RISE), as DIANNA and OpenVINO-XAI"
    agreement = "1e-5, definition (same masks)"

    def cost(self, opts: RiseOptions, facts: Facts) -> Cost:
        return facts.batch * opts.n_masks, f"n_masks {opts.n_masks}"

    def attribute(self, ctx: Context, opts: RiseOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        _, h_axis, w_axis = _axes(ctx.image_layout())
        height, width = x.shape[h_axis], x.shape[w_axis]
        raw = np.zeros((len(x), height, width), np.float64)
        for i in range(len(x)):
            sample = x[i : i + 1]
            masks = rise_mask_chunks(
                opts.n_masks, opts.grid, opts.p, height, width, opts.noise_seed, opts.copies_per_run(x)
            )
            for chunk in masks:
                raw[i] += np.tensordot(score_copies(ctx, i, sample * spread(ctx, chunk)), chunk, axes=1)
        saliency = raw / (opts.n_masks * opts.p)
        return np.broadcast_to(np.expand_dims(saliency, ctx.image_layout().index("C")), x.shape).astype(
            np.float32
        )
