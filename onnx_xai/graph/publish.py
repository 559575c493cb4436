"""Publishing a rewrite's tensors as graph outputs: float32, the input's gradients in its own shape.

Every output set ends here: a tensor computed in the forward's element type is cast to float32 and
exposed under its contract name (:mod:`onnx_xai.graph.contract`); a cotangent of the differentiated tensor
is carried back through the input's moves (an integer input's cast, a layout change) first.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .autodiff import undo_moves
from .emitter import Emitter

FLOAT = onnx.TensorProto.FLOAT


def input_gradient(e: Emitter, a, grad: str | None) -> str:
    """A cotangent of the differentiated tensor, back in the input's shape and layout, float32."""
    return as_float32(e, undo_moves(e, a.moves, grad or e.zeros_like(a.source)), a.source)


def publish(e: Emitter, public: str, name: str, shape: list) -> onnx.ValueInfoProto:
    """Expose the float32 tensor ``name`` as the graph output ``public``."""
    e.op("Identity", [name], out=[e.reserve(public)])
    return helper.make_tensor_value_info(public, FLOAT, shape)


def as_float32(e: Emitter, name: str, like: str) -> str:
    """``name``, which has the element type of the forward tensor ``like``, in float32."""
    return name if e.info.dtype(like) == FLOAT else e.op("Cast", [name], to=FLOAT)
