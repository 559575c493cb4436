"""Table of cases for GridSample: bilinear (``linear`` from opset 20) and nearest sampling, every
padding mode, both ``align_corners``, with grid points inside and outside the image, differentiated
with respect to the image and the grid (nearest: the image only; its grid is piecewise constant)."""

import numpy as np
import pytest

from onnx_xai.graph.assemble import vjp_model

from ...reference_runtime import float64_runner
from .harness import Case, build, check, node

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


def test_infinite_grid_values_leave_the_gradients_finite():
    """A grid point at infinity (undefined: runtimes differ) samples nothing: the gradients are
    those of the same grid with that point far outside the image, with no NaN spread."""
    case = CASES[0]  # bilinear, zeros padding
    model = vjp_model(build(case, 20, np.float64), "y", ["x", "g"])
    runner = float64_runner(model)
    rng = np.random.default_rng(0)
    x, g = rng.uniform(-1, 1, (2, 3, 5, 4)), rng.uniform(-1.3, 1.3, (2, 3, 6, 2))
    ybar = rng.standard_normal((2, 3, 3, 6))
    far, infinite = g.copy(), g.copy()
    far[0, 1, 2], infinite[0, 1, 2] = [50.0, 0.2], [np.inf, 0.2]
    names = ["xai_grad/x", "xai_grad/g"]
    expected = runner.run(names, {"x": x, "g": far, "xai_seed": ybar})
    got = runner.run(names, {"x": x, "g": infinite, "xai_seed": ybar})
    assert all(np.isfinite(a).all() for a in got)
    assert np.allclose(got[0], expected[0], atol=1e-12) and np.allclose(got[1], expected[1], atol=1e-12)
