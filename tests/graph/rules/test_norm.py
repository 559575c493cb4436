"""Table of cases for BatchNormalization (inference), InstanceNormalization, LayerNormalization."""

import numpy as np
import pytest

from .harness import Case, check, node

R = np.random.default_rng(4)
C3 = {
    "scale": R.normal(size=3),
    "bias": R.normal(size=3),
    "mean": R.normal(size=3),
    "var": R.uniform(0.5, 2.0, size=3),
}
CASES = [
    Case(
        "batch_norm",
        [node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], epsilon=1e-3)],
        {"x": (2, 3, 4, 4)},
        C3,
    ),
    Case(
        "batch_norm_2d",
        [node("BatchNormalization", ["x", "scale", "bias", "mean", "var"])],
        {"x": (4, 3)},
        C3,
    ),
    Case(
        "instance_norm",
        [node("InstanceNormalization", ["x", "scale", "bias"], epsilon=1e-2)],
        {"x": (2, 3, 4, 5)},
        {"scale": C3["scale"], "bias": C3["bias"]},
    ),
    Case(
        "layer_norm_last",
        [node("LayerNormalization", ["x", "scale", "bias"], epsilon=1e-2)],
        {"x": (2, 4, 3)},
        {"scale": C3["scale"], "bias": C3["bias"]},
        min_opset=17,
    ),
    Case(
        "layer_norm_two_axes",
        [node("LayerNormalization", ["x", "scale"], axis=-2)],
        {"x": (2, 4, 3)},
        {"scale": R.normal(size=(4, 3))},
        min_opset=17,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
