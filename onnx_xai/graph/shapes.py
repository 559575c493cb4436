"""Shape inference that sees through the shape arithmetic of exported graphs.

ONNX shape inference gives up on patterns exporters emit all the time, such as
``x.reshape(x.shape[0], -1)`` or ``chunk`` lowered to ``Shape -> Gather -> Div -> Slice``: the Reshape
target or the Slice bounds are computed, so every shape downstream becomes unknown. The rules need
static spatial sizes (strided Conv, pooling), so this module:

1. infers on a weightless shell of the model (large initializers become typed inputs: cheap even
   for large models), with every dynamic input dimension set to a concrete size: the batch, and the
   height and width of 4-D inputs exported with a dynamic spatial size;
2. folds the integer shape subgraphs that have become constant (``Shape`` of a static tensor, then
   Gather/Concat/arithmetic on constants) into Constant nodes, evaluated by the ONNX reference
   implementation one node at a time, and infers again, until nothing new folds;
3. does this twice, with batch 2 and spatial size 224, then batch 3 and spatial size 256: a dimension
   equal in both runs is static, one that follows the batch (2, then 3) is the batch symbol, any
   other that differs is unknown; a folded value is kept only when both runs agree.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import contrib_shapes, ml_shapes, stft_shapes

FOLDABLE = frozenset(
    {
        "Gather",
        "Unsqueeze",
        "Squeeze",
        "Concat",
        "Slice",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Cast",
        "Reshape",
        "Range",
        "Equal",
        "Where",
        "ConstantOfShape",
        "Neg",
        "Abs",
        "Floor",
        "Ceil",
        "Max",
        "Min",
        "Mod",
        "ReduceProd",
        "ReduceSum",
        "Identity",
        "Expand",
        "Sqrt",
        "Less",
        "Greater",
        "Not",
        "Transpose",
        "Flatten",
        "Tile",
        "ReduceMax",
        "ReduceMin",
        "Sign",
        "And",
        "Or",
        "GreaterOrEqual",
        "LessOrEqual",
    }
)
MAX_ROUNDS = 8
SMALL = 4096  # initializers up to this many elements keep their values (shape constants, scales)


RUNS = ((2, 224), (3, 256))  # (batch, spatial size) of the two inference runs


def infer_types(model: onnx.ModelProto) -> tuple[dict[str, onnx.TypeProto], dict[str, np.ndarray]]:
    """Tensor types of every value in the main graph (batch dimensions symbolic, other dynamic
    dimensions unknown), and the values of the integer tensors that fold to constants whatever the
    dynamic sizes."""
    dynamic = _dynamic_dims(model)
    if not dynamic:
        return _infer_folded(_shell(model, {}))
    (small, small_values), (large, large_values) = (
        _infer_folded(_shell(model, _concrete(dynamic, batch, spatial))) for batch, spatial in RUNS
    )
    symbol = next((axes[0] for axes in dynamic.values() if 0 in axes), "N")
    types = {name: _merge(tp, large.get(name), symbol) for name, tp in small.items()}
    values = {
        name: v
        for name, v in small_values.items()
        if name in large_values and np.array_equal(v, large_values[name])
    }
    return types, values


def concrete_shapes(model: onnx.ModelProto, spatial: int = 256) -> dict[str, list[int]]:
    """The static shape of every value the inference pins down when the dynamic input sizes are set
    to batch 1 and ``spatial`` x ``spatial`` (a model with a fixed size keeps its own)."""
    types, _ = _infer_folded(_shell(model, _concrete(_dynamic_dims(model), 1, spatial)))
    return {name: dims for name, tp in types.items() if (dims := _static(tp)) is not None}


def _dynamic_dims(model: onnx.ModelProto) -> dict[str, dict[int, str]]:
    """Per input, its dynamic dimensions: axis 0 with its symbol (the batch), and for 4-D inputs the
    other axes without a static size (height and width exported as dynamic)."""
    inits = {t.name for t in model.graph.initializer}
    found = {}
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in inits or not dims:
            continue
        axes = {
            i: d.dim_param or "N"
            for i, d in enumerate(dims)
            if not d.HasField("dim_value") and (i == 0 or len(dims) == 4)
        }
        if axes:
            found[vi.name] = axes
    return found


def _concrete(dynamic: dict[str, dict[int, str]], batch: int, spatial: int) -> dict[str, dict[int, int]]:
    return {name: {axis: batch if axis == 0 else spatial for axis in axes} for name, axes in dynamic.items()}


def _shell(model: onnx.ModelProto, sizes: dict[str, dict[int, int]]) -> onnx.ModelProto:
    """The model without its large weights (they become typed inputs), dynamic dims set to ``sizes``."""
    graph = model.graph
    keep = [t for t in graph.initializer if _numel(t) <= SMALL]
    typed = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if _numel(t) > SMALL
    ]
    inputs = []
    for vi in graph.input:
        vi2 = onnx.ValueInfoProto()
        vi2.CopyFrom(vi)
        for axis, size in sizes.get(vi.name, {}).items():
            vi2.type.tensor_type.shape.dim[axis].dim_value = size
        inputs.append(vi2)
    names = {vi.name for vi in inputs}
    # Declared output shapes may pin the batch the shell changes: keep only their element types.
    outputs = [
        helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, None) for o in graph.output
    ]
    shell_graph = helper.make_graph(
        list(graph.node), graph.name, inputs + [v for v in typed if v.name not in names], outputs, keep
    )
    shell = helper.make_model(shell_graph, opset_imports=list(model.opset_import))
    shell.ir_version = model.ir_version
    shell.functions.extend(model.functions)
    return shell


def _numel(t: onnx.TensorProto) -> int:
    return int(np.prod(t.dims)) if t.dims else 1


def _infer(shell: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    types = _infer_once(shell)
    # ai.onnx.ml outputs, onnxruntime's fused ops and STFT, which ONNX cannot infer, then what follows
    while (
        ml_shapes.declare(shell, types)
        or contrib_shapes.declare(shell, types)
        or stft_shapes.declare(shell, types)
    ):
        types = _infer_once(shell)
    return types


def _infer_once(shell: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    try:
        inferred = onnx.shape_inference.infer_shapes(shell, data_prop=True)
    except Exception:  # noqa: BLE001 - best effort: an inference error leaves shapes unknown
        inferred = shell
    g = inferred.graph
    types = {
        vi.name: vi.type
        for vi in list(g.input) + list(g.value_info) + list(g.output)
        if vi.type.HasField("tensor_type")
    }
    for t in g.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
    return types


def _infer_folded(shell: onnx.ModelProto) -> tuple[dict[str, onnx.TypeProto], dict[str, np.ndarray]]:
    types, folded = _infer(shell), dict[str, np.ndarray]()
    for _ in range(MAX_ROUNDS):
        if not _fold_round(shell, types, folded):
            break
        types = _infer(shell)
    return types, folded


def _static(tp: onnx.TypeProto | None) -> list[int] | None:
    if tp is None or not tp.tensor_type.HasField("shape"):
        return None
    dims = tp.tensor_type.shape.dim
    return [d.dim_value for d in dims] if all(d.HasField("dim_value") for d in dims) else None


def _fold_round(
    shell: onnx.ModelProto, types: dict[str, onnx.TypeProto], folded: dict[str, np.ndarray]
) -> bool:
    """Replace newly constant integer nodes by Constant nodes (recorded in ``folded``); True when
    any was replaced."""
    values: dict[str, np.ndarray | None] = {t.name: numpy_helper.to_array(t) for t in shell.graph.initializer}
    changed, opset = False, _opset(shell)
    for i, node in enumerate(shell.graph.node):
        if node.op_type == "Constant":
            values[node.output[0]] = (
                numpy_helper.to_array(node.attribute[0].t) if node.attribute[0].name == "value" else None
            )
            continue
        value = _evaluate(node, values, types, opset)
        if value is None:
            continue
        values[node.output[0]] = folded[node.output[0]] = value
        shell.graph.node[i].CopyFrom(
            helper.make_node("Constant", [], [node.output[0]], value=numpy_helper.from_array(value))
        )
        changed = True
    return changed


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _evaluate(node, values, types, opset: int) -> np.ndarray | None:
    if len(node.output) != 1 or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type in ("Shape", "Size"):
        shape = _static(types.get(node.input[0]))
        if shape is None:
            return None
        if node.op_type == "Size":
            return np.array(int(np.prod(shape)), np.int64)
        start = next((a.i for a in node.attribute if a.name == "start"), 0)
        end = next((a.i for a in node.attribute if a.name == "end"), len(shape))
        return np.array(shape, np.int64)[start:end]
    if node.op_type not in FOLDABLE or any(i and values.get(i) is None for i in node.input):
        return None
    if any(values[i].size > SMALL for i in node.input if i):
        return None
    from onnx.reference import ReferenceEvaluator

    inputs = [i for i in node.input if i]
    graph = helper.make_graph(
        [node],
        "fold",
        [
            helper.make_tensor_value_info(
                i, helper.np_dtype_to_tensor_dtype(values[i].dtype), list(values[i].shape)
            )
            for i in inputs
        ],
        [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)],
    )
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        (out,) = ReferenceEvaluator(probe).run(None, {i: values[i] for i in inputs})
    except Exception:  # noqa: BLE001 - an op the reference cannot fold stays unfolded
        return None
    out = np.asarray(out)
    return out if out.dtype.kind in "iub" and out.size <= SMALL else None


def _merge(small: onnx.TypeProto, large: onnx.TypeProto | None, symbol: str) -> onnx.TypeProto:
    """Dims equal in both runs stay; dims that follow the batch (2, then 3) become the batch
    symbol; other dims that differ are unknown."""
    a, b = _dims(small), _dims(large)
    if a is None or b is None or len(a) != len(b):
        return helper.make_tensor_type_proto(small.tensor_type.elem_type, None)
    batch = (RUNS[0][0], RUNS[1][0])
    merged = [x if x == y else (symbol if (x, y) == batch else None) for x, y in zip(a, b)]
    return helper.make_tensor_type_proto(small.tensor_type.elem_type, merged)


def _dims(tp: onnx.TypeProto | None) -> list | None:
    if tp is None or not tp.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tp.tensor_type.shape.dim
    ]
