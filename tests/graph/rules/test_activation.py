"""Table of cases for activations, Softmax and LogSoftmax."""

import numpy as np
import pytest

from .harness import Case, check, node

X = {"x": (2, 3, 4)}
CASES = [
    Case("relu", [node("Relu", ["x"])], X),
    Case("leaky_relu", [node("LeakyRelu", ["x"], alpha=0.1)], X),
    Case("prelu", [node("PRelu", ["x", "s"])], X, {"s": np.array([[0.1], [0.2], [-0.3]])}),
    Case("elu", [node("Elu", ["x"], alpha=0.7)], X),
    Case("selu", [node("Selu", ["x"])], X),
    Case("clip_inputs", [node("Clip", ["x", "lo", "hi"])], X, {"lo": np.array(-1.0), "hi": np.array(1.0)}),
    Case("clip_max_only", [node("Clip", ["x", "", "hi"])], X, {"hi": np.array(0.5)}),
    Case("clip_attributes", [node("Clip", ["x"], min=-1.0, max=1.0)], X, min_opset=10, max_opset=10),
    Case(
        "relu6",
        [node("Clip", ["x", "lo", "hi"])],
        X,
        {"lo": np.array(0.0), "hi": np.array(6.0)},
        low=-3,
        high=9,
    ),
    # RT-DETR's boxes: invalid anchors are inf (and large ones saturate the Sigmoid to exactly 1 or 0),
    # then inverse_sigmoid clamps at 0, 1 and eps: Clip at its bounds, all with a zero derivative
    Case(
        "inverse_sigmoid_of_saturated_boxes",
        [
            node("Add", ["x", "anchors"], "logits"),
            node("Sigmoid", ["logits"], "boxes"),
            node("Clip", ["boxes", "zero", "one"], "clamped"),
            node("Clip", ["clamped", "eps", ""], "x1"),
            node("Sub", ["one", "clamped"], "rest"),
            node("Clip", ["rest", "eps", ""], "x2"),
            node("Div", ["x1", "x2"], "ratio"),
            node("Log", ["ratio"]),
        ],
        X,
        {
            "anchors": np.array([np.inf, -np.inf, 40.0, -40.0, 0.5, -0.3] * 4).reshape(2, 3, 4),
            "zero": np.array(0.0),
            "one": np.array(1.0),
            "eps": np.array(1e-5),
        },
    ),
    Case("sigmoid", [node("Sigmoid", ["x"])], X),
    Case("hard_sigmoid", [node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], X),
    Case("hard_swish", [node("HardSwish", ["x"])], X, min_opset=14, low=-5, high=5),
    Case("tanh", [node("Tanh", ["x"])], X),
    Case("softplus", [node("Softplus", ["x"])], X),
    Case("mish", [node("Mish", ["x"])], X, min_opset=18),
    Case("gelu", [node("Gelu", ["x"])], X, min_opset=20),
    Case("gelu_tanh", [node("Gelu", ["x"], approximate="tanh")], X, min_opset=20),
    Case("softmax_last", [node("Softmax", ["x"])], X),
    Case("softmax_axis1", [node("Softmax", ["x"], axis=1)], X),
    Case("log_softmax_last", [node("LogSoftmax", ["x"], axis=-1)], X),
    Case("log_softmax_axis1", [node("LogSoftmax", ["x"], axis=1)], X),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
