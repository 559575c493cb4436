"""``backend="auto"``: each graph compiled by onnxruntime and by OpenVINO, timed on its first runs,
the faster one kept.

Which runtime is faster depends on the graph and the machine, not on the model alone: measured on
one 2-core Xeon (``tools/bench_backends.py``), OpenVINO runs EfficientNet-Lite0's input gradient in
0.72x onnxruntime's time but its Grad-CAM graph in 1.13x, and ResNet-50's graphs within 4 % either
way. So every graph an Explainer builds (the forward, each kind of request) is raced on its own. A
:class:`RacedSession` answers its first runs from both candidates in turn, each result a real one
(the two runtimes agree to float32 noise, ``tests/runtime/test_backends.py``): the first run of each
warms it up (arena growth, lazy compilation), the next :data:`TIMED` of each are timed on one input
shape, and the candidate with the shorter median keeps the graph; the other is dropped with its
memory. No run is spent on the race alone. The choice is said once on the ``onnx_xai.progress``
logger and kept in :attr:`RacedSession.choice` (``Explainer.backend_choices`` lists them). Where
there is no race to run, onnxruntime runs the graph and the choice says why: onnxruntime runs on
a GPU provider, the ``openvino`` package is missing, or OpenVINO cannot compile the graph (its
one-line reason). A run that fails on OpenVINO during the race is answered by onnxruntime, which
then keeps the graph.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np

from ..support.errors import InputError, ModelError, RunError
from ..support.progress import stage
from .backends import Session, make_session, release_memory

TIMED = 2  # timed runs per candidate, after its warm-up run, before the choice
CANDIDATES = ("onnxruntime", "openvino")


def raced_session(
    label: str,
    model: bytes | str,
    providers: list[str] | None,
    threads: int | None,
    arena: bool,
    shared: tuple[list[str], list],
    kernels: bool = True,
) -> Session:
    """onnxruntime's session of ``model`` raced against OpenVINO's (module docstring), or
    onnxruntime's alone with the reason in its ``choice``."""
    ort_session = make_session("onnxruntime", model, providers, threads, arena, shared, kernels)
    if ort_session.device != "CPUExecutionProvider":
        return _alone(ort_session, label, f"onnxruntime on {ort_session.device} (no CPU race)")
    try:
        openvino = make_session("openvino", model, None, threads)
    except InputError:
        return _alone(ort_session, label, "onnxruntime (the openvino package is not installed)")
    except ModelError as exc:
        return _alone(ort_session, label, f"onnxruntime ({exc})")
    return RacedSession(label, {"onnxruntime": ort_session, "openvino": openvino})


def _alone(session: Session, label: str, why: str) -> Session:
    stage(f"the {label} graph runs on {why}")
    session.label, session.choice = label, why  # type: ignore[attr-defined]
    return session


def _shape_key(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((name, np.shape(value)) for name, value in sorted(feeds.items()))


class RacedSession(Session):
    """Two sessions of one graph, raced on the first runs; then the faster alone (module docstring).

    Args:
        label: the graph's name in the choice said (``forward``, ``input_grad``, ...).
        candidates: runtime name -> its session of the graph, onnxruntime's first.
    """

    def __init__(self, label: str, candidates: dict[str, Session]):
        self.label = label
        self._candidates = dict(candidates)
        first = next(iter(self._candidates.values()))
        self.inputs, self.outputs = first.inputs, first.outputs
        self.device = "racing: " + " and ".join(self._candidates)
        self._warm: set[str] = set()
        self._times: dict[tuple, dict[str, list[float]]] = {}
        self._turn = 0
        self._lock = threading.Lock()
        self.choice: str | None = None
        self._chosen: Session | None = None

    @property
    def providers(self) -> list[str]:
        chosen = self._chosen or self._candidates["onnxruntime"]
        return getattr(chosen, "providers", [chosen.device])

    def metadata(self) -> dict[str, str]:
        return (self._chosen or next(iter(self._candidates.values()))).metadata()

    def _run(self, names, feeds):
        chosen = self._chosen
        if chosen is not None:
            return chosen._run(names, feeds)
        with self._lock:
            name = self._next_candidate()
            session = self._candidates.get(name) if self._chosen is None else None
        if session is None:  # decided meanwhile
            return self._run(names, feeds)
        start = time.perf_counter()
        try:
            found = session._run(names, feeds)
        except RunError as exc:
            if name == "onnxruntime":
                raise
            self._decide("onnxruntime", f"onnxruntime (OpenVINO failed running it: {exc})")
            return self._run(names, feeds)
        self._record(name, _shape_key(feeds), time.perf_counter() - start)
        return found

    def _next_candidate(self) -> str:
        names = list(self._candidates)
        self._turn += 1
        return names[(self._turn - 1) % len(names)]

    def _record(self, name: str, shape: tuple, seconds: float) -> None:
        with self._lock:
            if self._chosen is not None:
                return
            if name not in self._warm:
                self._warm.add(name)
                return
            times = self._times.setdefault(shape, {})
            times.setdefault(name, []).append(seconds)
            if len(times) < len(self._candidates) or min(map(len, times.values())) < TIMED:
                return
            medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
        best = min(medians, key=medians.__getitem__)
        said = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(medians.items(), key=lambda kv: kv[1]))
        batch = next((s[0] for _, s in shape if len(s)), 1)
        self._decide(best, f"{best} ({said} a run, median of {TIMED}, batch {batch})")

    def _decide(self, name: str, why: str) -> None:
        with self._lock:
            if self._chosen is not None:
                return
            self._chosen = self._candidates[name]
            self.device = self._chosen.device
            self.choice = why
            self._candidates = {name: self._chosen}  # the other runtime's session goes, and its memory
        release_memory()
        stage(f"the {self.label} graph runs on {why}")
