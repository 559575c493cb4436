"""One copy of each weight for every onnxruntime session in the process.

Each graph an Explainer runs (the model's own, one rewritten graph per kind of request, a language
model's scoring copy) carries the same weights under the same names, and each onnxruntime session
would keep its own copy of them. Here the large weights (:data:`SHARED_BYTES` or more, stored as raw
bytes) are held once, in :class:`Held` arrays, and handed to each session with
``SessionOptions.add_initializer``: onnxruntime then uses the caller's buffer in place of the
graph's tensor, which it drops once the session is made (measured: GPT-2 small, three sessions of
one file, 8 MB each instead of 480 MB). :func:`shared_initializers` finds a graph's weights in the
pool by type, dims and a checksum of their bytes, compared in full (not by name: the same kernel
reordered for two graphs, :mod:`.shared_kernels`, is named by each); anything else gets its own
array. Each array starts on a 64-byte boundary, as onnxruntime's own buffers do (its vectorized
kernels read unaligned ones more slowly). The pool holds its arrays weakly: each session holds the
ones it was given, so an array lives as long as a session uses it. onnxruntime would also keep a
prepacked copy of each weight per session (a GEMM operand packed for its kernel): prepacking is off
(:mod:`.backends`).
"""

from __future__ import annotations

import threading
import weakref
import zlib

import numpy as np

SHARED_BYTES = 64 * 1024  # weights this large or larger are shared (smaller ones are not worth it)
ALIGNMENT = 64


class Held:
    """One shared weight: its array and the onnxruntime value over it."""

    __slots__ = ("array", "value", "__weakref__")

    def __init__(self, array: np.ndarray):
        import onnxruntime as ort

        self.array = _aligned_copy(array)
        self.value = ort.OrtValue.ortvalue_from_numpy(self.array)


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` whose data starts on a 64-byte boundary."""
    buffer = np.empty(array.nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    copy = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


_POOL: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def shared_initializers(model) -> tuple[list[str], list[Held]]:
    """The names of ``model``'s large initializers (an ``onnx.ModelProto``, unchanged) and the
    :class:`Held` weights its session must be given (and keep)."""
    from onnx import TensorProto, helper

    names, held = [], []
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL or not tensor.HasField("raw_data"):
            continue
        if tensor.ByteSize() < SHARED_BYTES:
            continue
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        names.append(tensor.name)
        held.append(_held(np.frombuffer(tensor.raw_data, dtype).reshape(tuple(tensor.dims))))
    return names, held


def _held(data: np.ndarray) -> Held:
    """The pool's weight equal to ``data``, or a new one (pooled unless another weight has its
    key)."""
    key = (data.dtype.str, data.shape, zlib.adler32(data.data))
    with _LOCK:
        known = _POOL.get(key)
        if known is not None and np.array_equal(known.array, data):
            return known
        made = Held(data)
        if known is None:
            _POOL[key] = made
        return made


def pooled() -> int:
    """How many weights the pool holds now (arrays some session still uses)."""
    return len(_POOL)
