"""``onnx-xai serve`` on a table split over several inputs (scikit-learn's ColumnTransformer through
skl2onnx: two number columns and a text column, each its own input): rows as objects by column name
or as lists, the text column as written; ``:explain`` gives every column's KernelSHAP value, equal to
the Shapley values of scikit-learn's own pipeline by enumeration (in margin space, against the
server's background rows), ``:predict`` the pipeline's probabilities, V2 infer takes one tensor per
input; a cell that is not a number for a number input is a one-line 400."""

from __future__ import annotations

import numpy as np
import pytest

from ..inputs.test_table_inputs import COLUMNS, margins, pipeline, shapley  # noqa: F401 - the fixture
from .server import Served


@pytest.fixture(scope="module")
def served(pipeline):  # noqa: F811 - the imported fixture
    folder, frame, fitted = pipeline
    server = Served("--background", str(folder / "background.csv"), model=folder / "model.onnx", name="split")
    yield server, frame, fitted
    server.stop()


def test_every_column_of_every_input_explained_against_the_pipeline(served):
    server, frame, fitted = served
    rows = [frame.iloc[i] for i in range(3)]
    instances = [{c: (str(r[c]) if c == "city" else float(r[c])) for c in COLUMNS} for r in rows[:2]]
    instances.append([float(rows[2].age), float(rows[2].income), str(rows[2].city)])
    status, body = server.call("explain", instances)
    assert status == 200, body
    background = frame[100:116].reset_index(drop=True)
    for i, (entry,) in enumerate(body["explanations"]):
        assert entry["method"] == "kernel_shap" and list(entry["attributions"]) == list(COLUMNS)
        want = shapley(lambda f: margins(fitted, f), rows[i], background, entry["target"])
        got = np.array([entry["attributions"][c] for c in COLUMNS])
        assert np.abs(got - want).max() < 2e-5, (got, want)
        assert entry["base"] == pytest.approx(
            margins(fitted, background)[:, entry["target"]].mean(), abs=1e-5
        )
    status, body = server.call("predict", instances[:1])
    probabilities = fitted.predict_proba(frame[:1])[0]
    assert status == 200
    assert [k["probability"] for k in body["predictions"][0]["top_k"]] == pytest.approx(
        sorted(probabilities, reverse=True), abs=1e-5
    )


def test_v2_infer_takes_one_tensor_per_input(served):
    server, frame, fitted = served
    rows = frame[:3]
    body = {
        "inputs": [
            {"name": "age", "shape": [3, 1], "datatype": "FP32", "data": rows.age.tolist()},
            {"name": "income", "shape": [3, 1], "datatype": "FP32", "data": rows.income.tolist()},
            {"name": "city", "shape": [3, 1], "datatype": "BYTES", "data": rows.city.tolist()},
        ]
    }
    status, answer = server.post(f"/v2/models/{server.name}/infer", body)
    assert status == 200, answer
    np.testing.assert_allclose(
        np.reshape(answer["outputs"][0]["data"], (3, 2)), fitted.predict_proba(rows), atol=1e-5
    )
    status, metadata = server.get(f"/v2/models/{server.name}")
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("age", "FP32"),
        ("income", "FP32"),
        ("city", "BYTES"),
    ]
    status, answer = server.post(f"/v2/models/{server.name}/infer", {"inputs": body["inputs"][:2]})
    assert status == 400 and "the model takes the input tensors age, income, city" in answer["error"]


@pytest.mark.parametrize(
    "row,message",
    [
        (
            {"age": "old", "income": 50.0, "city": "paris"},
            "instance 0: column 'age' holds 'old', not a number (the model's input 'age' takes numbers)",
        ),
        (
            {"age": 30.0, "city": "paris"},
            "instance 0: no value for column 'income'; columns: age, income, city",
        ),
        ([30.0, 50.0], "instance 0 must be a row of 3 values (or an object by column name)"),
    ],
)
def test_a_bad_row_is_one_line(served, row, message):
    status, body = served[0].call("explain", [row])
    assert status == 400 and message in body["error"]
