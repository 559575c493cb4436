"""``inspect``: what the rewriter sees in a model, as a plain dict for the CLI to print.

Inputs and outputs, the image input's layout and type (and, for integer pixels, the float tensor
gradients start from), the score and what it is (logit, pre-softmax, pre-sigmoid), the target-layer
candidates with their layouts (the default first), one candidate per scale for multi-scale models
(with the grid and stride at a probe size), the head and whether CAM applies, and every node
on the input-gradient path that cannot be differentiated (listed instead of raised); for a text
encoder, the tokenizer and class names beside its file. A model
already rewritten by onnx_xai is described by the rewrite's own record.
"""

from __future__ import annotations

import json
import os

from ..graph.analysis import probability_outputs
from ..graph.attention import attention_input, attention_mixers
from ..graph.augment import analyze
from ..graph.autodiff import path_problems, prepare_path
from ..graph.branches import PAST_PREFIXES, PRESENT_PREFIX, has_cache_branch
from ..graph.contract import METADATA_KEY
from ..graph.emitter import Emitter
from ..graph.head import CamHead
from ..graph.info import GraphInfo
from ..graph.layer import candidates, convention
from ..graph.model_io import load_model
from ..graph.paths import dominators
from ..graph.rules.relevance import relevance_obstacles
from ..graph.scales import PROBE_SIZE, scale_candidates
from ..graph.signals import signal_candidates
from ..graph.trees import read_ensemble
from ..objectives.labels import labels_from_metadata
from ..objectives.seeds import output_kind
from ..support.errors import InputError, ModelError


def _describe(info: GraphInfo, name: str) -> dict:
    import onnx

    shape = info.shape(name)
    elem = info.dtype(name)
    return {
        "name": name,
        "shape": list(shape) if shape is not None else None,
        "type": onnx.TensorProto.DataType.Name(elem) if elem else "unknown",
    }


def inspect_model(
    model, target_layer: str | None = None, input_name: str | None = None, output_name: str | None = None
) -> dict:
    """A description of the model as the rewriter sees it (see the module docstring); for a model
    rewritten by onnx_xai, ``"rewritten": True`` and the record of the rewrite stored in it."""
    proto, _ = load_model(model)
    stored = next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
    if stored is not None:
        info = GraphInfo(proto)
        return {
            "rewritten": True,
            "rewrite": json.loads(stored),
            "opset": info.opset,
            "nodes": len(info.graph.node),
            "inputs": [_describe(info, n) for n in info.graph_input_names()],
            "outputs": [_describe(info, o.name) for o in info.graph.output],
        }
    a = analyze(proto, target_layer, input_name, output_name)
    info = a.info
    e = Emitter(info)
    path = prepare_path(e, a.score.name, [a.source])
    problems = path_problems(e, path)
    found = candidates(info, a.source, a.score.name, a.layouts) if a.kind == "image" else []
    if a.kind == "signal":
        doms = [d for d in dominators(info, a.source, a.score.name) if d != a.score.name]
        found = signal_candidates(info, doms, a.layouts)
    if a.views and all(c.name != a.view.name for c in found):
        found.insert(0, a.view)
    outputs = _detector_roles(
        [_output(info, o.name, a.layouts.get(o.name), a.kind) for o in info.graph.output], info, a
    )
    return {
        "kind": a.kind,
        "opset": info.opset,
        "nodes": len(info.graph.node),
        "inputs": [_describe(info, n) for n in info.graph_input_names()],
        "outputs": outputs,
        "image_input": a.image,
        "differentiated": a.source,
        "explained_output": a.output,
        "score": a.score.name,
        **_score_kind(proto, a),
        "score_moves": [n.op_type for n in a.score.moves],
        "layout": a.layout,
        "layout_note": a.layout_note,
        "target_layer": a.views[0].name if a.views else None,
        "convention": convention(a.views, target_layer is not None, _attention(info, a.source))
        if a.views
        else f"none: a {a.kind} model (the CAM family needs a feature map)",
        "candidates": [
            _describe(info, c.name) | {"op": info.producer[c.name].op_type} | c.describe() for c in found
        ],
        "target_layers": [v.name for v in a.views],
        "probe_size": PROBE_SIZE,
        "scales": [
            _describe(info, s.view.name)
            | s.view.describe()
            | {"op": info.producer[s.view.name].op_type, "grid": list(s.grid), "stride": s.stride}
            for s in (scale_candidates(info, a.source, a.score.name, a.layouts) if a.kind == "image" else [])
        ],
        "cam": isinstance(a.head, CamHead),
        "head": " -> ".join(a.head.ops) if isinstance(a.head, CamHead) else a.head,
        "not_differentiable": problems,
        "no_relevance_rule": relevance_obstacles(e, path),
        "class_names": _class_names(proto, info.shape(a.score.name)),
        **_text_files(model, a.kind, outputs),
        **_cache(proto),
        "rewritten": False,
    }


