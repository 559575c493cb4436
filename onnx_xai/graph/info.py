"""Read-only facts about a model's main graph: producers, consumers, types, shapes and constants.

Shapes come from ONNX shape inference run once on a copy of the model; a dimension is an ``int`` when
static, a ``str`` when symbolic (``"N"``), or ``None`` when unknown. Constants are initializers and
``Constant`` node outputs, decoded to numpy on request. A node's inputs include the outer-scope
tensors its subgraphs read (an ``If`` depends on what its branches use), so walks over the graph see
control flow. Everything the rules and the model analysis need to know about forward tensors is
asked of this object, never re-derived.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from ..support.errors import ModelError
from ..support.progress import stage
from .shapes import infer_types

Dim = int | str | None
BROADCASTING = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Max",
        "Min",
        "Sum",
        "Mean",
        "Where",
        "Relu",
        "Sigmoid",
        "Tanh",
        "Exp",
        "Log",
        "Sqrt",
        "Neg",
        "Abs",
        "Erf",
        "Clip",
        "LeakyRelu",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "Cast",
        "Reciprocal",
        "Softplus",
        "Elu",
        "Selu",
        "PRelu",
        "Gelu",
        "Mish",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
    }
)
FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
)
# Ops whose integer output still carries data (a quantized activation, an integer product), unlike
# shape arithmetic.
QUANTIZING = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"})


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ``ai.onnx`` opset version."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ModelError("the model imports no ai.onnx opset")


class GraphInfo:
    """Indexes of one graph, with inferred types and shapes.

    Args:
        model: the model; it is not modified (shape inference runs on a copy).
    """

    def __init__(self, model: onnx.ModelProto):
        stage(f"inferring the shapes of {len(model.graph.node):,} nodes")
        self.model = model
        self.graph = model.graph
        self.opset = default_opset(model)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self._input_names = {i.name for i in self.graph.input}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self._implicit: dict[int, list[str]] = {}
        for node in self.graph.node:
            for name in node.output:
                if name:
                    self.producer[name] = node
            implicit = [n for n in outer_scope_names(node) if n not in node.input]
            if implicit:
                self._implicit[id(node)] = implicit
            for name in list(node.input) + implicit:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self._types: dict[str, onnx.TypeProto] = {}
        self._shapes: dict[str, tuple[Dim, ...] | None] = {}  # shape() read once per tensor
        self._infer()
        self._const_cache: dict[str, np.ndarray | None] = {}
        self._flow: list[tuple[onnx.NodeProto, list[str], list[str]]] | None = None
        self.walks: dict[tuple, frozenset[str]] = {}  # results of the path walks (:mod:`.paths`), by question

    def _infer(self) -> None:
        self._types, self._folded = infer_types(self.model)
        self._fill_ranks()

    def _fill_ranks(self) -> None:
        """Where inference gave up, derive the rank of elementwise and Reshape outputs."""
        for node in self.graph.node:
            out = node.output[0] if node.output else ""
            if not out or self.rank(out) is not None:
                continue
            rank = None
            if node.op_type in BROADCASTING:
                ranks = [self.rank(i) for i in node.input if i]
                known = [r for r in ranks if r is not None]
                rank = max(known) if known and len(known) == len(ranks) else None
            elif node.op_type == "Reshape":
                target = self.shape(node.input[1])
                rank = target[0] if target is not None and isinstance(target[0], int) else None
            if rank is not None:
                elem = self.dtype(out) or self.dtype(node.input[-1 if node.op_type == "Where" else 0])
                self._set_type(out, onnx.helper.make_tensor_type_proto(elem, [None] * rank))

    def _set_type(self, name: str, type_proto: onnx.TypeProto) -> None:
        self._types[name] = type_proto
        self._shapes.pop(name, None)

    # -- types and shapes --------------------------------------------------------------------------
    def dtype(self, name: str) -> int:
        """The ONNX element type of a tensor, 0 when unknown."""
        tp = self._types.get(name)
        return tp.tensor_type.elem_type if tp is not None else 0

    def is_float(self, name: str) -> bool:
        return self.dtype(name) in FLOAT_TYPES

    def carries_data(self, name: str) -> bool:
        """Whether a tensor carries image data (float, unknown type, or a quantized activation), as
        opposed to shape arithmetic and indices, through which no gradient flows."""
        producer = self.producer.get(name)
        return (
            self.dtype(name) == 0
            or self.is_float(name)
            or (producer is not None and producer.op_type in QUANTIZING)
        )

    def shape(self, name: str) -> tuple[Dim, ...] | None:
        """The tensor's shape, or None when even its rank is unknown."""
        try:
            return self._shapes[name]
        except KeyError:
            found = self._shapes[name] = self._read_shape(name)
            return found

    def _read_shape(self, name: str) -> tuple[Dim, ...] | None:
        tp = self._types.get(name)
        if tp is None or not tp.tensor_type.HasField("shape"):
            return None
        dims: list[Dim] = []
        for d in tp.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        return tuple(dims)

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def known_rank(self, name: str) -> int:
        """The tensor's rank, where a rule needs it (its check has made sure it is known)."""
        rank = self.rank(name)
        if rank is None:
            raise ModelError(f"the rank of {name!r} is unknown")
        return rank

    def known_shape(self, name: str) -> tuple[Dim, ...]:
        """The tensor's shape with its rank known (dimensions may still be symbolic or unknown)."""
        shape = self.shape(name)
        if shape is None:
            raise ModelError(f"the rank of {name!r} is unknown")
        return shape

    def static_dim(self, name: str, axis: int) -> int:
        """One dimension that a rule needs as a number (its check has made sure it is one)."""
        dim = self.known_shape(name)[axis]
        if not isinstance(dim, int):
            raise ModelError(f"dimension {axis} of {name!r} is not known before run time")
        return dim

    def known_static_shape(self, name: str) -> tuple[int, ...]:
        """The static shape that a rule needs (a weight's; its check has made sure it is static)."""
        shape = self.static_shape(name)
        if shape is None:
            raise ModelError(f"the shape of {name!r} is not known before run time")
        return shape

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape if every dimension is a known integer, else None."""
        s = self.shape(name)
        if s is None or not all(isinstance(d, int) for d in s):
            return None
        return tuple(int(d) for d in s)  # type: ignore[arg-type]

    def type_proto(self, name: str) -> onnx.TypeProto | None:
        return self._types.get(name)

    # -- constants ---------------------------------------------------------------------------------
    def const_value(self, name: str, folded: bool = True) -> np.ndarray | None:
        """The value of an initializer, a Constant, or (when ``folded``) integer shape arithmetic
        that folds to a constant for every batch size; None otherwise (also for the empty name)."""
        if not name:
            return None
        if name not in self._const_cache:
            value = None
            if name in self.initializers and name not in self._input_names:
                value = numpy_helper.to_array(self.initializers[name])
            elif name in self.producer and self.producer[name].op_type == "Constant":
                value = _constant_node_value(self.producer[name])
            self._const_cache[name] = value
        value = self._const_cache[name]
        return self._folded.get(name) if value is None and folded else value

    def declare_constant(self, name: str, value: np.ndarray) -> None:
        """Make a constant that a rewrite adds known like the model's own (its type, shape and value:
        a rule applied to a node with a changed weight reads the weight's shape)."""
        elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
        self._set_type(name, onnx.helper.make_tensor_type_proto(elem, list(value.shape)))
        self._const_cache[name] = value

    def is_const(self, name: str) -> bool:
        return self.const_value(name) is not None

    def is_weight(self, name: str) -> bool:
        """A literal, or a DequantizeLinear/Transpose/Cast of literals (a quantized or transposed
        weight): a tensor that no input of the model changes."""
        producer = self.producer.get(name)
        if producer is not None and producer.op_type in ("DequantizeLinear", "Transpose", "Cast"):
            return all(self.is_literal(i) for i in producer.input if i)
        return self.is_literal(name)

    def is_literal(self, name: str) -> bool:
        """Whether a tensor is written in the file (an initializer or a Constant node's output),
        without decoding it."""
        producer = self.producer.get(name)
        return (name in self.initializers and name not in self._input_names) or (
            producer is not None and producer.op_type == "Constant"
        )

    # -- walks -------------------------------------------------------------------------------------
    def nodes(self) -> Iterator[onnx.NodeProto]:
        return iter(self.graph.node)

    def inputs_of(self, node: onnx.NodeProto) -> list[str]:
        """The node's inputs, with the outer-scope tensors its subgraphs read (control flow)."""
        return [i for i in node.input if i] + self._implicit.get(id(node), [])

    def data_flow(self) -> list[tuple[onnx.NodeProto, list[str], list[str]]]:
        """Per node, in order: the node, its inputs (:meth:`inputs_of`) and the outputs that carry
        data (:meth:`carries_data`); computed once, for walks that visit every node."""
        if self._flow is None:
            self._flow = [
                (n, self.inputs_of(n), [o for o in n.output if o and self.carries_data(o)])
                for n in self.graph.node
            ]
        return self._flow

    def graph_input_names(self) -> list[str]:
        """Graph inputs that are real inputs (not initializers listed as inputs)."""
        return [i.name for i in self.graph.input if i.name not in self.initializers]


def outer_scope_names(node: onnx.NodeProto) -> list[str]:
    """Names a node's subgraphs read but do not define (their outer-scope inputs)."""
    found: list[str] = []
    for a in node.attribute:
        for sub in list(a.graphs) + ([a.g] if a.HasField("g") else []):
            defined = {v.name for v in list(sub.input) + list(sub.initializer)}
            for inner in sub.node:
                for name in list(inner.input) + outer_scope_names(inner):
                    if name and name not in defined and name not in found:
                        found.append(name)
                defined.update(inner.output)
    return found


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    return None


def attr(node: onnx.NodeProto, name: str, default=None):
    """The value of a node attribute (ints, floats, strings decoded), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, list) and value and isinstance(value[0], bytes):
                return [v.decode() for v in value]
            return value
    return default
