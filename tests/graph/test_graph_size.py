"""Graph handling stays linear in the node count wherever a long chain sits.

The classifier of ``tools/bench_large_graphs.py`` with a chain of Identity nodes at each of its
places (before the spatial collapse, between the collapse and the head, after the head, on a side
branch added back, on a dead end), at N and G x N nodes. No time is asserted, only the ratio of
the two, as CPU time of this process (another process on the same cores does not inflate it), the
best of three interleaved runs. Two scales, since a walk that restarts per node hides behind the
linear work around it (shape inference) until the graph is large:

- the whole of ``check_model``, ``inspect_model`` and ``augment`` at 500 and 8x: linear handling
  gives 7-10, the CAM head's walk that copied the score's ancestors once per node (the issue's
  "Identity chain between Flatten and Gemm") gave 37, bound 16;
- the walks that find the target layer and the CAM head alone (the dominator sweep, the candidates,
  the head), on a ``GraphInfo`` with its layouts built beforehand, at 1,000 and 16x: linear
  handling gives 14-21 (the larger dicts miss the caches more), the dominator sweep's list of the
  dominators found (searched once per node) gave 57 and the head walk 402, bound 32.
"""

from __future__ import annotations

import gc
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from onnx_xai.graph import augment
from onnx_xai.graph.analysis import score_tensor
from onnx_xai.graph.head import cam_head
from onnx_xai.graph.info import GraphInfo
from onnx_xai.graph.layer import candidates
from onnx_xai.graph.layout import tensor_layouts
from onnx_xai.graph.model_io import check_model
from onnx_xai.runtime.report import inspect_model

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_large_graphs.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_large_graphs", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


def analyzed(model: onnx.ModelProto) -> tuple[GraphInfo, str, dict[str, str]]:
    """A model's facts, its score and its layouts: what the walks start from."""
    info = GraphInfo(model)
    return info, score_tensor(info).name, tensor_layouts(info, "x")


def walks(facts: tuple[GraphInfo, str, dict[str, str]]) -> None:
    """The walks to the target layer and the CAM head, asked afresh (the answers that the graph's
    facts keep dropped first)."""
    info, score, layouts = facts
    info.walks.clear()
    views = candidates(info, "x", score, layouts)
    cam_head(info, views[0], score)


def ratio(step: Callable, small, large, runs: int) -> float:
    """The best CPU time of ``step(large)`` over that of ``step(small)``, runs interleaved so that a
    slow spell of the machine touches both."""
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for k, argument in enumerate((small, large)):
            gc.collect()
            start = time.process_time()
            step(argument)
            best[k] = min(best[k], time.process_time() - start)
    return best[1] / max(best[0], 1e-4)


def growth(model: Callable[[int], object], steps: dict, nodes: int, factor: int, runs: int = 3) -> dict:
    small, large = model(nodes), model(nodes * factor)
    return {name: ratio(step, small, large, runs) for name, step in steps.items()}


@pytest.mark.parametrize("placement", BENCH.PLACEMENTS)
def test_inspect_and_augment_grow_linearly(placement):
    steps = {"check": check_model, "inspect": inspect_model, "augment": augment}
    found = growth(lambda n: BENCH.chain(n, placement), steps, 500, 8)
    assert all(r < 16 for r in found.values()), f"{placement}, 8x the nodes: {_said(found)}"


@pytest.mark.parametrize("placement", BENCH.PLACEMENTS)
def test_the_analysis_walks_grow_linearly(placement):
    found = growth(lambda n: analyzed(BENCH.chain(n, placement)), {"walks": walks}, 1000, 16, runs=5)
    assert found["walks"] < 32, f"{placement}, 16x the nodes: {_said(found)}"


def _said(ratios: dict[str, float]) -> str:
    return ", ".join(f"{name} took {r:.1f}x" for name, r in ratios.items())
