"""A LinearClassifier is explained on its margins s = x W^T + b, before its post-transform, as the
image rule explains a logit and a tree ensemble its margin: per post-transform and coefficient
layout, the rewritten model's score and input gradient against s and W computed with numpy; where
onnxruntime writes no post-transform, the output stays the score."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx_xai.graph.augment import analyze, augment

RNG = np.random.default_rng(8)
ROWS = RNG.normal(size=(6, 4)).astype(np.float32)


def classifier(post: str, rows: int, labels: int) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    w = RNG.normal(size=(rows, 4)).astype(np.float32)
    b = RNG.normal(size=rows).astype(np.float32)
    node = helper.make_node(
        "LinearClassifier",
        ["X"],
        ["label", "scores"],
        domain="ai.onnx.ml",
        coefficients=w.ravel().tolist(),
        intercepts=b.tolist(),
        classlabels_ints=list(range(labels)),
        post_transform=post,
    )
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", labels]),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8), w, b


def rewritten_score_and_gradient(model: onnx.ModelProto, target: np.ndarray):
    session = ort.InferenceSession(
        augment(model, outputs=["input_grad"]).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(["xai_score", "xai_input_grad"], {"X": ROWS, "xai_target": target})


@pytest.mark.parametrize(
    "post,rows,labels,kind",
    [
        ("LOGISTIC", 3, 3, "pre-sigmoid"),
        ("SOFTMAX", 3, 3, "pre-softmax"),
        ("SOFTMAX_ZERO", 3, 3, "pre-softmax"),
        ("PROBIT", 3, 3, "pre-probit"),
        ("LOGISTIC", 1, 2, "pre-sigmoid"),  # onnxruntime writes [1 - sigmoid(s), sigmoid(s)]: margins [-s, s]
        ("LOGISTIC", 2, 2, "pre-sigmoid"),
    ],
)
def test_the_margin_before_the_post_transform_is_explained(post, rows, labels, kind):
    model, w, b = classifier(post, rows, labels)
    assert analyze(model).score.kind == kind
    s = ROWS.astype(np.float64) @ w.T.astype(np.float64) + b
    weights = w.astype(np.float64)
    if rows == 1 and labels == 2:
        s, weights = np.concatenate([-s, s], axis=1), np.concatenate([-weights, weights])
    target = np.arange(len(ROWS)) % labels
    score, gradient = rewritten_score_and_gradient(model, target)
    np.testing.assert_allclose(score, s[np.arange(len(ROWS)), target], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient, weights[target], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("post,rows,labels", [("NONE", 3, 3), ("SOFTMAX", 1, 2), ("NONE", 1, 2)])
def test_an_output_onnxruntime_leaves_linear_stays_the_score(post, rows, labels):
    model, _, _ = classifier(post, rows, labels)
    a = analyze(model)
    assert (a.score.name, a.score.kind) == ("scores", "logit")
    written = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    target = np.arange(len(ROWS)) % labels
    score, _ = rewritten_score_and_gradient(model, target)
    (scores,) = written.run(["scores"], {"X": ROWS})
    np.testing.assert_allclose(score, scores[np.arange(len(ROWS)), target], rtol=1e-6)
