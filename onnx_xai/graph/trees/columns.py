"""What stands between a model's input and its tree ensemble's input, replayed in numpy per column.

Converters put column picks (``ArrayFeatureExtractor``, ``Gather``, ``Slice``, ``Concat``,
``FeatureVectorizer``) and per-column maps (``Cast``, ``Scaler``, ``Imputer``, ``Binarizer``,
arithmetic with a constant per column) in front of the trees. Each such op is one small function
here that computes what onnxruntime computes (same dtypes, same order of float operations) and says,
for every output column, which input column it comes from (-1 for a constant column). The trees'
comparisons are then evaluated on the replayed values, so a split ``(x - o) * s <= t`` behind a
``Scaler`` is decided exactly as onnxruntime decides it, a flipped sign or a zero scale included,
without inverting any float arithmetic. An op outside this table (a ``Normalizer``, a ``MatMul``,
a ``LinearRegressor``) has no per-column map: :func:`read_input_map` refuses it in one line, the
cue to fall back to a model-agnostic method.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ...support.errors import InputError, ModelError
from .forms import named


@dataclass(frozen=True, eq=False)
class Columns:
    """A [rows, columns] tensor during the replay and the model input column of each column."""

    data: np.ndarray
    source: np.ndarray


Arg = Columns | np.ndarray | None
Op = Callable[[onnx.NodeProto, list[Arg]], Columns]
_OPS: dict[str, Op] = {}


def _op(*names: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        for name in names:
            if name in _OPS:
                raise RuntimeError(f"column op {name} registered twice")
            _OPS[name] = fn
        return fn

    return register


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _data(node: onnx.NodeProto, arg: Arg) -> Columns:
    if not isinstance(arg, Columns):
        raise ModelError(f"{named(node)} reads a constant where the table flows")
    return arg


def _const(node: onnx.NodeProto, arg: Arg, what: str) -> np.ndarray:
    if not isinstance(arg, np.ndarray):
        raise ModelError(f"{named(node)}: its {what} is not a constant")
    return arg


def _pick(x: Columns, index: np.ndarray) -> Columns:
    return Columns(x.data[:, index], x.source[index])


def _same(x: Columns, data: np.ndarray) -> Columns:
    return Columns(data, x.source)


@_op("Identity")
def _identity(node, args):
    return _data(node, args[0])


@_op("Cast")
def _cast(node, args):
    dtype = onnx.helper.tensor_dtype_to_np_dtype(_attr(node, "to"))
    if dtype.kind not in "fiub":
        raise ModelError(f"{named(node)} casts the table to {dtype}")
    x = _data(node, args[0])
    return _same(x, x.data.astype(dtype))


@_op("Scaler")
def _scaler(node, args):
    """y = float32((x - offset) * scale), in double for a double input (onnxruntime's ScalerOp)."""
    x = _data(node, args[0])
    work = np.float64 if x.data.dtype == np.float64 else np.float32
    offset = np.asarray(_attr(node, "offset", []), np.float32).astype(work)
    scale = np.asarray(_attr(node, "scale", []), np.float32).astype(work)
    if offset.size != scale.size or scale.size not in (1, x.data.shape[1]):
        raise ModelError(f"{named(node)} has {scale.size} scales for {x.data.shape[1]} columns")
    return _same(x, ((x.data.astype(work) - offset) * scale).astype(np.float32))


@_op("Imputer")
def _imputer(node, args):
    x = _data(node, args[0])
    floats = _attr(node, "imputed_value_floats")
    if floats:
        values, replaced = (
            np.asarray(floats, np.float32),
            np.float32(_attr(node, "replaced_value_float", 0.0)),
        )
    else:
        values = np.asarray(_attr(node, "imputed_value_int64s", []), np.int64)
        replaced = np.int64(_attr(node, "replaced_value_int64", 0))
    if values.size not in (1, x.data.shape[1]):
        raise ModelError(f"{named(node)} has {values.size} values for {x.data.shape[1]} columns")
    hit = np.isnan(x.data) if np.isnan(replaced) else x.data == replaced
    return _same(x, np.where(hit, values.astype(x.data.dtype), x.data))


@_op("Binarizer")
def _binarizer(node, args):
    x = _data(node, args[0])
    if np.isnan(x.data).any():
        raise InputError(f"{named(node)} refuses NaN inputs, as onnxruntime does")
    threshold = np.float32(_attr(node, "threshold", 1.0))
    return _same(x, (x.data > threshold).astype(x.data.dtype))


@_op("Add", "Sub", "Mul", "Div")
def _arithmetic(node, args):
    """Elementwise arithmetic with one constant operand that is one value or one value per column."""
    x_first = isinstance(args[0], Columns)
    x = _data(node, args[0] if x_first else args[1])
    c = _const(node, args[1] if x_first else args[0], "other operand")
    if c.size not in (1, x.data.shape[1]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
        raise ModelError(f"{named(node)} mixes the table with a {list(c.shape)} constant")
    c = c.reshape(-1).astype(x.data.dtype)
    a, b = (x.data, c) if x_first else (c, x.data)
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[node.op_type]
    with np.errstate(all="ignore"):
        return _same(x, fn(a, b).astype(x.data.dtype))


@_op("Neg", "Abs", "Relu", "Floor", "Ceil")
def _unary(node, args):
    x = _data(node, args[0])
    fn = {"Neg": np.negative, "Abs": np.abs, "Floor": np.floor, "Ceil": np.ceil}.get(node.op_type)
    return _same(x, fn(x.data) if fn else np.maximum(x.data, x.data.dtype.type(0)))


@_op("ArrayFeatureExtractor")
def _extract(node, args):
    x = _data(node, args[0])
    index = _const(node, args[1], "index list").reshape(-1).astype(np.int64)
    if index.size == 0 or index.min() < 0 or index.max() >= x.data.shape[1]:
        raise ModelError(f"{named(node)} picks columns outside [0, {x.data.shape[1]})")
    return _pick(x, index)


@_op("Gather")
def _gather(node, args):
    x = _data(node, args[0])
    index = _const(node, args[1], "index list").astype(np.int64)
    width = x.data.shape[1]
    if (
        _attr(node, "axis", 0) not in (1, -1)
        or index.ndim != 1
        or np.any((index < -width) | (index >= width))
    ):
        raise ModelError(f"{named(node)} is not a pick of columns by a 1-D list of indices")
    return _pick(x, np.where(index < 0, index + width, index))


@_op("Slice")
def _slice(node, args):
    x = _data(node, args[0])
    if len(args) > 1:  # opset 10+: starts, ends, axes, steps as inputs
        starts, ends = (_const(node, a, "bounds").reshape(-1) for a in args[1:3])
        axes = _const(node, args[3], "axes").reshape(-1) if len(args) > 3 and args[3] is not None else None
        steps = _const(node, args[4], "steps").reshape(-1) if len(args) > 4 and args[4] is not None else None
    else:
        starts, ends = np.asarray(_attr(node, "starts", [])), np.asarray(_attr(node, "ends", []))
        axes, steps = np.asarray(_attr(node, "axes", range(starts.size))), None
    axes = np.arange(starts.size) if axes is None else axes
    steps = np.ones(starts.size, np.int64) if steps is None else steps
    columns = np.arange(x.data.shape[1])
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if axis in (1, -1):
            columns = columns[slice(*slice(int(start), int(end), int(step)).indices(columns.size))]
        elif slice(int(start), int(end), int(step)).indices(1 << 62) != (0, 1 << 62, 1):
            raise ModelError(f"{named(node)} slices the rows of the table")
    return _pick(x, columns)


@_op("Concat")
def _concat(node, args):
    if _attr(node, "axis") not in (1, -1):
        raise ModelError(f"{named(node)} joins along axis {_attr(node, 'axis')}, not the columns")
    parts = _tables(node, args)
    data = np.concatenate([p.data for p in parts], axis=1)
    return Columns(data, np.concatenate([p.source for p in parts]))


@_op("FeatureVectorizer")
def _vectorize(node, args):
    """Each input's first ``inputdimensions[i]`` columns as float32, zero-padded when it has fewer."""
    widths = list(_attr(node, "inputdimensions", []))
    parts = _tables(node, args)
    if len(widths) != len(parts):
        raise ModelError(f"{named(node)} has {len(widths)} widths for {len(parts)} inputs")
    out = []
    for part, width in zip(parts, widths):
        kept = _pick(part, np.arange(min(width, part.data.shape[1])))
        pad = width - kept.data.shape[1]
        out.append(Columns(
            np.c_[kept.data.astype(np.float32), np.zeros((kept.data.shape[0], pad), np.float32)],
            np.r_[kept.source, np.full(pad, -1)],
        ))  # fmt: skip
    return Columns(np.concatenate([p.data for p in out], axis=1), np.concatenate([p.source for p in out]))


def _tables(node: onnx.NodeProto, args: list[Arg]) -> list[Columns]:
    """The inputs of a join, a constant one broadcast over the rows as constant columns."""
    rows = next(a.data.shape[0] for a in args if isinstance(a, Columns))
    parts = []
    for a in args:
        if isinstance(a, Columns):
            parts.append(Columns(a.data.reshape(rows, -1), a.source))
        else:
            c = _const(node, a, "input").reshape(1, -1)
            parts.append(Columns(np.broadcast_to(c, (rows, c.size)), np.full(c.size, -1)))
    return parts


@dataclass(frozen=True, eq=False)
class InputMap:
    """How the model's input ``input_name`` ([rows, ``features``] of ``dtype``) becomes the
    ensemble's input: ``nodes`` replayed in order; ``source[k]`` is the input column that tree
    feature ``k`` is a function of (-1: a constant)."""

    input_name: str
    dtype: np.dtype
    features: int
    target: str
    nodes: tuple[onnx.NodeProto, ...]
    consts: dict[str, np.ndarray]
    source: np.ndarray
    out_dtype: np.dtype

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's input for the model input rows ``x`` (cast to the input's type first)."""
        return _replay(self, x.astype(self.dtype)).data


def read_input_map(model: onnx.ModelProto, target: str, min_columns: int) -> InputMap:
    """Trace the ensemble's input ``target`` back to one model input through per-column ops.

    Raises:
        ModelError: an op on the way has no per-column map, the trees read several model inputs,
            or the model input is not a [rows, columns] table of numbers.
    """
    graph = model.graph
    constants = _constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    inputs = {i.name: i for i in graph.input if i.name not in constants}
    nodes, reached, problems = _trace(target, producers, constants, inputs)
    if problems:
        raise ModelError(
            f"no exact map from the trees' input '{target}' back to the model's input columns: "
            f"{', '.join(problems)}; explain with a model-agnostic method (KernelSHAP)"
        )
    if len(reached) != 1:
        names = ", ".join(f"'{r}'" for r in sorted(reached)) or "none"
        raise ModelError(f"the trees read {len(reached)} model inputs ({names}); one table input is handled")
    name = reached.pop()
    consts = {i: constants[i]() for n in nodes for i in n.input if i in constants}
    dtype, features = _table_type(inputs[name], min_columns if not nodes else None)
    probe = InputMap(name, dtype, features, target, tuple(nodes), consts, np.zeros(0, np.int64), dtype)
    out = _replay(probe, np.zeros((1, features), dtype))
    if out.data.ndim != 2 or out.data.shape[1] < min_columns:
        raise ModelError(
            f"the trees read column {min_columns - 1} of '{target}', which has {out.data.shape[1]}"
        )
    return InputMap(name, dtype, features, target, tuple(nodes), consts, out.source, out.data.dtype)


def _replay(way: InputMap, rows: np.ndarray) -> Columns:
    values: dict[str, Arg] = {way.input_name: Columns(rows, np.arange(way.features))}
    for node in way.nodes:
        args = [values.get(i, way.consts.get(i)) if i else None for i in node.input]
        values[node.output[0]] = _OPS[node.op_type](node, args)
    out = values[way.target]
    assert isinstance(out, Columns)
    return out


def _trace(target: str, producers: dict, consts: dict, inputs: dict) -> tuple[list, set[str], list[str]]:
    """The nodes between the model inputs and ``target`` in run order, the inputs reached, and one
    line per op that has no per-column map."""
    nodes: list[onnx.NodeProto] = []
    reached: set[str] = set()
    problems: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in consts:
            return
        seen.add(name)
        if name in inputs:
            reached.add(name)
            return
        node = producers.get(name)
        if node is None:
            problems.append(f"'{name}' has no producer")
        elif node.op_type not in _OPS or node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            problems.append(f"{named(node)} is not a per-column map")
        else:
            for i in node.input:
                if i:
                    visit(i)
            nodes.append(node)

    visit(target)
    return nodes, reached, problems


def _table_type(value: onnx.ValueInfoProto, direct_columns: int | None) -> tuple[np.dtype, int]:
    tensor = value.type.tensor_type
    dims = tensor.shape.dim
    if not value.type.HasField("tensor_type") or len(dims) != 2:
        raise ModelError(f"input '{value.name}' is not a [rows, columns] table")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    if dtype.kind not in "fiu":
        raise ModelError(f"input '{value.name}' holds {dtype}, not numbers")
    if dims[1].HasField("dim_value") and dims[1].dim_value > 0:
        return dtype, int(dims[1].dim_value)
    if direct_columns is None:
        raise ModelError(f"input '{value.name}' has no static column count")
    return dtype, direct_columns


def _constants(graph: onnx.GraphProto) -> dict[str, Callable[[], np.ndarray]]:
    """Every constant of the graph (initializers, Constant outputs), decoded only when asked for."""
    found: dict[str, Callable[[], np.ndarray]] = {
        t.name: functools.partial(numpy_helper.to_array, t) for t in graph.initializer
    }
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            found[node.output[0]] = functools.partial(_constant_value, node.attribute[0])
    return found


def _constant_value(a: onnx.AttributeProto) -> np.ndarray:
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    kind = np.float32 if a.name in ("value_float", "value_floats") else np.int64
    return np.asarray(onnx.helper.get_attribute_value(a), kind)
