"""The saliency methods: one contract, one registry, SmoothGrad written once over any of them.

A :class:`Method` names the output set it needs and the rewritten-model output that is its raw
attribution. Pixel maps are made one of two ways: for ``gradient`` (Simonyan et al. 2014) the maximum
over channels of |d score / d x|; for the CAM family (CAM, Zhou et al. 2016; Grad-CAM, Selvaraju et
al. 2017) the raw ``(N, h, w)`` map upsampled bilinearly to the input size. ``smoothgrad`` (Smilkov
et al. 2017) averages any base method's raw attribution over noisy copies of the input.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .maps import upsample


@dataclass(frozen=True)
class Method:
    """A base method: the output set it needs, its raw output and how raw becomes a pixel map."""
    name: str
    output_set: str
    raw_output: str
    to_pixels: Callable[[np.ndarray, str, tuple[int, int]], np.ndarray]


def gradient_pixels(raw: np.ndarray, layout: str, size: tuple[int, int]) -> np.ndarray:
    """Pixel importance of an input gradient: max over channels of its magnitude."""
    return np.abs(raw).max(axis=layout.index("C"))


def cam_pixels(raw: np.ndarray, layout: str, size: tuple[int, int]) -> np.ndarray:
    """A CAM-family map upsampled bilinearly to the input size."""
    return upsample(raw, *size)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gradient", "input_grad", "xai_input_grad", gradient_pixels),
    Method("cam", "cam", "xai_cam", cam_pixels),
    Method("gradcam", "gradcam", "xai_gradcam", cam_pixels),
)}
SMOOTHGRAD = "smoothgrad"
METHOD_NAMES = tuple(METHODS) + (SMOOTHGRAD,)


def base_method(name: str) -> Method:
    if not isinstance(name, str) or name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}")
    return METHODS[name]


@dataclass(frozen=True)
class SmoothGradOptions:
    """SmoothGrad's options; ``noise`` (n_samples, *x.shape[1:]) overrides the seeded noise."""
    n_samples: int = 50
    noise_level: float = 0.15
    seed: int | None = None
    noise: np.ndarray | None = None
    base: str = "gradient"
    batch_size: int | None = None  # copies per run; None: the input's batch size, kept within 4..16

    @classmethod
    def parse(cls, options: dict) -> SmoothGradOptions:
        """Checked options: whole numbers for counts and the seed, a finite noise level >= 0, a
        finite non-empty noise array, a known base method.

        Raises:
            InputError: naming the option and what it must be.
        """
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown smoothgrad option(s) {sorted(unknown)}; "
                             f"valid: {', '.join(cls.__dataclass_fields__)}")
        opts = cls(**options)
        if opts.base == SMOOTHGRAD:
            raise InputError(f"smoothgrad cannot smooth itself; base must be one of {', '.join(METHODS)}")
        base_method(opts.base)
        _whole("n_samples", opts.n_samples, 1)
        _whole("batch_size", opts.batch_size, 1, optional=True)
        _whole("seed", opts.seed, 0, optional=True)
        if not _real(opts.noise_level) or not 0 <= opts.noise_level < float("inf"):
            raise InputError(f"noise_level must be a finite number >= 0, not {opts.noise_level!r}")
        if opts.noise is not None:
            noise = np.asarray(opts.noise)
            if noise.dtype.kind not in "fiu" or noise.ndim < 1 or len(noise) == 0 or not np.isfinite(noise).all():
                raise InputError("noise must be a non-empty numeric array of finite values, one row per sample")
        return opts


def _real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _whole(name: str, value, low: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")


def chunk_size(batch: int) -> int:
    """Noisy copies per run by default: as many as the caller's batch, within 4..16.

    Measured on 2 CPU cores: per-image gradient cost falls with the batch (EfficientNet-Lite0: 35 ms
    at 1, 27 ms at 16), while peak memory grows with it; a chunk the size of the caller's own batch
    keeps SmoothGrad's peak close to that of one gradient call of that batch.
    """
    return max(4, min(16, batch))


def noisy_batches(x: np.ndarray, targets: np.ndarray, opts: SmoothGradOptions
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of (noisy copies, their targets, index of the sample each copy belongs to).

    Copies of all samples are streamed through in chunks of ``batch_size`` (default
    :func:`chunk_size`), so memory stays bounded whatever ``n_samples`` is. Noise: ``opts.noise`` if given, else N(0, sigma^2) with
    sigma = noise_level * (max - min) of each sample, drawn from a generator seeded by ``seed``.
    """
    if opts.noise is not None:
        noise = np.asarray(opts.noise, np.float32)
        if noise.shape[1:] != x.shape[1:]:
            raise InputError(f"noise has shape {noise.shape}, expected (n_samples, {', '.join(map(str, x.shape[1:]))})")
        n_samples = len(noise)
    else:
        n_samples, rng = opts.n_samples, np.random.default_rng(opts.seed)
        with np.errstate(over="ignore"):  # an overflow is reported below, as an InputError
            sigmas = opts.noise_level * (x.reshape(len(x), -1).max(1) - x.reshape(len(x), -1).min(1))
    pairs = [(i, j) for i in range(len(x)) for j in range(n_samples)]
    size = opts.batch_size or chunk_size(len(x))
    for start in range(0, len(pairs), size):
        chunk = pairs[start:start + size]
        owners = np.array([i for i, _ in chunk])
        if opts.noise is not None:
            added = noise[[j for _, j in chunk]]
        else:
            added = rng.standard_normal((len(chunk),) + x.shape[1:], dtype=np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                added *= sigmas[owners].reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            noisy = x[owners] + added
        if not np.isfinite(noisy).all():
            raise InputError(f"noise_level {opts.noise_level} makes the noisy copies overflow float32")
        yield noisy, targets[owners], owners
