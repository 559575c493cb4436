"""Pad's reflect, edge and wrap modes against onnxruntime's own float64 kernel.

Every mode on 1-D to 4-D inputs, along one axis and along several, with pads of 0, small ones and the
largest there are (reflect: ``n - 1`` on both sides of every axis; edge and wrap: beyond the input's
length, wrap over more than one period), negative pads (a crop, then the fill around what is left, as
onnxruntime computes it), the ``axes`` input (opset 18 on) and a length known at run time only: at
opsets 11, 13, 18 and 19 (wrap exists from 19: 19 and 21). Each case passes the test of the other
rules (:func:`tests.graph.rules.test_spectral.measure`): central differences of the kernel along a
random direction against the rewritten graph's gradient within 1e-6 relative, the float32 rewrite
on onnxruntime within 2e-4 of the float64 one, every backward op a standard op of the model's opset
(the fills are linear: only rounding remains, measured at most 8.0e-10, and 1.5e-7 for float32). A
float16 model's rewrite runs on onnxruntime too (wrap's scatter in a float32 island). Pads known at
run time only are refused in one line, for these modes; constant padding takes them as before.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.support.errors import UnsupportedModelError

from .harness import Case, build, node
from .test_spectral import as_input, measure

I64 = np.int64
SHAPES = {1: (5,), 2: (3, 5), 3: (2, 3, 4), 4: (1, 2, 3, 4)}
OPSETS = {"reflect": (11, 13, 18, 19), "edge": (11, 13, 18, 19), "wrap": (19, 21)}


def largest(mode: str, n: int, side: int) -> int:
    """The largest pad of the case: reflect's limit ``n - 1``, beyond ``n`` for edge and wrap."""
    return n - 1 if mode == "reflect" else 2 * n + side


def pads_of(mode: str, shape: tuple, size: str, axes: list[int]) -> list[int]:
    """Begin and end pads over every axis, set on ``axes``: ``zero``, ``small`` or ``largest``."""
    begin, end = [0] * len(shape), [0] * len(shape)
    for i, axis in enumerate(axes):
        n = shape[axis]
        if size == "small":
            begin[axis], end[axis] = min(1 + i % 2, n - 1), min(2 - i % 2, n - 1)
        elif size == "largest":
            begin[axis], end[axis] = largest(mode, n, 0), largest(mode, n, 1)
    return begin + end


def pad_case(mode: str, rank: int, size: str, several: bool, opsets=None) -> Case:
    shape = SHAPES[rank]
    axes = [a for a in range(rank) if shape[a] > 1] if several else [rank - 1]
    pads = pads_of(mode, shape, size, axes)
    name = f"{mode}_{rank}d_{'several' if several else 'one'}_{size}"
    lo, hi = opsets or (OPSETS[mode][0], OPSETS[mode][-1])
    return Case(name, [node("Pad", ["x", "p"], mode=mode)], {"x": shape}, {"p": np.array(pads, I64)}, lo, hi)


CASES = [
    pad_case(mode, rank, size, several)
    for mode in OPSETS
    for rank in SHAPES
    for several in ((False, True) if rank > 1 else (False,))
    for size in ("zero", "small", "largest")
]
CROPS = [  # negative pads: the crop first, then the fill around what is left
    Case(f"{mode}_crop", [node("Pad", ["x", "p"], mode=mode)], {"x": (2, 6, 5)}, {"p": np.array(p, I64)})
    for mode, p in (
        ("reflect", [0, -1, 2, 0, 4, -2]),  # reflect's limit on the cropped lengths: 4 and 2
        ("edge", [0, -2, -1, 0, 3, 2]),
        ("wrap", [0, 7, -2, 0, -1, 4]),
    )
]
AXES = [  # the axes input: pads given for some axes only, negative axes
    Case(f"{mode}_axes", [node("Pad", ["x", "p", "", "ax"], mode=mode)], {"x": (2, 3, 4, 5)}, consts)
    for mode in OPSETS
    for consts in [{"p": np.array([2, 1, 1, 2], I64), "ax": np.array([-1, 1], I64)}]
]


