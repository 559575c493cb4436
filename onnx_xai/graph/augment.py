"""``augment``: any ONNX CNN classifier in, an ordinary ONNX model with explanation outputs out.

The rewritten-model contract (DESIGN.md section 2, documented in the README): an extra input
``xai_target`` int64 [N] (-1 = top-1 class), the outputs ``xai_score``, ``xai_target_used`` and,
per requested output set, ``xai_activation``, ``xai_activation_grad``, ``xai_gradcam``, ``xai_cam``
and ``xai_input_grad``; the graph is pruned to the requested sets, and
``metadata_props["onnx_xai"]`` describes it so that the runtime never re-derives anything.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..errors import CamNotApplicableError, InputError, ModelError
from . import analysis
from .analysis import CamHead, cam_head, check_target_layer, image_input, layout_of, score_tensor
from .assemble import build_model
from .autodiff import backward
from .batch import check_batch_free, free_batch, has_static_batch_of_one
from .emitter import Emitter
from .info import GraphInfo
from .simplify import fold_zero_pads
from .model_io import load_model

OUTPUT_SETS = ("cam", "gradcam", "input_grad")
METADATA_KEY = "onnx_xai"
MIN_OPSET = 11


@dataclass
class Analysis:
    """What ``augment`` found out about a model (its private, batch-freed copy included)."""
    model: onnx.ModelProto
    info: GraphInfo
    sha256: str
    image: str
    score: str
    output: str
    target: str
    layout: str
    head: CamHead | str

    def metadata(self) -> dict:
        """The description stored in ``metadata_props["onnx_xai"]`` (without the outputs)."""
        return {"format": 1, "source_sha256": self.sha256, "target_layer": self.target,
                "score": self.score, "input": self.image, "output": self.output, "layout": self.layout,
                "cam": isinstance(self.head, CamHead),
                "head": self.head.ops if isinstance(self.head, CamHead) else self.head}


def analyze(model: str | os.PathLike | bytes | onnx.ModelProto, target_layer: str | None = None,
            input_name: str | None = None, output_name: str | None = None) -> Analysis:
    """Find the image input, the score, the target layer and the head of a classifier.

    Arguments and errors as :func:`augment`.
    """
    proto, sha256 = load_model(model)
    if METADATA_KEY in {p.key for p in proto.metadata_props}:
        raise ModelError("the model was already rewritten by onnx_xai")
    info = GraphInfo(proto)
    if info.opset < MIN_OPSET:
        raise ModelError(f"the model uses opset {info.opset}; onnx_xai needs opset {MIN_OPSET} or newer "
                         "(convert it with onnx.version_converter)")
    image = image_input(info, input_name)
    if has_static_batch_of_one(info, image):
        info = GraphInfo(free_batch(proto, info))
    if fold_zero_pads(proto, info):
        info = GraphInfo(proto)
    score = score_tensor(info, output_name)
    check_batch_free(info, score)
    layout = layout_of(info, image)
    target = target_layer or analysis.target_layer(info, image, score, layout)
    check_target_layer(info, target, image, score)
    head = cam_head(info, target, score, layout)
    return Analysis(proto, info, sha256, image, score, output_name or info.graph.output[0].name, target,
                    layout, head)


def augment(model: str | os.PathLike | bytes | onnx.ModelProto | Analysis,
            target_layer: str | None = None, outputs: Sequence[str] = OUTPUT_SETS,
            input_name: str | None = None, output_name: str | None = None) -> onnx.ModelProto:
    """Rewrite a classifier so that it also outputs activations, gradients and CAM maps.

    Args:
        model: path, serialized bytes or ModelProto (never modified), or the result of
            :func:`analyze` (then the other selection arguments are ignored).
        target_layer: name of the 4-D tensor to explain; default: the input of the head's spatial
            collapse (see :mod:`onnx_xai.graph.analysis`).
        outputs: the output sets to emit, any of ``"cam"``, ``"gradcam"``, ``"input_grad"``.
        input_name: the image input (default: the first 4-D float input).
        output_name: the output whose (pre-softmax) score is explained (default: the first).

    Returns:
        A new ModelProto following the rewritten-model contract.

    Raises:
        ModelError: the model cannot be read or is not a classifier this tool understands.
        UnsupportedModelError: nodes on the gradient path cannot be differentiated (all listed).
        CamNotApplicableError: ``"cam"`` was asked for on a head that is not GAP -> linear.
    """
    wanted = _output_sets(outputs)
    a = model if isinstance(model, Analysis) else analyze(model, target_layer, input_name, output_name)
    if "cam" in wanted and not isinstance(a.head, CamHead):
        raise CamNotApplicableError(f"CAM needs a global-average-pool -> linear head: {a.head}")
    rewritten = _emit(a.info, a.image, a.score, a.target, a.layout, a.head, wanted)
    meta = {**a.metadata(), "outputs": [o.name for o in rewritten.graph.output if o.name.startswith("xai_")],
            "output_sets": list(wanted)}
    helper.set_model_props(rewritten, {**{p.key: p.value for p in a.model.metadata_props},
                                       METADATA_KEY: json.dumps(meta)})
    return rewritten


def _output_sets(outputs: Sequence[str]) -> tuple[str, ...]:
    if isinstance(outputs, str):
        outputs = [outputs]
    unknown = [o for o in outputs if o not in OUTPUT_SETS]
    if unknown or not outputs:
        raise InputError(f"unknown output set(s) {unknown}; choose from {', '.join(OUTPUT_SETS)}")
    return tuple(o for o in OUTPUT_SETS if o in outputs)


def _emit(info: GraphInfo, image: str, score: str, target: str, layout: str, head, wanted
          ) -> onnx.ModelProto:
    e = Emitter(info)
    batch = (info.shape(score) or info.shape(image) or ("N",))[0]
    target_in = e.reserve("xai_target")
    used = _resolve_target(e, score, target_in)
    score_out = e.squeeze(e.op("GatherElements", [score, e.unsqueeze(used, [1])], axis=1), [1])
    outs = [_publish(e, "xai_score", score_out, info.dtype(score), [batch]),
            helper.make_tensor_value_info(used, onnx.TensorProto.INT64, [batch])]
    wrt = ([target] if "gradcam" in wanted else []) + ([image] if "input_grad" in wanted else [])
    grads = backward(e, score, _seed(e, score, used), wrt) if wrt else {}
    elem, act_shape = info.dtype(target), _nchw_shape(info.shape(target), layout)
    map_shape = [act_shape[0], act_shape[2], act_shape[3]]
    activation = _channels_first(e, target, layout)
    if "cam" in wanted or "gradcam" in wanted:
        outs.append(_publish(e, "xai_activation", activation, elem, act_shape))
    if "gradcam" in wanted:
        d_activation = _channels_first(e, grads[target], layout)
        outs.append(_publish(e, "xai_activation_grad", d_activation, elem, act_shape))
        outs.append(_publish(e, "xai_gradcam", _gradcam(e, activation, d_activation), elem, map_shape))
    if "cam" in wanted:
        outs.append(_publish(e, "xai_cam", _cam(e, activation, head, used), elem, map_shape))
    if "input_grad" in wanted:
        outs.append(_publish(e, "xai_input_grad", grads[image], info.dtype(image),
                             list(info.shape(image))))
    target_vi = helper.make_tensor_value_info(target_in, onnx.TensorProto.INT64, [batch])
    return build_model(info, e, [target_vi], outs)


def _nchw_shape(shape, layout: str) -> list:
    shape = list(shape) if shape is not None else [None] * 4
    return shape if layout == "NCHW" else [shape[0], shape[3], shape[1], shape[2]]


def _publish(e: Emitter, public: str, name: str, elem_type: int, shape: list) -> onnx.ValueInfoProto:
    """Expose tensor ``name`` as the graph output ``public``."""
    e.op("Identity", [name], out=[e.reserve(public)])
    return helper.make_tensor_value_info(public, elem_type, shape)


def _resolve_target(e: Emitter, score: str, target_in: str) -> str:
    """``xai_target_used``: the requested class, or the top-1 class where -1 was given."""
    top1 = e.op("ArgMax", [score], axis=1, keepdims=0)
    negative = e.op("Less", [target_in, e.const(np.array(0, "int64"))])
    return e.op("Where", [negative, top1, target_in], out=[e.reserve("xai_target_used")])


def _seed(e: Emitter, score: str, used: str) -> str:
    """OneHot(target_used, K) as the cotangent of the score, so a batch is explained in one run."""
    classes = e.op("Gather", [e.op("Shape", [score]), e.const(np.array(1, "int64"))])
    rng = e.op("Range", [e.const(np.array(0, "int64")), classes,
                         e.const(np.array(1, "int64"))])
    return e.cast_like(e.op("Equal", [rng, e.unsqueeze(used, [1])]), score)


def _channels_first(e: Emitter, name: str, layout: str) -> str:
    return name if layout == "NCHW" else e.op("Transpose", [name], perm=[0, 3, 1, 2])


def _gradcam(e: Emitter, activation: str, d_activation: str) -> str:
    """ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dS/dA_k."""
    alpha = e.reduce("ReduceMean", d_activation, [2, 3], keepdims=True)
    return e.op("Relu", [e.reduce("ReduceSum", e.op("Mul", [alpha, activation]), [1], keepdims=False)])


def _cam(e: Emitter, activation: str, head: CamHead, used: str) -> str:
    """sum_k w[c, k] A_k with the head's weights, read in-graph from the original initializer."""
    if head.transposed:
        rows = e.op("Transpose", [e.op("Gather", [head.weight, used], axis=1)], perm=[1, 0])
    else:
        rows = e.op("Gather", [head.weight, used], axis=0)
    if head.alpha != 1.0:
        rows = e.op("Mul", [rows, e.scalar(head.alpha, like=head.weight)])
    weights = e.unsqueeze(rows, [2, 3])
    return e.reduce("ReduceSum", e.op("Mul", [weights, activation]), [1], keepdims=False)
