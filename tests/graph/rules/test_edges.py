"""Every rule at the points where rules go wrong: ties, exact bounds and infinities.

Each case of the rule tables runs at its newest opset, on inputs drawn as the table draws them, then
made special in a few places (the groups):
- ``ties``: an entry copied onto another (in the same input, or onto the entry of another input that
  meets it in the broadcast), where Max, MaxPool, TopK, ReduceMax and ArgMax choose among equals;
- ``bounds``: an entry set to a kink the case names (its scalar constants) or to 0 or +-1;
- ``infinities``: entries of the differentiated inputs and of the constants set to +-inf (RT-DETR's
  invalid anchors), kept only where every output stays finite.
A group whose value takes the output out of the finite numbers is given back its drawn value.

At a tie or a bound the function of that group's entries has one-sided derivatives only, so each
group is checked along a direction that moves it alone: the rule's ``<g, t>`` must lie between the
right and the left difference quotients of the float64 ONNX reference (the derivative of either
piece, or any mix of them). A group where a side jumps (Floor, a flipped selection) or the slope is
unbounded (a square root at 0) has no finite derivative to compare: there, and only there, the
gradient may be infinite. Infinite entries do not move; along the finite ones the central difference
must match as in the harness.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest

from onnx_xai.graph.assemble import vjp_model

from ...reference_runtime import float64_runner
from . import test_integer, test_quantize
from .harness import build
from .test_coverage import TABLES
from .test_recurrent_reference import evaluator as recurrent_evaluator

RECURRENT = frozenset({"LSTM", "GRU", "RNN"})

# QuantizeLinear and DynamicQuantizeLinear take no float64, and the straight-through estimator is no
# derivative: the quantization rules have their own checks (test_quantize, test_integer)
CASES = [case for table in TABLES if table not in (test_quantize, test_integer) for case in table.CASES]
KINDS = ("ties", "bounds", "infinities")
EPS = 1e-7
ROUNDING = 16 * float(np.finfo(np.float64).eps)  # a few ulps of each output entry, summed
GROUPS = 4
# inputs where the spec defines no result for an infinite value (a grid point at infinity samples
# nothing in the ONNX reference and a border pixel in onnxruntime)
# inputs never made infinite: GridSample's grid; the recurrent ops' weights (W, R, B, P), where an
# infinite weight saturates an activation whose zero slope then meets the weight itself in
# dX = dgates W (0 x inf), as in any reverse-mode autodiff
UNDEFINED_AT_INFINITY = {"GridSample": (1,), "LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3)}
ATTEMPTS = [(sign, constants) for constants in (True, False) for sign in (-1, 1, 0)] * 2


def _runners(case, opset):
    model = build(case, opset, np.float64)
    return _runner(model), _runner(vjp_model(model, "y", list(case.wrt)))


def _runner(model):
    """onnxruntime has no float64 kernel for the recurrent ops: their models run on the reference
    evaluator with the recurrent ops' float64 reference (:mod:`.test_recurrent_reference`)."""
    if any(node.op_type in RECURRENT for node in model.graph.node):
        return recurrent_evaluator(model)
    return float64_runner(model)


def _forward(runner, xs) -> np.ndarray:
    return runner.run(["y"], xs)[0]


def _kinks(case) -> list[float]:
    scalars = [float(v) for v in case.consts.values() if np.asarray(v).dtype.kind == "f" and np.size(v) == 1]
    return sorted({0.0, 1.0, -1.0, *(v for v in scalars if np.isfinite(v))})


def _flat_index(shape, broadcast_shape, position: int) -> int:
    return int(np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), broadcast_shape).flat[position])


def _tie(xs: dict, rng) -> list[tuple[str, int]]:
    names = list(xs)
    a = names[rng.integers(len(names))]
    b = names[rng.integers(len(names))]
    try:
        shape = np.broadcast_shapes(xs[a].shape, xs[b].shape)
    except ValueError:
        b = a
        shape = xs[a].shape
    if a == b:
        i, j = rng.choice(xs[a].size, 2, replace=False) if xs[a].size > 1 else (0, 0)
    else:
        p = int(rng.integers(int(np.prod(shape))))
        i, j = _flat_index(xs[a].shape, shape, p), _flat_index(xs[b].shape, shape, p)
    xs[b].flat[j] = xs[a].flat[i]
    return [(a, int(i)), (b, int(j))]


def _bound(case, xs: dict, rng) -> list[tuple[str, int]]:
    name = list(xs)[rng.integers(len(xs))]
    i = int(rng.integers(xs[name].size))
    xs[name].flat[i] = rng.choice(_kinks(case))
    return [(name, i)]


def _finite_output(runner, xs) -> bool:
    with np.errstate(all="ignore"):
        try:
            return bool((np.abs(_forward(runner, xs)) < 1e100).all())  # finite, and summable
        except Exception:  # noqa: BLE001 - a reference kernel refusing a value is not a finite output
            return False


def _special(case, kind, runner, xs, rng) -> list[list[tuple[str, int]]]:
    """Groups of special entries made in ``xs`` (in place), each keeping the output finite."""
    groups = []
    for _ in range(GROUPS):
        before = {n: x.copy() for n, x in xs.items()}
        group = _tie(xs, rng) if kind == "ties" else _bound(case, xs, rng)
        if _finite_output(runner, xs):
            groups.append(group)
        else:
            xs.update(before)
    return groups


def _undefined_at_infinity(case) -> set[str]:
    return {
        inputs[i]
        for op, inputs, *_ in case.nodes
        for i in UNDEFINED_AT_INFINITY.get(op, ())
        if i < len(inputs)
    }


