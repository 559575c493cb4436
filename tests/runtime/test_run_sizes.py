"""Copies per run found at first use (``onnx_xai.runtime.methods.run_sizes``).

- The ladder against an injected clock: the argmin of a convex cost per copy, the cap, a step down
  when the first doubling is worse, a slow first chunk ignored, and the choice under noise.
- On an Explainer: found once and reused, not re-explored; ``batch_size`` / ``max_batch_bytes``
  explore nothing; seeded results equal those at a fixed ``batch_size``; the work counted and a
  cancellation unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.runtime.methods import base
from onnx_xai.runtime.methods.run_sizes import Ladder, timed
from onnx_xai.runtime.work import Work
from onnx_xai.support.errors import WorkStopped

SHAPE = (2, 256, 256)  # 512 KiB a sample: the ladder starts at 8 copies and is capped at 36
BASELINES = np.random.default_rng(5).normal(size=(12, *SHAPE)).astype(np.float32)


class Clock:
    """A clock the consumer of the chunks moves on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def explore(ladder: Ladder, ms_per_copy, first=1.0, rng=None, copies=100_000) -> Ladder:
    """Chunks of a ladder consumed at ``ms_per_copy(size)`` (the first chunk of each size ``first``
    times that; noise from ``rng``) until it chooses."""
    clock, seen = Clock(), set()
    for owners, _ in timed(base.sample_rows(1, copies, ladder), ladder, clock):
        size = len(owners)
        spent = ms_per_copy(size) * size / 1000 * (1.0 if size in seen else first)
        if rng is not None:
            spent *= np.exp(rng.normal(0, 0.1)) * (1.6 if rng.random() < 0.1 else 1.0)
        clock.now += spent
        seen.add(size)
        if ladder.chosen is not None:
            return ladder
    raise AssertionError("the ladder never chose")


def test_the_ladder_picks_the_argmin_of_a_convex_cost_per_copy():
    cost = lambda s: 100 + 400 / s + s  # 204, 158, 141, 144.5 ms at 4, 8, 16, 32
    ladder = explore(Ladder(4, 64), cost)
    assert ladder.chosen == 16
    assert dict(ladder.choice().ms_per_copy) == pytest.approx({s: cost(s) for s in (4, 8, 16, 32)})


def test_the_ladder_stops_at_its_cap():
    ladder = explore(Ladder(4, 20), lambda s: 1000 / s)
    assert ladder.chosen == 20 and sorted(ladder.times) == [4, 8, 16, 20]


def test_the_ladder_steps_down_when_the_first_doubling_is_worse():
    ladder = explore(Ladder(8, 64), lambda s: 50 + 5 * s)  # 55, 60, 70, 90, 130 at 1 .. 16
    assert ladder.chosen == 2 and sorted(ladder.times) == [1, 2, 4, 8, 16]


def test_the_ladder_keeps_its_start_when_doubling_gains_less_than_its_margin():
    ladder = explore(Ladder(4, 64), lambda s: 100 if s == 4 else 95)
    assert ladder.chosen == 4 and sorted(ladder.times) == [4, 8]


def test_a_slow_first_chunk_of_each_size_is_not_trusted():
    ladder = explore(Ladder(4, 64), lambda s: 100.0, first=3.0)
    assert ladder.chosen == 4 and ladder.times == {4: [pytest.approx(100)] * 2, 8: [pytest.approx(100)] * 2}


def test_a_ladder_at_its_cap_chooses_without_timing():
    assert Ladder(64, 64).chosen == 64 and Ladder(64, 64).next() == 64


@pytest.mark.parametrize(
    "cost, best, most",
    [
        (lambda s: {1: 145, 2: 125, 4: 109}.get(s, 110), {4, 8}, 0.1),  # ResNet-50 on 2 cores: flat from 4
        (lambda s: 100 + 3000 / s, {32}, 0.1),  # bigger chunks win (a GPU)
    ],
)
def test_the_choice_holds_under_noise(cost, best, most):
    """10 % log-normal noise on every chunk and one chunk in ten 1.6x slower: at most 10 % of 400
    explorations choose a size whose cost per copy is not the best's."""
    rng = np.random.default_rng(0)
    chosen = [explore(Ladder(4, 32), cost, first=1.5, rng=rng).chosen for _ in range(400)]
    assert np.mean([c not in best for c in chosen]) <= most


