"""Table of cases for QuantizeLinear/DequantizeLinear: the straight-through estimator.

The round trip ``DequantizeLinear(QuantizeLinear(x))`` is piecewise constant, so finite differences
do not apply; each case is checked against the estimator's definition written in numpy: the
cotangent passes where ``qmin <= round(x / s) + z <= qmax`` and is zero elsewhere, on onnxruntime and
(from opset 19, where it implements these ops) on the ONNX reference evaluator, in float32, since
QuantizeLinear takes no float64.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnx_xai.graph.assemble import vjp_model

from ...reference_runtime import reference
from .harness import Case, build, node

PER_AXIS_SCALE = np.array([0.02, 0.05, 0.1], np.float32)
CASES = [
    Case(
        "qdq_uint8_zero_point",
        [
            node("QuantizeLinear", ["x", "s", "z"], "q"),
            node("DequantizeLinear", ["q", "s", "z"], "d"),
            node("Mul", ["d", "d"]),
        ],
        {"x": (2, 3, 4, 4)},
        {"s": np.array(0.01, np.float32), "z": np.array(128, np.uint8)},
    ),
    Case(
        "qdq_int8_symmetric",
        [node("QuantizeLinear", ["x", "s", "z"], "q"), node("DequantizeLinear", ["q", "s", "z"])],
        {"x": (2, 5)},
        {"s": np.array(0.02, np.float32), "z": np.array(0, np.int8)},
    ),
    Case(
        "qdq_uint8_default_zero_point",
        [node("QuantizeLinear", ["x", "s"], "q"), node("DequantizeLinear", ["q", "s"])],
        {"x": (3, 4)},
        {"s": np.array(0.01, np.float32)},
    ),
    Case(
        "qdq_per_axis",
        [
            node("QuantizeLinear", ["x", "s", "z"], "q", axis=1),
            node("DequantizeLinear", ["q", "s", "z"], axis=1),
        ],
        {"x": (2, 3, 4)},
        {"s": PER_AXIS_SCALE, "z": np.array([0, 10, -20], np.int8)},
        min_opset=13,
    ),
]


def straight_through(case: Case, x: np.ndarray, ybar: np.ndarray) -> np.ndarray:
    """The estimator by hand: ybar (times the Mul's 2 d, when there is one) masked to the range."""
    scale, zero = case.consts["s"], case.consts.get("z", np.array(0, np.uint8))
    shape = (1, -1) + (1,) * (x.ndim - 2) if scale.ndim else ()
    grid = np.rint(x / scale.reshape(shape)) + zero.astype(np.float64).reshape(shape)
    info = np.iinfo(zero.dtype)
    mask = (grid >= info.min) & (grid <= info.max)
    dq = (np.clip(grid, info.min, info.max) - zero.astype(np.float64).reshape(shape)) * scale.reshape(shape)
    factor = 2 * dq if case.nodes[-1][0] == "Mul" else 1.0
    return ybar * factor * mask


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    rng = np.random.default_rng(0)
    for opset in case.opsets():
        forward = build(case, opset, np.float32)
        model = vjp_model(forward, "y", ["x"])
        onnx.checker.check_model(model, full_check=True)
        shape = case.wrt["x"]
        x = rng.permutation(np.linspace(-3, 3, int(np.prod(shape)))).reshape(shape).astype(np.float32)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = ort.InferenceSession(forward.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            ["y"], {"x": x}
        )[0]
        ybar = rng.standard_normal(y.shape).astype(np.float32)
        want = straight_through(case, x.astype(np.float64), ybar.astype(np.float64))
        # onnx.reference implements DequantizeLinear from opset 19 only
        for runtime in (session,) + ((reference(model),) if opset >= 19 else ()):
            (got,) = runtime.run(["xai_grad/x"], {"x": x, "xai_seed": ybar})
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{case.name} @ {opset}")
        assert 0 < np.count_nonzero(want) < want.size  # values inside and beyond the range