def _text_files(model, kind: str, outputs: list[dict]) -> dict:
    """A text encoder's tokenizer and class names, found beside its file (:mod:`onnx_xai.text.files`);
    an output of one value per token of that tokenizer's vocabulary is said to be a language model's
    next-token logits (in ``outputs``)."""
    if kind != "tokens" or not isinstance(model, (str, os.PathLike)):
        return {}
    from ..text.files import describe_text_model

    found = describe_text_model(model)
    vocabulary = (found["tokenizer"] or {}).get("vocabulary")
    for o in outputs:
        shape = o.get("shape") or []
        if len(shape) == 3 and vocabulary and shape[-1] == vocabulary:
            o["kind"] = "next-token logits: a language model, explain a generation with --prompt"
        elif o["name"].startswith(PRESENT_PREFIX):
            o["kind"] = "the cache: fed back as past key values while generating"
    return {"text": found}


def _cache(proto) -> dict:
    """A language model's cache inputs (as the file has them: the analysis of a merged decoder keeps
    its no-cache branch) and whether a ``use_cache_branch`` flag chooses between two graphs."""
    past = [i.name for i in proto.graph.input if i.name.startswith(PAST_PREFIXES)]
    return {"cache": {"inputs": past, "merged": has_cache_branch(proto)}} if past else {}


def _score_kind(proto, a) -> dict:
    """The score's kind, and for a tree ensemble whose trees cannot be read back to the input's
    columns why its output is explained as given (``trees_unread``) instead of its margin."""
    if a.score.kind != "margin":
        return {"score_kind": a.score.kind}
    try:
        read_ensemble(proto, a.output)
    except ModelError as exc:
        return {"score_kind": "output", "trees_unread": str(exc)}
    return {"score_kind": "margin"}


def _attention(info: GraphInfo, source: str) -> str | None:
    """The tensor the model's last attention normalizes, for a transformer; else None."""
    mixers = attention_mixers(info, source)
    return attention_input(info, mixers[-1], source) if mixers else None


def _output(info: GraphInfo, name: str, layout: str | None, kind: str) -> dict:
    """An output described with its layout (4-D, as tracked) and the objective it calls for (a
    text encoder's ``[N, T, K]``: a label per token, explained one token at a time)."""
    described = _describe(info, name) | {"layout": layout}
    if kind == "tokens" and len(described["shape"] or ()) == 3:
        return described | {"kind": "a label per token: explain one with --token"}
    try:
        described["kind"] = output_kind(tuple(described["shape"] or ()), layout)
    except InputError:
        described["kind"] = None
    return described


def _detector_roles(outputs: list[dict], info: GraphInfo, a) -> list[dict]:
    """The outputs with, for a detector's, what they hold (``detector``): scores and where their boxes
    are and how they decode, boxes of which scores, or a YOLO-style layout of boxes and scores."""
    from ..objectives.boxes import detector_outputs
    from ..objectives.seeds import detection_layout

    if a.kind == "tokens":
        return outputs
    shapes = {o["name"]: tuple(o["shape"] or ()) for o in outputs}
    image = info.shape(a.image) or ()
    size = tuple(image[a.layout.index(axis)] for axis in "HW") if len(image) == 4 else ()
    probabilities = probability_outputs(info)
    fixed = size if all(isinstance(d, int) for d in size) and size else None
    pairs = detector_outputs(shapes, fixed, probabilities)  # type: ignore[arg-type]
    boxes_of = {box: scores for scores, (box, _, _) in pairs.items()}
    names = _class_names(a.model, None)
    for o in outputs:
        if o["name"] in pairs:
            box, decoder, why = pairs[o["name"]]
            layout = detection_layout(shapes[o["name"]], True, names["count"] if names else None)
            found = decoder.describe() if decoder is not None else why
            o["detector"] = f"{layout.describe()}; {found}"
        elif o["name"] in boxes_of:
            o["detector"] = f"boxes of {boxes_of[o['name']]!r}"
        elif o.get("kind") == "detection" and len(shapes[o["name"]]) == 3:
            classes = names["count"] if names else None
            layout = detection_layout(shapes[o["name"]], o["name"] in probabilities, classes)
            o["detector"] = layout.describe()
    return outputs


def _class_names(proto, score_shape) -> dict | None:
    """How many class names the model's metadata holds, and under which key
    (:mod:`onnx_xai.objectives.labels`)."""
    classes = (
        score_shape[-1]
        if score_shape and len(score_shape) == 2 and isinstance(score_shape[-1], int)
        else None
    )
    found = labels_from_metadata({p.key: p.value for p in proto.metadata_props}, classes)
    return {"count": len(found[0]), "key": found[1], "first": found[0][:3]} if found else None
