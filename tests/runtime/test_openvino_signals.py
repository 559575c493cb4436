"""A signal after OpenVINO sessions were dropped in any order is handled, not a crash.

Each OpenVINO ``Core`` that compiles a model installs an alternate signal stack on the thread and
puts back the previous one when it is destroyed; Cores destroyed out of order left the thread on a
freed stack, and CPython handles signals on that stack (a segmentation fault in CI, after a test
whose OpenVINO Explainer was collected). Sessions now share one Core
(:mod:`onnx_xai.runtime.openvino_core`). In a subprocess (a crash must not take the test run with
it): an Explainer on OpenVINO explains (its gradient graph's session made while the model's own
session lives, which is then dropped first) and is collected, then SIGINT and SIGTERM are raised in
the main thread with Python handlers. The same script with a Core per session is the
control: it must crash, or the test proves nothing.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytest.importorskip("openvino")

SCRIPT = """
import gc, signal, sys
import numpy as np
from onnx_xai.runtime import backends
from tests.runtime import tiny
import onnx_xai

if sys.argv[1] == "core per session":
    import openvino as ov
    backends.openvino_core = ov.Core

ex = onnx_xai.Explainer(tiny.model(), target_layer="a", backend="openvino")
ex.explain(np.ones((1, 2, 4, 4), np.float32), "gradient")  # the model's own session dropped
del ex
gc.collect()
handled = []
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda s, frame: handled.append(s))
    signal.raise_signal(signum)
    sum(range(1000))
print("handled", *handled)
"""


def _run(variant: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, variant], capture_output=True, text=True, timeout=300, cwd=_root()
    )


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])


def test_signals_are_handled_after_openvino_sessions_were_dropped_in_any_order():
    done = _run("one core")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["handled", str(int(signal.SIGINT)), str(int(signal.SIGTERM))]


def test_the_control_with_a_core_per_session_crashes():
    done = _run("core per session")
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stdout, done.stderr[-2000:])