# -- on an Explainer -------------------------------------------------------------------------------
def conv_model():
    """x [N, 2, H, W] -> 3x3 Conv (3 channels) -> ReLU -> GlobalAveragePool -> Flatten -> Gemm (2)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(2, 3)).astype(np.float32), "fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.fixture(scope="module")
def model() -> bytes:
    return conv_model()


def sample(n: int = 1) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, *SHAPE)).astype(np.float32)


def runs_seen(ex, monkeypatch) -> list[int]:
    """The batch of every run of ``ex`` from now on."""
    seen: list[int] = []
    run = ex._run
    monkeypatch.setattr(ex, "_run", lambda x, *args, **kw: seen.append(len(x)) or run(x, *args, **kw))
    return seen


def test_the_size_found_is_kept_and_reused_without_exploring_again(model, monkeypatch):
    ex = onnx_xai.Explainer(model)
    ex.explain(sample(), "smoothgrad", n_samples=400, noise_seed=0)  # 8 .. 36: under 400 copies
    key = ("smoothgrad of gradient", SHAPE, "float32")
    found = ex.copies_per_run[key]
    assert found.size is not None and len(found.ms_per_copy) >= 2
    seen = runs_seen(ex, monkeypatch)
    ex.explain(sample(), "smoothgrad", n_samples=3 * found.size, noise_seed=1)
    assert seen == [1] + [found.size] * 3  # the shared run, then chunks of the size found
    assert ex.copies_per_run[key] == found  # not explored again


@pytest.mark.parametrize("given", [{"batch_size": 5}, {"max_batch_bytes": 5 * 2 * 256 * 256 * 4}])
def test_a_size_given_explores_nothing(model, monkeypatch, given):
    ex = onnx_xai.Explainer(model)
    seen = runs_seen(ex, monkeypatch)
    ex.explain(sample(), "integrated_gradients", n_steps=12, **given)
    assert seen == [1, 5, 5, 2] and dict(ex.copies_per_run) == {}


METHODS = {
    "smoothgrad": {"n_samples": 40, "noise_seed": 3},
    "integrated_gradients": {"n_steps": 40},
    "gradient_shap": {"n_samples": 40, "noise_seed": 3, "stdevs": 0.3, "baselines": BASELINES},
    "deeplift_shap": {"baselines": np.concatenate([BASELINES] * 2)},  # 24 pairs a sample
}


@pytest.mark.parametrize("method", METHODS)
def test_explored_sizes_give_the_result_of_a_fixed_size(model, monkeypatch, method):
    """Seeded: the draws do not depend on the chunks; the results differ by float32 kernels only."""
    ex = onnx_xai.Explainer(model)
    seen = runs_seen(ex, monkeypatch)
    x = sample(2)
    explored = ex.explain(x, method, **METHODS[method]).raw
    assert len(set(seen[1:-1])) >= 2, seen  # the chunks took several sizes (the last may be short)
    fixed = onnx_xai.Explainer(model).explain(x, method, batch_size=6, **METHODS[method]).raw
    assert np.abs(explored - fixed).max() <= 1e-5 * np.abs(fixed).max()


def test_the_work_counted_and_a_cancellation_are_unchanged(model, monkeypatch):
    ex = onnx_xai.Explainer(model)
    x, options = sample(2), {"n_samples": 30, "noise_seed": 0}
    runs, _ = ex.cost(x, ["smoothgrad"], **options)
    work = Work()
    ex.explain(x, "smoothgrad", work=work, **options)
    assert runs == 2 * 30 and work.runs == 2 + runs
    ex, work = onnx_xai.Explainer(model), Work()  # a fresh ladder: three chunks of 8 first
    seen = runs_seen(ex, monkeypatch)
    real = ex._run

    def cancel_after_three(xs, *args, **kw):
        if len(seen) == 4:  # the shared run and three chunks ran
            work.cancel("stop")
        return real(xs, *args, **kw)

    monkeypatch.setattr(ex, "_run", cancel_after_three)
    with pytest.raises(WorkStopped):
        ex.explain(x, "smoothgrad", work=work, n_samples=200)
    assert seen[:4] == [2, 8, 8, 8] and work.runs == 2 + 3 * 8  # stopped before the fourth chunk's run
