"""The batch a model takes: checking what users pass, and converting it to the model's type.

A model declares its explained input's element type: float32 (most exports), float16 (GPU serving),
float64 (scikit-learn pipelines), integer pixels (uint8 and friends: edge exports with the
preprocessing inside the model) or integer ids (int32/int64, read by an embedding). Users pass float
arrays to float models (any float type: converted to the model's), and integer or float values to
integer models (float values are rounded; values outside the type's range are an error).
Arrays the methods compute (SmoothGrad's noisy copies) are converted the same way, with integer
values rounded and clipped to the type's range, since noise may push them past it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError

ONNXRUNTIME_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@dataclass(frozen=True)
class InputSpec:
    """The explained input as the model declares it: name, shape (symbolic dims as strings), type."""

    name: str
    shape: tuple
    dtype: np.dtype

    @classmethod
    def of(cls, name: str, shape, onnxruntime_type: str) -> InputSpec:
        if onnxruntime_type not in ONNXRUNTIME_TYPES:
            raise InputError(f"the input {name!r} has type {onnxruntime_type}, which onnx_xai cannot feed")
        return cls(name, tuple(shape), np.dtype(ONNXRUNTIME_TYPES[onnxruntime_type]))

    @property
    def integer(self) -> bool:
        return self.dtype.kind in "iu"

    def check(self, x) -> np.ndarray:
        """The user's batch, validated, in the model's type.

        Raises:
            InputError: not a numeric array of the model's rank and size, empty, NaN/inf, or pixel
                values outside the integer type's range.
        """
        kinds = "fiu" if self.integer else "f"
        if not isinstance(x, np.ndarray) or x.dtype.kind not in kinds:
            what = type(x).__name__ + (f" of {x.dtype}" if isinstance(x, np.ndarray) else "")
            wanted = "an integer or float" if self.integer else "a float"
            raise InputError(f"x must be {wanted} numpy array (the model takes {self.dtype}), got {what}")
        if x.ndim != len(self.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(self.shape[1:], x.shape[1:])
        ):
            raise InputError(f"x has shape {x.shape}, expected {self.shape} (batch first)")
        if len(x) == 0:
            raise InputError("x is an empty batch")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise InputError("x contains NaN or infinite values")
        if self.integer:
            info = np.iinfo(self.dtype)
            if x.min() < info.min or x.max() > info.max:
                raise InputError(
                    f"x has values in [{x.min()}, {x.max()}]; the model takes {self.dtype} "
                    f"pixels in [{info.min}, {info.max}]"
                )
        return self.cast(x)

    def cast(self, x: np.ndarray) -> np.ndarray:
        """``x`` in the model's type (integer pixels rounded and clipped to the type's range)."""
        if self.integer and x.dtype.kind == "f":
            info = np.iinfo(self.dtype)
            x = np.clip(np.rint(x), info.min, info.max)
        return np.ascontiguousarray(x, dtype=self.dtype)


def held_inputs(extra: dict, owners: np.ndarray | None, batch: int) -> dict:
    """The model's other inputs for rows that are copies of the batch's ``owners`` rows: a value
    with one row per sample taken at the owners, the others as given."""
    if owners is None:
        return extra
    return {k: v[owners] if v.ndim >= 1 and len(v) == batch else v for k, v in extra.items()}


def per_sample(run, feeds: dict, batch: int) -> list[np.ndarray]:
    """``run(feeds)`` one sample at a time (each batch-first feed's row alone), the outputs stacked:
    a model whose runs share one activation scale (dynamic quantization) gives each sample the
    numbers it gives it alone."""
    rows = [
        run({k: v[i : i + 1] if np.ndim(v) >= 1 and len(v) == batch else v for k, v in feeds.items()})
        for i in range(batch)
    ]
    return [np.concatenate(parts) for parts in zip(*rows)]
