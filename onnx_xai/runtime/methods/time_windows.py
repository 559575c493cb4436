"""Signals perturbed over time: occlusion's sliding windows, the surrogates' time segments, and the
baselines that make sense for a signal.

A signal is ``[N, C, T]``, ``[N, T, C]`` or a waveform ``[N, T]`` (its layout, ``NCT``, ``NTC`` or
``NT``, as the graph says). Occlusion slides a ``window`` of time steps by ``stride`` (the last one
clipped at the end, as Captum's ``Occlusion`` counts its shifts: ``ceil((T - window) / stride) + 1``)
over every channel at once, or with ``per_channel`` over each channel alone (Captum's window
``(1, window)``); the removed values become ``baseline``; each value gets the mean, over the windows
covering it, of the score's drop. LIME and KernelSHAP take ``segments`` equal windows over time (or a
``feature_mask`` ``[T]`` giving each step's feature) as their features. A baseline ``"mean"`` is each
channel's mean over time, per sample: a signal with its shape removed and its level kept.
"""

from __future__ import annotations

import math

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from .base import Context, chunks

SIGNAL_LAYOUTS = ("NCT", "NTC", "NT")


def is_signal(layout: str | None) -> bool:
    return layout in SIGNAL_LAYOUTS


def channel_axis(layout: str) -> int | None:
    """A sample's channel axis (no batch axis), None for a waveform."""
    return layout.index("C") - 1 if "C" in layout else None


def window_count(length: int, window: int, stride: int) -> int:
    """How many windows Captum's ``Occlusion`` slides over ``length`` steps."""
    return math.ceil(max(length - window, 0) / stride) + 1


def occlusion_masks(sample_shape: tuple, layout: str, opts, part: slice) -> np.ndarray:
    """``[k, *sample_shape]``: 1 inside each window of ``part`` (over all channels, or one)."""
    time = layout.index("T") - 1
    length = sample_shape[time]
    windows = window_count(length, opts.window, opts.stride)
    axis = channel_axis(layout)
    channels = sample_shape[axis] if opts.per_channel and axis is not None else 1
    picked = range(windows * channels)[part]
    masks = np.zeros((len(picked), *sample_shape), np.float32)
    for k, index in enumerate(picked):
        channel, w = divmod(index, windows)
        span: list = [k] + [slice(None)] * len(sample_shape)
        span[time + 1] = slice(w * opts.stride, min(w * opts.stride + opts.window, length))
        if channels > 1 and axis is not None:
            span[axis + 1] = slice(channel, channel + 1)
        masks[tuple(span)] = 1
    return masks


def occlusion_count(sample_shape: tuple, layout: str, opts) -> int:
    length = sample_shape[layout.index("T") - 1]
    axis = channel_axis(layout)
    channels = sample_shape[axis] if opts.per_channel and axis is not None else 1
    return window_count(length, opts.window, opts.stride) * channels


def occlude_signal(ctx: Context, opts, score_copies) -> np.ndarray:
    """Occlusion of a signal (module docstring), ``score_copies(ctx, i, copies)`` scoring copies."""
    x = ctx.x.astype(np.float32)
    layout = str(ctx.layout)
    baseline = signal_reference(ctx, opts.baseline)
    count = occlusion_count(x.shape[1:], layout, opts)
    raw = np.zeros(x.shape, np.float64)
    for i in range(len(x)):
        total, covered = np.zeros(x.shape[1:]), np.zeros(x.shape[1:])
        for part in chunks(count, opts.copies_per_run(x)):
            masks = occlusion_masks(x.shape[1:], layout, opts, part)
            found = score_copies(ctx, i, x[i] * (1 - masks) + baseline[i] * masks)
            total += np.tensordot(ctx.outputs[c.SCORE][i] - found, masks, axes=1)
            covered += masks.sum(axis=0)
        raw[i] = total / np.maximum(covered, 1)
    return raw.astype(np.float32)


def time_segments(length: int, segments: int, feature_mask) -> np.ndarray:
    """Each time step's feature ``[T]``: ``segments`` equal windows, or the mask given."""
    if feature_mask is None:
        return np.minimum(np.arange(length) * min(segments, length) // length, length - 1)
    mask = np.asarray(feature_mask, np.int64)
    if mask.shape != (length,):
        raise InputError(
            f"feature_mask is {list(mask.shape)}; a signal's is one feature per time step [{length}]"
        )
    return mask


def signal_reference(ctx: Context, value) -> np.ndarray:
    """A signal's baseline shaped like the batch (``"mean"`` included: :meth:`Context.reference`)."""
    return ctx.reference(value)
