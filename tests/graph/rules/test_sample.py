"""Table of cases for GridSample: bilinear (``linear`` from opset 20) and nearest sampling, every
padding mode, both ``align_corners``, with grid points inside and outside the image, differentiated
with respect to the image and the grid (nearest: the image only; its grid is piecewise constant)."""

import numpy as np
import pytest

from .harness import Case, check, node

GRID = np.random.default_rng(7).uniform(-1.2, 1.2, size=(1, 3, 4, 2))
CASES = [
    Case(
        f"grid_sample_{mode}_{padding}_align{align}",
        [node("GridSample", ["x", "g"], mode=mode, padding_mode=padding, align_corners=align)],
        {"x": (2, 3, 5, 4), "g": (2, 3, 6, 2)},
        min_opset=20,
        low=-1.3,
        high=1.3,
    )
    for mode in ("linear",)  # opsets 16-19 spell it "bilinear" (same rule); the reference evaluator does not
    for padding in ("zeros", "border", "reflection")
    for align in (0, 1)
] + [
    Case(
        f"grid_sample_nearest_{padding}",
        [
            node("GridSample", ["x", "g"], "s", mode="nearest", padding_mode=padding, align_corners=0),
            node("Mul", ["s", "s"]),
        ],
        {"x": (1, 2, 4, 5)},
        {"g": GRID},
        min_opset=16,
    )
    for padding in ("zeros", "reflection")
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
