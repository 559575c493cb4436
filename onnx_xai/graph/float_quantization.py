"""Quantized activations computed as the ONNX definition says, in float arithmetic, for runtimes whose
int8 kernels depart from it.

A QDQ model's activation round trip ``DequantizeLinear(QuantizeLinear(x))`` is defined as
``(saturate(round(x / s) + z) - z) s``. onnxruntime computes exactly that (with its QDQ fusions
switched off, :mod:`onnx_xai.runtime.backends`). OpenVINO's CPU plugin turns the pair into a
FakeQuantize and runs the surrounding convolutions in int8 with kernels chosen per instruction set:
with AVX-512 VNNI they reproduce the definition; on an AVX2-only CPU (measured with its ISA capped to
AVX2: ``ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2``) the logits of a small QDQ RegNet moved by
0.8 % and the input gradient by 21 %, so the same file was explained differently per CPU.
:func:`activations_in_float` rewrites each activation round trip into the float ops of its
definition (``Div, Round, Add, Max, Min, Sub, Mul``), which every runtime computes alike; weights
stored as integers behind a ``DequantizeLinear`` are left as they are (constants, decoded once).

Only per-tensor round trips whose quantized tensor feeds nothing but ``DequantizeLinear`` nodes are
rewritten, which is what quantizers emit for activations; anything else is left to the runtime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .emitter import all_names

# The integer grid of each quantized type (QuantizeLinear saturates to it).
GRIDS = {
    onnx.TensorProto.UINT8: (0, 255),
    onnx.TensorProto.INT8: (-128, 127),
    onnx.TensorProto.UINT16: (0, 65535),
    onnx.TensorProto.INT16: (-32768, 32767),
}


def activations_in_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every activation quantize/dequantize round trip computed in float (module
    docstring); returns the model, modified in place. A model without one is returned unchanged."""
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    names = _Names(graph)
    rewritten: list[onnx.NodeProto] = []
    dropped: set[int] = set()
    for node in graph.node:
        readers = consumers.get(node.output[0], []) if node.op_type == "QuantizeLinear" else []
        plan = _plan(node, readers, constants, outputs)
        if plan is None:
            rewritten.append(node)
            continue
        rewritten.extend(_float_round_trip(node, readers, plan, constants, names))
        dropped.update(id(r) for r in readers)
    if dropped:
        kept = [n for n in rewritten if id(n) not in dropped]
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(names.initializers)
    return model


def _per_tensor(constants: dict, name: str | None) -> bool:
    return name is None or (name in constants and constants[name].size == 1)


def _plan(node, readers, constants: dict, outputs: set[str]) -> tuple[float, float, np.dtype] | None:
    """The grid (low, high) and the float type of a QuantizeLinear that can be rewritten, else None."""
    if node.op_type != "QuantizeLinear" or not readers or node.output[0] in outputs:
        return None
    if any(r.op_type != "DequantizeLinear" or r.input[0] != node.output[0] for r in readers):
        return None
    inputs = [*node.input[1:3]] + [i for r in readers for i in r.input[1:3]]
    if any(a.name == "block_size" and a.i for a in node.attribute):
        return None
    if not all(_per_tensor(constants, i or None) for i in inputs):
        return None
    scale = constants[node.input[1]]
    zero = node.input[2] if len(node.input) > 2 and node.input[2] else None
    grid_type = (
        onnx.helper.np_dtype_to_tensor_dtype(constants[zero].dtype) if zero else onnx.TensorProto.UINT8
    )
    if grid_type not in GRIDS or scale.dtype.kind != "f":
        return None
    low, high = GRIDS[grid_type]
    return float(low), float(high), scale.dtype


def _float_round_trip(quantize, readers, plan, constants: dict, names: _Names) -> list[onnx.NodeProto]:
    """The float nodes that compute each reader's output: codes = min(max(round(x / s) + z, low),
    high) once, then (codes - z') s' per DequantizeLinear."""
    low, high, dtype = plan

    def const(value) -> str:
        return names.constant(np.asarray(value, dtype).reshape(()))

    def zero_of(node) -> str:
        return const(constants[node.input[2]] if len(node.input) > 2 and node.input[2] else 0)

    x, scale = quantize.input[0], quantize.input[1]
    current = names.tensor(f"{quantize.name or x}/float_div")
    nodes = [helper.make_node("Div", [x, const(constants[scale])], [current], name=current)]
    for op, operand in (
        ("Round", None),
        ("Add", zero_of(quantize)),
        ("Max", const(low)),
        ("Min", const(high)),
    ):
        step = names.tensor(f"{quantize.name or x}/float_{op.lower()}")
        nodes.append(helper.make_node(op, [current] + ([operand] if operand else []), [step], name=step))
        current = step
    for reader in readers:
        shifted = names.tensor(f"{reader.name or reader.output[0]}/float_sub")
        nodes.append(helper.make_node("Sub", [current, zero_of(reader)], [shifted], name=shifted))
        nodes.append(
            helper.make_node(
                "Mul",
                [shifted, const(constants[reader.input[1]])],
                [reader.output[0]],
                name=names.tensor(f"{reader.name or reader.output[0]}/float_mul"),
            )
        )
    return nodes


class _Names:
    """New tensor names unique in the graph, and the constants they need (deduplicated by value)."""

    def __init__(self, graph: onnx.GraphProto):
        self._taken = all_names(graph)
        self._constants: dict[tuple, str] = {}
        self.initializers: list[onnx.TensorProto] = []

    def tensor(self, base: str) -> str:
        name, k = base, 1
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def constant(self, value: np.ndarray) -> str:
        key = (value.dtype.str, value.tobytes())
        if key not in self._constants:
            self._constants[key] = self.tensor("xai/float_quantization/const")
            self.initializers.append(numpy_helper.from_array(value, self._constants[key]))
        return self._constants[key]