def _infinite(case, xs: dict, rng, sign, in_constants: bool):
    """The case with some constant entries infinite (``in_constants``), and some input entries
    infinite (in place); ``sign`` -1 or 1, or 0 for either."""
    consts, undefined = dict(case.consts), _undefined_at_infinity(case)

    def infinity():
        return (sign or rng.choice([-1, 1])) * np.inf

    for name, value in case.consts.items():
        value = np.asarray(value)
        if in_constants and value.dtype == np.float64 and value.size > 1 and name not in undefined:
            value = value.copy()
            value.flat[rng.integers(value.size)] = infinity()
            consts[name] = value
    for name, x in xs.items():
        if name not in undefined:
            x.flat[rng.integers(x.size)] = infinity()
    return replace(case, consts=consts)


def _quotients(runner, xs, ybar, t) -> tuple[float, float, float, float]:
    """The right, left and central difference quotients of ``<ybar, y>`` along ``t``, and their
    rounding error: float64's epsilon on each term of the sum (``sum |ybar * y|``) over the step."""

    def f(step):
        return ybar * _forward(runner, {n: xs[n] + step * t[n] for n in xs})

    low, centre, high = (f(step) for step in (-EPS, 0.0, EPS))
    noise = ROUNDING * float(np.sum(np.abs(centre))) / EPS
    right, left = float(np.sum(high) - np.sum(centre)) / EPS, float(np.sum(centre) - np.sum(low)) / EPS
    return right, left, float(np.sum(high) - np.sum(low)) / (2 * EPS), noise


def _directional(grads, t) -> float:
    return float(sum(np.sum(np.where(t[n] != 0, grads[n] * t[n], 0.0)) for n in t))


def _moving(xs, entries, rng) -> dict:
    t = {n: np.zeros_like(x) for n, x in xs.items()}
    for name, i in entries:
        t[name].flat[i] = rng.standard_normal()
    return t


def _prepare(case, kind, rng):
    xs = {n: rng.uniform(case.low, case.high, size=s) for n, s in case.wrt.items()}
    opset = case.opsets()[-1]
    if kind == "infinities":
        for attempt, (sign, in_constants) in enumerate(ATTEMPTS):
            trial_xs = {n: x.copy() for n, x in xs.items()}
            trial = _infinite(case, trial_xs, np.random.default_rng(attempt), sign, in_constants)
            forward, backward = _runners(trial, opset)
            if _finite_output(forward, trial_xs):
                return trial, forward, backward, trial_xs, [], True
    forward, backward = _runners(case, opset)
    groups = _special(case, kind, forward, xs, rng) if kind != "infinities" else []
    return case, forward, backward, xs, groups, False


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule_at_edges(case, kind):
    rng = np.random.default_rng(zlib.crc32(f"{case.name}/{kind}".encode()))
    case, forward, backward, xs, groups, _ = _prepare(case, kind, rng)
    y = _forward(forward, xs)
    ybar = rng.standard_normal(y.shape)
    grads = dict(zip(case.wrt, backward.run([f"xai_grad/{n}" for n in case.wrt], {**xs, "xai_seed": ybar})))
    special = {(n, i) for group in groups for n, i in group}
    unbounded = {(n, int(i)) for n, g in grads.items() for i in np.flatnonzero(~np.isfinite(g))}
    assert unbounded <= special, f"{case.name} ({kind}): gradient not finite at {sorted(unbounded - special)}"
    finite = {n: rng.standard_normal(x.shape) * np.isfinite(x) for n, x in xs.items()}
    for n, i in special:
        finite[n].flat[i] = 0.0
    _, _, central, noise = _quotients(forward, xs, ybar, finite)
    analytic = _directional(grads, finite)
    assert abs(central - analytic) <= 1e-6 * max(1.0, abs(central)) + noise, (
        f"{case.name} ({kind}): away from the special entries, finite differences {central:.9g} "
        f"vs VJP {analytic:.9g}"
    )
    for group in groups:
        t = _moving(xs, group, rng)
        right, left, _, noise = _quotients(forward, xs, ybar, t)
        analytic = _directional(grads, t)
        quotients = np.array([right, left])
        scale = 1 + abs(analytic) if np.isfinite(analytic) else 1
        steep = not np.isfinite(quotients).all() or np.abs(quotients).max() > 1e4 * scale
        assert np.isfinite(analytic) or steep, f"{case.name} ({kind}) at {group}: gradient not finite"
        if steep:
            continue  # a jump or an unbounded slope (sqrt at 0): no finite derivative to compare
        low, high = min(left, right), max(left, right)
        tol = 1e-6 * max(1.0, abs(left), abs(right)) + noise
        assert low - tol <= analytic <= high + tol, (
            f"{case.name} ({kind}) at {group}: VJP {analytic:.9g} outside the one-sided "
            f"derivatives [{low:.9g}, {high:.9g}]"
        )


def test_infinities_reach_the_rules_that_meet_them():
    """The infinity kind is not vacuous: the rules that meet inf in real graphs (saturating
    activations, masks before a softmax, maxima, clips, selections) ran with infinite entries."""
    expected = {
        "sigmoid",
        "tanh",
        "relu",
        "softmax_last",
        "max_broadcast",
        "clip_inputs",
        "exp",
        "inverse_sigmoid_of_saturated_boxes",
    }
    cases = {c.name: c for c in CASES}
    missing = {
        name for name in expected if not _prepare(cases[name], "infinities", np.random.default_rng(0))[5]
    }
    assert not missing, f"no infinite entry kept the output finite in {sorted(missing)}"
