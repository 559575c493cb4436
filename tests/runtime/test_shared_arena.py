"""Every onnxruntime session of the process allocates its activations from one arena
(:mod:`onnx_xai.runtime.shared_arena`): a second session's run reuses what the first one's grew.

Measured in a fresh process (the arena is the process's): two sessions of a graph whose activations
are ~100 MB per run and whose weights are nothing, each run once; the resident memory the second
run adds against what the first added. The same script with the sharing switched off is the control:
there the second session grows its own arena as much as the first.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from onnx import TensorProto, helper
from onnx_xai.runtime import backends, shared_arena

if sys.argv[1] == "off":
    backends.use_shared_arena = lambda options: None

def rss_mb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1024])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
nodes = [
    helper.make_node("Exp", ["x"], ["a"]),
    helper.make_node("Sin", ["a"], ["b"]),
    helper.make_node("Mul", ["a", "b"], ["c"]),
    helper.make_node("ReduceSum", ["c"], ["y"], axes=[1], keepdims=0),
]
graph = helper.make_graph(nodes, "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
data = model.SerializeToString()
feed = {"x": np.zeros((8192, 1024), np.float32)}  # 32 MB; a, b, c: 96 MB of activations
grown = []
for _ in range(2):
    session = backends.make_session("onnxruntime", data, ["CPUExecutionProvider"], 1)
    before = rss_mb()
    session.run(["y"], feed)
    grown.append(rss_mb() - before)
print(grown[0], grown[1])
"""


def _grown(sharing: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, sharing], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (float(v) for v in done.stdout.split())
    return first, second


def test_a_second_session_runs_in_the_arena_the_first_grew():
    first, second = _grown("on")
    assert first > 60, first  # the activations were allocated (a, b, c: 96 MB)
    assert second < 0.2 * first, (first, second)


def test_without_the_shared_arena_each_session_grows_its_own():
    first, second = _grown("off")
    assert first > 60 and second > 0.6 * first, (first, second)
