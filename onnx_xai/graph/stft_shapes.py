"""The output shape of STFT where ONNX's inference gives none, or a wrong one.

ONNX 1.23 infers no STFT output at all over a signal whose length is symbolic (not even its rank),
so every op after the spectrogram of a model exported with a dynamic time axis loses its rank and
its rule refuses it. And it reads an absent ``onesided`` as 0, where the spec, onnxruntime and the
reference evaluator read 1 (a real signal's one-sided spectrum).

STFT of a signal ``[N, T]`` or ``[N, T, C]`` (``C`` 1 for a real signal, 2 for a complex one) with
hop ``h`` and frame length ``L`` is ``[N, F, B, 2]``: ``F = (T - L) // h + 1`` frames (unknown
where ``T`` or ``h`` is), ``B = L // 2 + 1`` bins when one-sided, else ``L``. ``L`` is the
``frame_length`` input, else the window's length, else ``T`` (one frame of the whole signal). In the
element type of the signal. :func:`declare` writes ``onesided=1`` on the STFT nodes of the inference
shell that leave it out (the same op, now read alike by ONNX's inference) and declares the outputs
ONNX cannot infer as ``value_info``, as :mod:`.contrib_shapes` does for onnxruntime's fused ops.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

from .ml_shapes import _dims


def _constants(model: onnx.ModelProto) -> dict[str, int]:
    """The one-element integer initializers and Constant outputs of the graph (hops, lengths)."""
    found = {}
    tensors = [(t.name, t) for t in model.graph.initializer]
    tensors += [(n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant" for a in n.attribute]
    for name, tensor in tensors:
        if tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            value = numpy_helper.to_array(tensor)
            if value.size == 1:
                found[name] = int(value.reshape(-1)[0])
    return found


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def output_dims(node: onnx.NodeProto, types: dict[str, onnx.TypeProto], constants: dict[str, int]):
    """The dims of an STFT node's output (None where the signal's rank is not known)."""
    signal = _dims(types.get(node.input[0]))
    if signal is None or len(signal) not in (2, 3):
        return None
    window = _dims(types.get(_input(node, 2))) if _input(node, 2) else None
    length = constants.get(_input(node, 3), window[0] if window else signal[1])
    hop = constants.get(_input(node, 1))
    onesided = next((a.i for a in node.attribute if a.name == "onesided"), 1)
    bins = (length // 2 + 1 if onesided else length) if isinstance(length, int) else None
    known = all(isinstance(v, int) for v in (signal[1], length, hop))
    frames = (signal[1] - length) // hop + 1 if known else None
    return [signal[0], frames, bins, 2]


def declare(model: onnx.ModelProto, types: dict[str, onnx.TypeProto]) -> bool:
    """Write ``onesided=1`` where STFT nodes of ``model`` (the inference shell, changed in place) leave
    it out, and declare the STFT outputs that ``types`` lacks; True when anything changed."""
    graph, changed = model.graph, False
    stfts = [n for n in graph.node if n.op_type == "STFT" and n.domain in ("", "ai.onnx")]
    for node in stfts:
        if not any(a.name == "onesided" for a in node.attribute):
            node.attribute.append(helper.make_attribute("onesided", 1))
            changed = True
    declared = {v.name for v in graph.value_info} | {o.name for o in graph.output if _dims(o.type)}
    constants = _constants(model) if stfts else {}
    for node in stfts:
        name, dims = node.output[0], output_dims(node, types, constants)
        if dims is None or name in declared or _dims(types.get(name)) is not None:
            continue
        elem = types[node.input[0]].tensor_type.elem_type
        found = helper.make_tensor_type_proto(elem, dims)
        outputs = [o for o in graph.output if o.name == name]
        if outputs:
            outputs[0].type.CopyFrom(found)
        else:
            graph.value_info.append(helper.make_value_info(name, found))
        changed = True
    return changed
