"""The emitter: the one place new nodes, names and constants are made.

Rules call ``e.op("Mul", [a, b])`` and ``e.const(array)``; the emitter names every new tensor uniquely
under the ``xai/`` prefix (unique against every name already in the model, subgraphs included),
deduplicates constants by value, marks each node with the forward node it differentiates (readable in
Netron), and never copies a forward initializer: rules refer to forward weights by name. It also
carries the opset-dependent spellings (axes as attribute or input) so rules do not branch on opsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..support.errors import ModelError
from .info import GraphInfo

PREFIX = "xai/"
# Opset from which an op takes ``axes`` (or ``split``) as an input instead of an attribute.
AXES_AS_INPUT = {
    "ReduceSum": 13,
    "Squeeze": 13,
    "Unsqueeze": 13,
    "Split": 13,
    "ReduceMean": 18,
    "ReduceMax": 18,
    "ReduceMin": 18,
    "ReduceL2": 18,
    "ReduceSumSquare": 18,
    "ReduceL1": 18,
    "ReduceLogSumExp": 18,
    "ReduceLogSum": 18,
    "ReduceProd": 18,
}
NP_DTYPE: dict[int, type] = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
}


def all_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor and node name in a graph and its subgraphs."""
    names: set[str] = set()
    for coll in (graph.input, graph.output, graph.value_info, graph.initializer):
        names.update(x.name for x in coll)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
        for a in node.attribute:
            for sub in list(a.graphs) + ([a.g] if a.HasField("g") else []):
                names |= all_names(sub)
    names.discard("")
    return names


@dataclass(frozen=True)
class Tensor:
    """A tensor name with arithmetic, so that a rule reads like its formula: ``dy * y * (1 - y)``
    emits ``Mul``/``Sub`` nodes through the emitter. A number becomes a constant of the element type of
    ``like``, a forward tensor (the tensor itself by default; results inherit it), so float16 graphs
    stay float16. ``str(t)`` and ``t.name`` are the name; :meth:`Emitter.op` takes handles too."""

    name: str
    e: Emitter = field(repr=False)
    like: str = ""

    def __str__(self) -> str:
        return self.name

    def _other(self, value: Tensor | str | float) -> str:
        like = self.like or self.name
        return self.e.scalar(float(value), like=like) if isinstance(value, (int, float)) else str(value)

    def _op(self, op_type: str, a: str, b: str) -> Tensor:
        return Tensor(self.e.op(op_type, [a, b]), self.e, self.like or self.name)

    def __add__(self, other: Tensor | str | float) -> Tensor:
        return self._op("Add", self.name, self._other(other))

    def __radd__(self, other: float) -> Tensor:
        return self._op("Add", self._other(other), self.name)

    def __sub__(self, other: Tensor | str | float) -> Tensor:
        return self._op("Sub", self.name, self._other(other))

    def __rsub__(self, other: float) -> Tensor:
        return self._op("Sub", self._other(other), self.name)

    def __mul__(self, other: Tensor | str | float) -> Tensor:
        return self._op("Mul", self.name, self._other(other))

    def __rmul__(self, other: float) -> Tensor:
        return self._op("Mul", self._other(other), self.name)

    def __truediv__(self, other: Tensor | str | float) -> Tensor:
        return self._op("Div", self.name, self._other(other))

    def __rtruediv__(self, other: float) -> Tensor:
        return self._op("Div", self._other(other), self.name)

    def __neg__(self) -> Tensor:
        return Tensor(self.e.op("Neg", [self.name]), self.e, self.like or self.name)


