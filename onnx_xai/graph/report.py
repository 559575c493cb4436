"""``inspect``: what the rewriter sees in a model, as a plain dict for the CLI to print.

Inputs and outputs, the layout, the score, the target-layer candidates (the default first), the head
and whether CAM applies, and every node on the input-gradient path that cannot be differentiated
(listed instead of raised).
"""
from __future__ import annotations

from . import analysis
from .augment import analyze
from .autodiff import path_problems, prepare_path
from .emitter import Emitter
from .info import GraphInfo


def _describe(info: GraphInfo, name: str) -> dict:
    import onnx

    shape = info.shape(name)
    elem = info.dtype(name)
    return {"name": name, "shape": list(shape) if shape is not None else None,
            "type": onnx.TensorProto.DataType.Name(elem) if elem else "unknown"}


def inspect_model(model, target_layer: str | None = None, input_name: str | None = None,
                  output_name: str | None = None) -> dict:
    """A description of the model as the rewriter sees it (see the module docstring)."""
    a = analyze(model, target_layer, input_name, output_name)
    info = a.info
    e = Emitter(info)
    problems = path_problems(e, prepare_path(e, a.score, [a.image]))
    return {
        "opset": info.opset, "nodes": len(info.graph.node),
        "inputs": [_describe(info, n) for n in info.graph_input_names()],
        "outputs": [_describe(info, o.name) for o in info.graph.output],
        "image_input": a.image, "explained_output": a.output, "score": a.score, "layout": a.layout,
        "target_layer": a.target,
        "candidates": [_describe(info, n) | {"op": info.producer[n].op_type}
                       for n in analysis.target_candidates(info, a.image, a.score, a.layout)],
        "cam": isinstance(a.head, analysis.CamHead),
        "head": " -> ".join(a.head.ops) if isinstance(a.head, analysis.CamHead) else a.head,
        "not_differentiable": problems,
    }
