"""One copy of a model's weights for all the onnxruntime sessions of one Explainer.

Each rewritten graph (one per kind of request) carries the forward's weights under their own names,
and each onnxruntime session would load its own copy of them. :class:`SharedWeights` keeps one array
per large weight (:data:`SHARED_BYTES` or more, stored as raw bytes) and hands it to every session as
an external initializer (``SessionOptions.add_external_initializers``, which reads the caller's
buffer and copies nothing): :meth:`SharedWeights.detach` turns those initializers of a graph into
external references, with the names and values that a session is given. A weight is shared only
where a later graph's tensor of that name has the same type, dims and bytes; any other stays in its
graph. What onnxruntime derives from a weight (a prepacked GEMM operand, a constant-folded transpose,
a reordered convolution kernel) is still the session's own: ``memory="lean"`` also turns prepacking
off (``session.disable_prepacking``).
"""

from __future__ import annotations

import threading

import numpy as np

SHARED_BYTES = 64 * 1024  # weights this large or larger are shared (smaller ones are not worth it)
LOCATION = "onnx_xai_shared_weights"  # the external data's location: never read, the session is given it


class SharedWeights:
    """The arrays shared so far, by initializer name (module docstring)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._values: dict[str, object] = {}  # onnxruntime OrtValues over those arrays
        self._lock = threading.Lock()

    def detach(self, model) -> tuple[list[str], list]:
        """Turn ``model``'s large initializers (an ``onnx.ModelProto``, changed in place) into
        external references; the names and OrtValues its session must be given."""
        import onnxruntime as ort
        from onnx import TensorProto, helper

        names, values = [], []
        with self._lock:
            for tensor in model.graph.initializer:
                if tensor.data_location == TensorProto.EXTERNAL or tensor.ByteSize() < SHARED_BYTES:
                    continue
                if not tensor.HasField("raw_data"):
                    continue
                array = self._shared(tensor, helper.tensor_dtype_to_np_dtype(tensor.data_type))
                if array is None:
                    continue
                if tensor.name not in self._values:
                    self._values[tensor.name] = ort.OrtValue.ortvalue_from_numpy(array)
                names.append(tensor.name)
                values.append(self._values[tensor.name])
                tensor.ClearField("raw_data")
                tensor.data_location = TensorProto.EXTERNAL
                del tensor.external_data[:]
                for key, value in (("location", LOCATION), ("offset", "0"), ("length", str(array.nbytes))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
        return names, values

    def _shared(self, tensor, dtype) -> np.ndarray | None:
        """The shared array of ``tensor``'s name, made from it the first time; None where the name's
        array holds something else."""
        data = np.frombuffer(tensor.raw_data, dtype).reshape(tuple(tensor.dims))
        known = self._arrays.get(tensor.name)
        if known is None:
            self._arrays[tensor.name] = known = data.copy()
            return known
        if known.dtype != data.dtype or known.shape != data.shape or not np.array_equal(known, data):
            return None
        return known
