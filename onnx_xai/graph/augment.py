"""``augment``: an ONNX model in, an ordinary ONNX model with explanation outputs out.

The rewritten-model contract is :mod:`onnx_xai.graph.contract` (names, output sets, the record stored in
``metadata_props``), documented in the README; the graph is pruned to the requested output sets,
and the record describes the rewrite so that the runtime never re-derives anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..support.errors import CamNotApplicableError, InputError, ModelError
from ..support.progress import stage
from . import contract as c
from .analysis import (
    ID_TYPES,
    OBJECTIVES,
    Score,
    default_output,
    differentiable_input,
    explained_input,
    input_kind,
    probability_outputs,
    score_tensor,
)
from .assemble import build_model
from .autodiff import backward, undo_moves
from .batch import check_batch_free, free_batch, static_batch
from .branches import without_cache_branch
from .contract import LayerView, RewriteRecord
from .emitter import Emitter
from .head import CamHead, cam_head
from .info import GraphInfo
from .layer import check_layer, default_layer, view_of
from .layer_outputs import input_outputs, layer_outputs
from .layout import NCHW
from .linear_margin import linear_margin
from .model_io import load_model
from .opsets import at_rule_opset
from .paths import dominators
from .publish import as_float32, publish
from .rules import rule_table
from .rules.relevance import COMPOSITES, Composite
from .scales import neck_layers
from .signals import input_layouts, signal_candidates
from .simplify import fold_zero_pads
from .sweeps import deeplift, fullgrad, relevance
from .unfuse import unfuse_embeddings

OUTPUT_SETS = tuple(c.OUTPUT_SETS)
LAYERED_SETS = c.LAYERED_SETS
MAXPOOL_BACKWARDS = ("scatter", "windows")  # the rule tables of MaxPool's two backwards
FLOAT = onnx.TensorProto.FLOAT


@dataclass
class Analysis:
    """What ``augment`` found out about a model (its private, batch-freed copy included)."""

    model: onnx.ModelProto
    info: GraphInfo
    sha256: str
    image: str  # the explained input (a photo, a table's rows, ids ...)
    source: str  # the float tensor gradients are taken for (the input, its first float cast, an embedding)
    moves: list  # the nodes from an integer pixel input to ``source``
    score: Score
    output: str
    layouts: dict[str, str]
    views: list[LayerView]  # the target layers: one or more for an image, none elsewhere unless named
    head: CamHead | str
    kind: str = "image"  # what the explained input is (:data:`.analysis.KINDS`)
    embedded: bool = False  # ``source`` is an embedding of the input's ids, not the input itself
    layout_note: str = ""  # a signal's: how its layout was found (read from the graph, or guessed)

    @property
    def view(self) -> LayerView:
        """The first target layer (the one CAM reads)."""
        if not self.views:
            raise InputError(f"this {self.kind} model has no target layer: name one with target_layer")
        return self.views[0]

    @property
    def layout(self) -> str | None:
        """The explained input's layout: a permutation of NCHW for an image, NCT, NTC or NT for a
        signal."""
        if self.kind == "signal":
            return self.layouts.get(self.image)
        return self.layouts.get(self.image, NCHW) if self.kind == "image" else None

    @property
    def point(self) -> str:
        """The tensor whose gradient is published: the input (an integer input's cast and moves
        undone), or the embedding that reads its ids."""
        return self.source if self.embedded else self.image

    def record(self) -> RewriteRecord:
        """The record stored in the rewritten model (its outputs and sets filled in by augment)."""
        head = self.head
        return RewriteRecord(
            source_sha256=self.sha256,
            input=self.image,
            input_type=onnx.TensorProto.DataType.Name(self.info.dtype(self.image)).lower(),
            layout=self.layout,
            differentiated=self.source,
            output=self.output,
            score=self.score.name,
            score_kind=self.score.kind,
            target=self.views[0].describe() if self.views else None,
            cam=isinstance(head, CamHead),
            head=" -> ".join(head.ops) if isinstance(head, CamHead) else head,
            layers=[v.describe() for v in self.views],
            output_layout=self.layouts.get(self.output),
            probability_outputs=probability_outputs(self.info),
            kind=self.kind,
            per_sample_runs=any(n.op_type == "DynamicQuantizeLinear" for n in self.model.graph.node),
        )


def analyze(
    model: str | os.PathLike | bytes | onnx.ModelProto,
    target_layer: str | Sequence[str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    embedding: str | None = None,
    objective: str = "logit",
) -> Analysis:
    """Find the explained input and point, the score, the target layer and the head of a model.

    Arguments and errors as :func:`augment`.
    """
    proto, sha256 = load_model(model)
    if c.METADATA_KEY in {p.key for p in proto.metadata_props}:
        raise ModelError("the model was already rewritten by onnx_xai")
    proto = at_rule_opset(proto)  # converters write ai.onnx 8-9, or none (onnxmltools' XGBoost)
    unfuse_embeddings(proto)  # onnxruntime's fused embedding layer: its word lookup made a tensor
    without_cache_branch(proto)  # a merged decoder: its generation is attributed without a cache
    info = GraphInfo(proto)
    stage("finding the explained input, the score and the target layer")
    image = explained_input(info, input_name)
    batch = static_batch(info, image)
    if batch is not None:
        info = GraphInfo(free_batch(proto, info, batch))
    if fold_zero_pads(proto, info):
        info = GraphInfo(proto)
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    score = score_tensor(info, output_name, as_given=objective == "probability")
    margin = linear_margin(proto, info, score)
    if margin is not None:  # a linear classifier's raw scores, before its post-transform
        score, info = margin, GraphInfo(proto)
    check_batch_free(info, score.name, batch)
    source, moves = differentiable_input(info, image, embedding)
    ids = info.dtype(image) in ID_TYPES and not info.is_float(image)
    embedded = embedding is not None or (ids and source != image and info.rank(source) != info.rank(image))
    kind = input_kind(info, image, source)
    layouts, layout_note = input_layouts(info, image, kind)
    if kind == "table" and layout_note:
        kind = "signal"  # a raw waveform
    views = (
        _layer_views(info, target_layer, source, score.name, layouts, kind)
        if kind in ("image", "signal") or target_layer
        else []
    )
    head = _head(info, views, score.name)
    return Analysis(
        proto,
        info,
        sha256,
        image,
        source,
        moves,
        score,
        output_name or default_output(info),
        layouts,
        views,
        head,
        kind,
        embedded,
        layout_note,
    )


def _head(info: GraphInfo, views: list[LayerView], score: str) -> CamHead | str:
    if not views:
        return "no target layer"
    if len(views) > 1:
        return "several target layers (CAM reads the one layer the head pools)"
    return cam_head(info, views[0], score)


def _layer_views(
    info: GraphInfo, target_layer, source: str, score: str, layouts: dict, kind: str
) -> list[LayerView]:
    """The target layers named (one name or several), or the default one (for a signal, none
    where no candidate is found: the CAM family is then unavailable)."""
    if not target_layer and kind == "signal":
        doms = [d for d in dominators(info, source, score) if d != score]
        return signal_candidates(info, doms, layouts)[:1]
    if not target_layer:
        views = neck_layers(info, source, score, layouts) or [default_layer(info, source, score, layouts)]
    else:
        names = [target_layer] if isinstance(target_layer, str) else list(target_layer)
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise InputError(
                f"target_layer must be a tensor name or a list of distinct names, not {target_layer!r}"
            )
        views = [view_of(info, name, source, score, layouts) for name in names]
    for view in views:
        check_layer(info, view, source, score)
    return views


def augment(
    model: str | os.PathLike | bytes | onnx.ModelProto | Analysis,
    target_layer: str | None = None,
    outputs: Sequence[str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    seeded: bool | None = None,
    maxpool: str = "scatter",
    composite: Composite | str = "epsilon_plus_flat",
) -> onnx.ModelProto:
    """Rewrite an image model so that it also outputs activations, gradients and CAM maps.

    Args:
        model: path, serialized bytes or ModelProto (never modified), or the result of
            :func:`analyze` (then the other selection arguments are ignored).
        target_layer: name of the tensor to explain (4-D, or a vision transformer's tokens), or a
            list of names (a multi-scale neck: each layer's outputs suffixed ``_1``, ``_2`` ...);
            default: the input of the head's spatial collapse (see :mod:`onnx_xai.graph.layer`).
        outputs: the output sets to emit (:data:`onnx_xai.graph.contract.OUTPUT_SETS`: ``"activation"``,
            ``"cam"``, ``"gradcam"``, ``"input_grad"``, ``"guided"``, ``"deconv"``); default ``"cam"``,
            ``"gradcam"`` and ``"input_grad"``, CAM only on a GAP -> linear head.
        input_name: the image input (default: the first 4-D float input, else integer input).
        output_name: the output whose score is explained (default: the first).
        seeded: take ``xai_seed`` (the score is sum(seed * output) per sample) instead of
            ``xai_target``; default: seeded unless the output is a classifier's ``[N, K]``.
        maxpool: MaxPool's backward: ``"scatter"`` (its Indices and ScatterElements-add, fastest on
            onnxruntime) or ``"windows"`` (window masks and a ConvTranspose: no ScatterElements and
            no MaxPool Indices, for TensorRT and OpenVINO; :mod:`onnx_xai.graph.rules.maxpool_windows`).
        composite: the LRP composite of the ``"relevance"`` output set, a name of
            :data:`onnx_xai.graph.rules.relevance.COMPOSITES` or a ``Composite``.

    Returns:
        A new ModelProto following the rewritten-model contract.

    Raises:
        ModelError: the model cannot be read or is not a classifier this tool understands.
        UnsupportedModelError: nodes on the gradient path cannot be differentiated (all listed).
        CamNotApplicableError: ``"cam"`` was asked for on a head that is not GAP -> linear.
    """
    a = model if isinstance(model, Analysis) else analyze(model, target_layer, input_name, output_name)
    seeded, wanted = _objective_and_sets(a, seeded, outputs)
    if maxpool not in MAXPOOL_BACKWARDS:
        raise InputError(f"maxpool must be one of {', '.join(MAXPOOL_BACKWARDS)}, not {maxpool!r}")
    if isinstance(composite, str):
        if composite not in COMPOSITES:
            raise InputError(f"unknown LRP composite {composite!r}; choose from {', '.join(COMPOSITES)}")
        composite = COMPOSITES[composite]
    rewritten = _emit(a, wanted, seeded, maxpool, composite)
    record = a.record()
    record.composite = composite.name if "relevance" in wanted else None
    record.outputs = [o.name for o in rewritten.graph.output if o.name.startswith("xai_")]
    record.output_sets, record.objective = list(wanted), "seed" if seeded else "class"
    helper.set_model_props(
        rewritten, {**{p.key: p.value for p in a.model.metadata_props}, c.METADATA_KEY: record.to_json()}
    )
    return rewritten


def _objective_and_sets(a: Analysis, seeded: bool | None, outputs) -> tuple[bool, tuple[str, ...]]:
    """Whether the rewrite takes a seed (default: unless the output is a classifier's), and the output
    sets it emits, each checked against what the model allows."""
    classifier = a.info.rank(a.output if a.score.moves else a.score.name) in (2, None)
    seeded = not classifier if seeded is None else bool(seeded)
    if not seeded and not classifier:
        raise ModelError(
            f"the output {a.output!r} has shape {a.info.shape(a.score.name)}, not [batch, classes]: "
            "explain it with a seed (seed=... in the API; --region/--target in the CLI)"
        )
    cam_allowed = isinstance(a.head, CamHead) and not seeded
    wanted = _output_sets(outputs, cam_allowed, bool(a.views))
    layered = [w for w in wanted if w in LAYERED_SETS]
    if layered and not a.views:
        raise InputError(
            f"{', '.join(layered)} needs a target layer, which this {a.kind} model does not have "
            "(name a 4-D feature map with target_layer)"
        )
    if "embedding" in wanted and not a.embedded:
        raise InputError("the embedding output set is for ids explained at their embedding")
    if "cam" in wanted and not cam_allowed:
        raise CamNotApplicableError(
            f"CAM needs a global-average-pool -> linear head: {a.head}"
            if not seeded
            else "CAM needs a class target: it reads the head's class weights"
        )
    return seeded, wanted


def _output_sets(outputs: Sequence[str] | None, cam_allowed: bool, layered: bool) -> tuple[str, ...]:
    if outputs is None:
        found = tuple(
            o for o in c.DEFAULT_SETS if (cam_allowed or o != "cam") and (layered or o not in LAYERED_SETS)
        )
        return found
    if isinstance(outputs, str):
        outputs = [outputs]
    unknown = [o for o in outputs if o not in OUTPUT_SETS]
    if unknown or not outputs:
        raise InputError(f"unknown output set(s) {unknown}; choose from {', '.join(OUTPUT_SETS)}")
    return tuple(o for o in OUTPUT_SETS if o in outputs)


def _emit(
    a: Analysis, wanted: tuple[str, ...], seeded: bool, maxpool: str, composite: Composite
) -> onnx.ModelProto:
    info, e, score = a.info, Emitter(a.info), a.score.name
    batch = (info.shape(score) or info.shape(a.image) or ("N",))[0]
    objective = _replayed(e, a.score)  # the score laid out as the output (the logit where it has moves)
    if seeded:
        seed_vi, seed, score_out, outs = _seeded_objective(e, objective, score, info.shape(a.output))
        used = None
    else:
        target_in = e.reserve(c.TARGET)
        seed_vi = helper.make_tensor_value_info(target_in, onnx.TensorProto.INT64, [batch])
        used = _resolve_target(e, objective, target_in)
        score_out = e.squeeze(e.op("GatherElements", [objective, e.unsqueeze(used, [1])], axis=1), [1])
        seed, outs = (
            _seed(e, objective, used, score),
            [helper.make_tensor_value_info(used, onnx.TensorProto.INT64, [batch])],
        )
    seed = undo_moves(e, list(a.score.moves), seed)  # the objective's seed back on the logit
    outs.insert(0, publish(e, c.SCORE, as_float32(e, score_out, score), [batch]))
    wrt = ([v.name for v in a.views] if "gradcam" in wanted else []) + (
        [a.source] if "input_grad" in wanted else []
    )
    stage(f"differentiating the graph for {', '.join(wanted)}")
    grads = backward(e, score, seed, wrt, rules=rule_table(maxpool)) if wrt else {}  # one sweep serves both
    outs += layer_outputs(e, a, wanted, used, grads) + input_outputs(e, a, wanted, grads, seed, maxpool)
    if "relevance" in wanted:
        outs.append(relevance(e, a, seed, composite))
    if "deeplift" in wanted:
        outs.append(deeplift(e, a, seed))
    if "fullgrad" in wanted:
        outs += fullgrad(e, a, seed, maxpool)
    if "embedding" in wanted:
        outs.append(
            publish(e, c.EMBEDDING, as_float32(e, a.source, a.source), list(info.known_shape(a.source)))
        )
    return build_model(info, e, [seed_vi], outs)


def _replayed(e: Emitter, score) -> str:
    """The score tensor with the output's shape moves replayed on it (:class:`.analysis.Score`)."""
    current = score.name
    for node in score.moves:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        current = e.op(node.op_type, [current, *node.input[1:]], **attrs)
    return current


def _seeded_objective(e: Emitter, objective: str, like: str, shape) -> tuple:
    """The ``xai_seed`` input (float32, the output's ``shape``), the seed in the output's type (that of
    the forward tensor ``like``), and the per-sample score sum(seed * objective)."""
    seed_in = e.reserve(c.SEED)
    seed_vi = helper.make_tensor_value_info(seed_in, FLOAT, list(shape) if shape is not None else None)
    seed = seed_in if e.info.dtype(like) == FLOAT else e.cast_like(seed_in, like)
    flat = e.ints([0, -1])
    product = e.op("Mul", [e.op("Reshape", [objective, flat]), e.op("Reshape", [seed, flat])])
    return seed_vi, seed, e.reduce("ReduceSum", product, [1], keepdims=False), []


def _resolve_target(e: Emitter, score: str, target_in: str) -> str:
    """``xai_target_used``: the requested class, or the top-1 class where -1 was given."""
    top1 = e.op("ArgMax", [score], axis=1, keepdims=0)
    negative = e.op("Less", [target_in, e.const(np.array(0, "int64"))])
    return e.op("Where", [negative, top1, target_in], out=[e.reserve(c.TARGET_USED)])


def _seed(e: Emitter, score: str, used: str, like: str) -> str:
    """OneHot(target_used, K) as the cotangent of the score (in the type of the forward tensor
    ``like``), so a batch is explained in one run."""
    classes = e.op("Gather", [e.op("Shape", [score]), e.const(np.array(1, "int64"))])
    rng = e.op("Range", [e.const(np.array(0, "int64")), classes, e.const(np.array(1, "int64"))])
    return e.cast_like(e.op("Equal", [rng, e.unsqueeze(used, [1])]), like)
