"""Work bounded by the request, in the library (issue: no request can exhaust memory or hold on).

- Every method that runs many copies asked for 10⁸ of them runs its first chunks in flat memory
  (Python's allocations traced, numpy's included) and stops at its deadline, between two runs.
- A cost is known before anything runs (``Explainer.cost``) and equals the runs counted; a limit
  refuses it before the first extra run; another thread cancels work in flight.
- SmoothGrad of every registered method equals that method averaged by hand over the same noise.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

import onnx_xai
from onnx_xai.runtime.methods import METHOD_NAMES, REGISTRY, get
from onnx_xai.runtime.work import Work
from onnx_xai.support.errors import DeadlineExceeded, InputError, TooMuchWork, WorkStopped

from . import tiny

HUGE = 10**8
MANY_COPIES = {
    "smoothgrad": {"n_samples": HUGE},
    "integrated_gradients": {"n_steps": HUGE, "integration": "riemann_trapezoid"},
    "gradient_shap": {"n_samples": HUGE},
    "rise": {"n_masks": HUGE, "grid": 2},
    "lime": {"n_samples": HUGE, "segments": 4},
    "kernel_shap": {"n_samples": HUGE, "segments": 4},
    "deeplift_shap": {"baselines": np.zeros((10**5, 2, 4, 4), np.float32)},  # 2 x 10⁵ pairs
}
BASE_OPTIONS = {"deeplift_shap": {"baselines": np.random.default_rng(1).normal(size=(3, 2, 4, 4))}}


@pytest.fixture(scope="module")
def ex():
    return onnx_xai.Explainer(tiny.model().SerializeToString())


def sample(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2, 4, 4)).astype(np.float32)


@pytest.mark.parametrize("method", MANY_COPIES)
def test_a_hundred_million_copies_run_in_flat_memory_until_their_deadline(ex, method):
    x, work = sample(), Work(timeout_s=1.0)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            ex.explain(x, method, work=work, **MANY_COPIES[method])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert work.runs > 2  # the first chunks ran
    assert peak < 48 * 2**20, f"{method} held {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 3.0  # stopped at the next run after its deadline


def test_the_cost_is_known_before_and_counted_after(ex):
    x = sample(3)
    options = {"n_samples": 7, "base": "integrated_gradients", "base_options": {"n_steps": 5}}
    runs, why = ex.cost(x, ["smoothgrad"], **options)
    assert runs == 3 * 7 * 5 and "7 noisy copies of integrated_gradients" in why and "3 samples" in why
    work = Work()
    ex.explain(x, "smoothgrad", work=work, **options)
    assert work.runs == 3 + runs  # the shared run of the batch, then the copies
    assert ex.cost(x, ["occlusion"], window=2, stride=1) == (
        3 * 9,
        "occlusion: 9 patches of 2 by stride 1, on 3 samples",
    )


def test_a_limit_refuses_before_the_first_extra_run(ex):
    work = Work(max_runs=100, limit_name="--max-runs")
    with pytest.raises(
        TooMuchWork, match=r"rise: n_masks 2000, on 2 samples: 4000 model runs; at most 100 \(--max-runs\)"
    ):
        ex.explain(sample(), "rise", work=work)
    assert work.runs == 2  # the shared run only


def test_another_thread_cancels_work_in_flight(ex):
    work, stopped = Work(), {}

    def run():
        try:
            ex.explain(sample(), "smoothgrad", work=work, n_samples=HUGE)
        except WorkStopped as exc:
            stopped["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    while work.runs < 50:
        time.sleep(0.01)
    work.cancel("the client left")
    thread.join(timeout=5)
    assert not thread.is_alive() and str(stopped["error"]) == "the client left"


def test_gauss_legendre_beyond_its_eigenproblem_says_what_to_use(ex):
    with pytest.raises(InputError, match="at most 4096, or integration='riemann_trapezoid'"):
        ex.explain(sample(), "integrated_gradients", n_steps=5000)


@pytest.mark.parametrize(
    "base", [m for m in METHOD_NAMES if m != "smoothgrad" and "image" in REGISTRY[m].kinds]
)
def test_smoothgrad_of_every_method_is_that_method_averaged_over_the_noise(ex, base):
    """One noisy copy per run (``batch_size=1``), so that methods drawing their own samples per
    batch (GradientSHAP) draw them as a call on that copy alone does."""
    x = sample()
    noise = np.random.default_rng(2).normal(0, 0.2, size=(3, 2, 4, 4)).astype(np.float32)
    targets = ex.explain(x, "gradient").targets
    given = BASE_OPTIONS.get(base, {})
    seeded = {"noise_seed": 4} if "noise_seed" in get(base).Options.__dataclass_fields__ else {}
    smooth = ex.explain(
        x, "smoothgrad", base=base, noise=noise, noise_seed=4, base_options=given, batch_size=1
    ).raw
    by_hand = np.zeros_like(smooth, dtype=np.float64)
    for copy in noise:
        for i in range(len(x)):
            one = ex.explain(x[i : i + 1] + copy, base, objective=int(targets[i]), **given, **seeded).raw
            by_hand[i] += one[0] / len(noise)
    assert np.allclose(smooth, by_hand, rtol=1e-5, atol=1e-6), base