class Emitter:
    """Records new nodes and constants for one rewrite of a model.

    Args:
        info: facts about the forward graph.
    """

    def __init__(self, info: GraphInfo):
        self.info = info
        self.opset = info.opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = all_names(info.graph)
        self._counter = 0
        self._consts: dict[tuple, str] = {}
        self.context = ""
        self.wanted: set[str] = set()

    def wants(self, name: str) -> bool:
        """Whether a forward tensor needs a cotangent (it depends on a differentiated input)."""
        return name in self.wanted

    def fresh(self, hint: str) -> str:
        """A new tensor name under ``xai/``, unique in the model."""
        while True:
            self._counter += 1
            name = f"{PREFIX}{hint}_{self._counter}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def reserve(self, name: str) -> str:
        """Claim an exact public name (an ``xai_*`` output); fails if the model already uses it."""
        if name in self._taken:
            raise ModelError(f"the model already has a tensor named {name!r}")
        self._taken.add(name)
        return name

    def t(self, name: str | Tensor, like: str = "") -> Tensor:
        """The arithmetic handle of tensor ``name`` (:class:`Tensor`); ``like``: the forward tensor whose
        element type its constants take (default: ``name`` itself, for a forward tensor)."""
        return name if isinstance(name, Tensor) else Tensor(name, self, like or name)

    def op(
        self, op_type: str, inputs: Sequence[str | Tensor], out: Sequence[str] | None = None, **attrs
    ) -> str:
        """Emit one node of one output; returns its name (``out``: the name to give it)."""
        return self.op_outputs(op_type, inputs, 1, out, **attrs)[0]

    def op_outputs(
        self,
        op_type: str,
        inputs: Sequence[str | Tensor],
        n_out: int,
        out: Sequence[str] | None = None,
        **attrs,
    ) -> list[str]:
        """Emit one node of ``n_out`` outputs; returns their names."""
        hint = op_type.lower()
        outputs = list(out) if out is not None else [self.fresh(hint) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(
            op_type, [str(i) for i in inputs], outputs, name=self.fresh(f"n_{hint}"), **attrs
        )
        if self.context:
            node.doc_string = self.context
        self.nodes.append(node)
        return outputs

    def const(self, value, dtype=None) -> str:
        """A constant initializer holding ``value``; equal constants share one tensor."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.fresh("const")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def weight(self, value: np.ndarray) -> str:
        """A constant that rules may read as a weight: declared to the graph's facts (shape, value)."""
        name = self.const(value)
        self.info.declare_constant(name, np.asarray(value))
        return name

    def scalar(self, value: float, like: str) -> str:
        """A 0-d constant with the element type of the forward tensor ``like``."""
        return self.const(np.array(value, dtype=NP_DTYPE.get(self.info.dtype(like), np.float32)))

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    # -- opset-dependent spellings -----------------------------------------------------------------
    def with_axes(self, op_type: str, inputs: Sequence[str], axes: Sequence[int] | None, **attrs) -> str:
        """Emit an op whose ``axes`` moved from attribute to input at some opset."""
        inputs = list(inputs)
        if axes is not None:
            if self.opset >= AXES_AS_INPUT.get(op_type, 10**6):
                inputs.append(self.ints(axes))
            else:
                attrs["axes"] = list(axes)
        return self.op(op_type, inputs, **attrs)

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool = True) -> str:
        return self.with_axes(op_type, [x], list(axes), keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.with_axes("Unsqueeze", [x], list(axes))

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.with_axes("Squeeze", [x], list(axes))

    def cast_like(self, x: str, like: str) -> str:
        return self.op("Cast", [x], to=self.info.dtype(like))

    def zero_fill(self, like: str) -> onnx.TensorProto:
        """The ``value`` attribute of a ConstantOfShape filling zeros of ``like``'s element type."""
        return numpy_helper.from_array(np.zeros(1, dtype=NP_DTYPE.get(self.info.dtype(like), np.float32)))

    def zeros_like(self, x: str) -> str:
        """Zeros with the shape and element type of the forward tensor ``x``."""
        return self.op("ConstantOfShape", [self.op("Shape", [x])], value=self.zero_fill(x))

    def np_dtype(self, like: str):
        return NP_DTYPE.get(self.info.dtype(like), np.float32)
