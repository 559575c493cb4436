"""``onnx-xai serve`` on a table model: rows as lists or objects by column name (the background
file's header), ``:predict`` the model's output, ``:explain`` each row's attributions by column (the
library's values) and its base; a missing column or a value that is not a number is a one-line 400;
the methods a request gets when it names none are the table's (KernelSHAP with background rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnx_xai

from ..inputs.test_any_input import Mlp, export
from .server import Served

NAMES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served_table")
    model = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], folder / "mlp.onnx")
    background = np.random.default_rng(0).normal(size=(20, 6))
    np.savetxt(folder / "bg.csv", background, delimiter=",", header=",".join(NAMES), comments="")
    server = Served("--background", str(folder / "bg.csv"), "--grpc-port", "0", model=model, name="rows")
    yield server, model, background.astype(np.float32)
    server.stop()


def test_rows_explained_by_column(served):
    server, model, background = served
    rows = np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32)
    status, body = server.call("explain", [dict(zip(NAMES, map(float, rows[0]))), list(map(float, rows[1]))])
    assert status == 200
    want = onnx_xai.Explainer(model).explain(rows, "kernel_shap", background=background)
    for i, entries in enumerate(body["explanations"]):
        (entry,) = entries
        assert entry["method"] == "kernel_shap" and entry["target"] == want.targets[i]
        got = [entry["attributions"][n] for n in NAMES]
        assert np.allclose(got, want.raw[i], atol=1e-5) and entry["base"] == pytest.approx(
            float(want.base[i]), abs=1e-5
        )
    status, body = server.call("predict", [list(map(float, rows[0]))])
    assert status == 200 and len(body["predictions"][0]["top_k"]) == 3


@pytest.mark.parametrize(
    "row,message",
    [
        ({"a": 1.0}, "instance 0: no value for column 'b'; columns: a, b, c, d, e, f"),
        ([1, 2, 3], "instance 0 must be a row of 6 numbers (or an object by column name)"),
        ([1, 2, 3, 4, 5, "x"], "instance 0: column 'f' holds 'x', not a finite number"),
    ],
)
def test_a_bad_row_is_one_line(served, row, message):
    status, body = served[0].call("explain", [row])
    assert status == 400 and body["error"] == message
