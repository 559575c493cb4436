"""Which ONNX ops the rewritten graphs use: per forward op, the ops its backward emits; per output set,
the ops a rewrite of the bundled EfficientNet-Lite0 adds. For judging a runtime other than
onnxruntime and OpenVINO (TensorRT, say) before trying it. ``update_readme.py`` writes both tables.

Per forward op, every case of the rule tests (``tests/graph/rules``) is differentiated at its highest
opset with each rule traced: the op types a rule emits are the nodes it adds to the graph. MaxPool is
listed twice: with its default backward and with ``maxpool="windows"``.

    python tools/backward_ops.py [--model PATH]
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from onnx_xai import augment  # noqa: E402
from onnx_xai.graph.autodiff import backward  # noqa: E402
from onnx_xai.graph.emitter import Emitter  # noqa: E402
from onnx_xai.graph.info import GraphInfo  # noqa: E402
from onnx_xai.graph.rules import rule_table  # noqa: E402
from onnx_xai.graph.rules.maxpool_windows import max_pool_by_windows  # noqa: E402

WINDOWS = 'MaxPool, `maxpool="windows"`'


def _traced(rules: dict, emitted: dict, e: Emitter, label=None) -> dict:
    def wrap(op_type, rule):
        def traced(em, node, g_out):
            before = len(e.nodes)
            result = rule(em, node, g_out)
            emitted[label or op_type].update(n.op_type for n in e.nodes[before:])
            return result

        return traced

    return {op: wrap(op, rule) for op, rule in rules.items()}


def per_forward_op() -> dict[str, set[str]]:
    """Forward op type -> the op types its backward emits, over every rule-test case."""
    from tests.graph.rules.harness import build
    from tests.graph.rules.test_coverage import TABLES

    emitted: dict[str, set[str]] = defaultdict(set)
    for table in TABLES:
        for case in table.CASES:
            model = build(case, case.opsets()[-1], np.float32)
            for rules, label in ((rule_table(), None), ({"MaxPool": max_pool_by_windows}, WINDOWS)):
                if label and not any(spec[0] == "MaxPool" for spec in case.nodes):
                    continue
                e = Emitter(GraphInfo(model))
                traced = (
                    _traced(rule_table(), emitted, e) | _traced(rules, emitted, e, label)
                    if label
                    else _traced(rules, emitted, e)
                )
                backward(e, "y", e.reserve("xai_seed"), list(case.wrt), rules=traced)
    return emitted


def per_output_set(model) -> dict[str, list[str]]:
    """Output set -> op types of its rewritten graph that the forward graph lacks."""
    forward = {n.op_type for n in model.graph.node}
    return {
        s: sorted({n.op_type for n in augment(model, outputs=[s]).graph.node} - forward)
        for s in ("activation", "cam", "gradcam", "input_grad", "guided")
    }


def backward_ops_table() -> str:
    emitted = per_forward_op()
    rows = ["| forward op | ops its backward emits |", "|---|---|"]
    for op in sorted(emitted, key=lambda o: (o.split(",")[0], o)):
        ops = ", ".join(sorted(emitted[op])) or "(no op: the cotangent passes as it is, or none flows)"
        rows.append(f"| {op} | {ops} |")
    return "\n".join(rows)


def output_set_table(path: str | None = None) -> str:
    import onnx

    from onnx_xai.photos import DEMO_MODEL

    model = onnx.load(path or str(DEMO_MODEL))
    rows = [
        f"| output set | op types added to {'the model' if path else 'EfficientNet-Lite0'}'s own |",
        "|---|---|",
    ]
    rows += [f"| `{s}` | {', '.join(ops)} |" for s, ops in per_output_set(model).items()]
    return "\n".join(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a classifier whose rewrites to list (default: the bundled one)")
    print(output_set_table(parser.parse_args().model) + "\n\n" + backward_ops_table())
