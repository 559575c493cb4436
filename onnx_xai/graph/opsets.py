"""The model at an ``ai.onnx`` opset the rules can emit, its ``ai.onnx.ml`` ops kept as they are.

The rules emit ops of opset 11 or newer (Pad's pads and Clip's bounds as inputs, negative Gather
indices, Range). Converters write older ones: skl2onnx imports the lowest opset its ``ai.onnx`` ops
need (9 for a scaler and logistic regression pipeline, whose work is all ``ai.onnx.ml``), onnxmltools
9 for a LightGBM classifier and 8 for a regressor, and onnxmltools' XGBoost imports ``ai.onnx.ml``
only. :func:`at_rule_opset` upgrades a model that uses ``ai.onnx`` ops below :data:`MIN_OPSET` with
ONNX's version converter (which leaves the ``ai.onnx.ml`` nodes as they are), and raises or adds the
``ai.onnx`` import of a model that uses no ``ai.onnx`` op; the outputs are unchanged (the converter
rewrites an op only where its semantics moved between opsets).
"""

from __future__ import annotations

import onnx
from onnx import helper, version_converter

from ..support.errors import ModelError

MIN_OPSET = 11
DEFAULT_DOMAINS = ("", "ai.onnx")


def ai_onnx_opset(model: onnx.ModelProto) -> int | None:
    """The version of the model's ``ai.onnx`` import, None when it has none."""
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)


def at_rule_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its ``ai.onnx`` opset at :data:`MIN_OPSET` or newer: the model itself when it
    is already, else a new model (the given one is never changed).

    Raises:
        ModelError: ONNX's version converter cannot upgrade one of the model's ops.
    """
    version = ai_onnx_opset(model)
    if version is not None and version >= MIN_OPSET:
        return model
    if version is not None and any(n.domain in DEFAULT_DOMAINS for n in model.graph.node):
        try:
            return version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError and ValidationError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot upgrade the model from opset {version} to {MIN_OPSET}, which the rewrite "
                f"needs: {first}"
            ) from None
    upgraded = onnx.ModelProto()
    upgraded.CopyFrom(model)
    kept = [o for o in upgraded.opset_import if o.domain not in DEFAULT_DOMAINS]
    del upgraded.opset_import[:]
    upgraded.opset_import.extend([helper.make_opsetid("", MIN_OPSET), *kept])
    return upgraded
