"""``backend="auto"``: each graph raced between onnxruntime and OpenVINO on its first runs.

The race itself is checked on stand-in sessions with a clock the test advances (which runtime runs
each run, when the choice falls, that the loser is dropped, that a failing OpenVINO run is answered
by onnxruntime); the Explainer's results on ``auto`` against onnxruntime's own, and the choices it
reports, on a real network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import onnx_xai
from onnx_xai.audit.facts import model_facts
from onnx_xai.cli import main
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.runtime import auto_backend
from onnx_xai.runtime.auto_backend import TIMED, RacedSession
from onnx_xai.runtime.backends import Port, Session
from onnx_xai.support.errors import RunError

from ..conformance.exports import SIZE, export
from ..forms.reference import rel

pytest.importorskip("openvino")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class StandIn(Session):
    """A session that takes ``ms`` per run on the test's clock and answers its own name's code."""

    def __init__(self, clock: Clock, code: float, ms: float, fails: bool = False):
        self.clock, self.code, self.ms, self.fails = clock, code, ms, fails
        self.inputs, self.outputs, self.device, self.runs = [Port("x", ("N",), "tensor(float)")], [], "cpu", 0

    def _run(self, names, feeds):
        self.runs += 1
        self.clock.now += self.ms / 1000
        if self.fails:
            raise RunError("OpenVINO failed running the model: no kernel")
        return [np.full(len(feeds["x"]), self.code)]

    def metadata(self):
        return {}


@pytest.fixture
def clock(monkeypatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(auto_backend.time, "perf_counter", made)
    return made


def _race(clock: Clock, ort_ms: float, ov_ms: float, ov_fails: bool = False):
    ort, ov = StandIn(clock, 1.0, ort_ms), StandIn(clock, 2.0, ov_ms, ov_fails)
    return RacedSession("input_grad", {"onnxruntime": ort, "openvino": ov}), ort, ov


@pytest.mark.parametrize(
    ("ort_ms", "ov_ms", "winner"), [(30.0, 20.0, "openvino"), (20.0, 30.0, "onnxruntime")]
)
def test_the_faster_runtime_keeps_the_graph_after_a_warm_up_and_timed_runs_of_each(
    clock, ort_ms, ov_ms, winner
):
    raced, ort, ov = _race(clock, ort_ms, ov_ms)
    feeds = {"x": np.zeros(3, np.float32)}
    answers = [raced.run(["y"], feeds)[0][0] for _ in range(2 * (1 + TIMED))]
    assert answers == [1.0, 2.0] * (1 + TIMED)  # alternating, each answer a real run's
    assert raced.choice is not None and raced.choice.startswith(winner)
    assert f"{min(ort_ms, ov_ms):.1f} ms" in raced.choice and "batch 3" in raced.choice
    before = (ort.runs, ov.runs)
    code = {"onnxruntime": 1.0, "openvino": 2.0}[winner]
    assert [raced.run(["y"], feeds)[0][0] for _ in range(3)] == [code] * 3
    kept = ort if winner == "onnxruntime" else ov
    assert kept.runs == {"onnxruntime": before[0], "openvino": before[1]}[winner] + 3
    assert list(raced._candidates) == [winner]  # the other session dropped


def test_a_slow_first_run_is_a_warm_up_not_a_verdict(clock):
    raced, ort, ov = _race(clock, 20.0, 30.0)
    ort.ms = 500.0  # onnxruntime's first run: arena growth
    raced.run(["y"], {"x": np.zeros(1, np.float32)})
    ort.ms = 20.0
    for _ in range(1 + 2 * TIMED):
        raced.run(["y"], {"x": np.zeros(1, np.float32)})
    assert raced.choice is not None and raced.choice.startswith("onnxruntime")


def test_timings_of_different_shapes_are_not_compared(clock):
    raced, ort, ov = _race(clock, 20.0, 30.0)
    for batch in (1, 1, 4, 4, 1, 4, 1, 4):  # warm-ups, then each candidate's runs alternate shapes
        raced.run(["y"], {"x": np.zeros(batch, np.float32)})
    assert raced.choice is None  # batch 4: onnxruntime timed once; batch 1: OpenVINO never
    for _ in range(4):
        raced.run(["y"], {"x": np.zeros(1, np.float32)})
    assert raced.choice is not None and "batch 1" in raced.choice


def test_an_openvino_failure_during_the_race_is_answered_by_onnxruntime(clock):
    raced, ort, ov = _race(clock, 30.0, 20.0, ov_fails=True)
    feeds = {"x": np.zeros(2, np.float32)}
    assert [raced.run(["y"], feeds)[0][0] for _ in range(3)] == [1.0, 1.0, 1.0]
    assert raced.choice is not None and raced.choice.startswith("onnxruntime (OpenVINO failed running it")


def test_without_openvino_onnxruntime_runs_alone_and_says_why(monkeypatch):
    made = auto_backend.make_session

    def no_openvino(backend, *args):
        if backend == "openvino":
            raise onnx_xai.InputError("the openvino backend needs the openvino package")
        return made(backend, *args)

    monkeypatch.setattr(auto_backend, "make_session", no_openvino)
    ex = onnx_xai.Explainer(export("resnet", "torchscript-17", True), backend="auto")
    x = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    ex.explain(x, "gradient")
    graph = next(k for k in ex.backend_choices if "input_grad" in k.split("+"))
    assert ex.backend_choices[graph] == "onnxruntime (the openvino package is not installed)"


def test_the_explainer_on_auto_gives_onnxruntimes_results_and_reports_each_graphs_runtime():
    path = export("resnet", "torchscript-17", True)
    ort_ex, auto_ex = onnx_xai.Explainer(path), onnx_xai.Explainer(path, backend="auto")
    x = np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    assert auto_ex.backend == "auto"
    for run in range(2 * (1 + TIMED) + 1):  # every run of the race, then the chosen one
        for method in ("gradient", "gradcam"):
            a, b = ort_ex.explain(x, method), auto_ex.explain(x, method)
            assert rel(b.raw, a.raw) < 1e-4, (run, method, rel(b.raw, a.raw))
        if run == 0:
            assert set(auto_ex.backend_choices.values()) == {"racing"}
    choices = auto_ex.backend_choices
    assert any("input_grad" in graph.split("+") for graph in choices), choices
    for choice in choices.values():
        assert choice.split(" ")[0] in ("onnxruntime", "openvino"), choices
        assert "ms a run, median of" in choice and "batch 2" in choice


def test_auto_from_the_command_line(tmp_path, capsys):
    path = export("resnet", "torchscript-17", True)
    photos = sorted(map(str, Path(DEMO_PHOTOS).glob("*.jpg")))
    for k, photo in enumerate(list(photos)):  # 6 runs of 1 photo: the race of two decided
        photos.append(str(shutil.copy(photo, tmp_path / f"copy{k}.jpg")))
    for backend in ("onnxruntime", "auto"):
        argv = [
            "explain",
            str(path),
            *photos,
            "--method",
            "gradient",
            "--backend",
            backend,
            "--batch-size",
            "1",
        ]
        assert main([*argv, "--out", str(tmp_path / backend)]) == 0, capsys.readouterr().err
    said = capsys.readouterr().err
    assert said.count("onnx-xai: the ") == 1 and " graph ran on " in said and "ms a run, median of" in said, (
        said
    )
    name = Path(photos[0]).name
    a, b = (json.loads((tmp_path / k / f"{name}.json").read_text()) for k in ("onnxruntime", "auto"))
    assert a["explanations"][0]["target"] == b["explanations"][0]["target"]
    assert abs(a["explanations"][0]["score"] - b["explanations"][0]["score"]) < 1e-5


def test_an_audit_says_each_graphs_runtime_on_auto_only():
    path = export("resnet", "torchscript-17", True)
    x = np.random.default_rng(3).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    for backend in ("onnxruntime", "auto"):
        ex = onnx_xai.Explainer(path, backend=backend)
        for _ in range(2 * (1 + TIMED)):
            ex.explain(x, "gradient")
        facts = model_facts(ex, path, "probability")
        assert ("backend_choices" in facts) == (backend == "auto")
    assert (
        facts["backend_choices"] == ex.backend_choices and "racing" not in facts["backend_choices"].values()
    )