def opsets(c: Case, mode: str) -> list[int]:
    return [o for o in OPSETS[mode] if c.min_opset <= o <= c.max_opset]


def mode_of(c: Case) -> str:
    return c.nodes[0][4]["mode"]


def errors(c: Case) -> list[float]:
    """Check the case at each of its opsets; the float64 errors against finite differences."""
    lo = 18 if c in AXES else 11
    return [measure(c, opset)["fd64"] for opset in opsets(c, mode_of(c)) if opset >= lo]


@pytest.mark.parametrize("c", CASES + CROPS + AXES, ids=lambda c: c.name)
def test_pad_mode(c):
    assert errors(c)


def symbolic(c: Case, opset: int):
    """The case's float64 model with its input's last dimension and the output's dims symbolic."""
    m = build(c, opset, np.float64)
    m.graph.input[0].type.tensor_type.shape.dim[-1].dim_param = "T"
    for i, dim in enumerate(m.graph.output[0].type.tensor_type.shape.dim):
        dim.dim_param = f"y{i}"
    return m


@pytest.mark.parametrize("mode", list(OPSETS))
def test_a_length_known_at_run_time_only(mode):
    """One rewrite serves several lengths: the reflect and edge adjoints' bounds count from the ends,
    wrap's indices take the length at run time (and pads beyond it)."""
    p = [0, 1, 3, 0, 2, 4] if mode == "reflect" else [0, 1, 9, 0, 2, 4]
    c = Case(
        f"{mode}_symbolic", [node("Pad", ["x", "p"], mode=mode)], {"x": (2, 3, 5)}, {"p": np.array(p, I64)}
    )
    for opset in (OPSETS[mode][0], OPSETS[mode][-1]):
        for length in (5, 8):
            measure(c, opset, model=symbolic(c, opset), sizes={"x": (2, 3, length)})


@pytest.mark.parametrize("mode", list(OPSETS))
def test_pads_known_at_run_time_only_are_refused(mode):
    c = CROPS[list(OPSETS).index(mode)]
    with pytest.raises(UnsupportedModelError) as raised:
        vjp_model(as_input(build(c, 19, np.float32), "p"), "y", ["x"])
    problem = f"'Pad_0' (Pad): mode='{mode}' with pads not known before run time"
    assert problem in str(raised.value) and "\n" not in str(raised.value)


def test_constant_pads_known_at_run_time_only():
    c = Case(
        "constant", [node("Pad", ["x", "p"])], {"x": (2, 3, 5)}, {"p": np.array([0, 1, -2, 0, 2, 3], I64)}
    )
    model = as_input(build(c, 19, np.float64), "p")
    grad = vjp_model(model, "y", ["x"])
    assert any(n.op_type == "Pad" and n.input[1] != "p" for n in grad.graph.node if n.name.startswith("xai/"))


@pytest.mark.parametrize("mode", list(OPSETS))
def test_float16(mode):
    """The float16 rewrite on onnxruntime within float16's rounding of the float64 one."""
    c = Case(
        mode, [node("Pad", ["x", "p"], mode=mode)], {"x": (2, 3, 5)}, {"p": np.array([0, 1, 3, 0, 2, 4], I64)}
    )
    rng = np.random.default_rng(3)
    x, ybar = rng.uniform(-2, 2, (2, 3, 5)), rng.standard_normal((2, 6, 12))
    grads = []
    for dtype in (np.float16, np.float64):
        rewritten = vjp_model(build(c, 19, dtype), "y", ["x"]).SerializeToString()
        session = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
        feeds = {"x": x.astype(dtype), "xai_seed": ybar.astype(dtype)}
        grads.append(session.run(["xai_grad/x"], feeds)[0].astype(np.float64))
    assert np.abs(grads[0] - grads[1]).max() <= 2e-3 * np.abs(grads[1]).max()
