"""A table split over several inputs, as scikit-learn's converters write a data frame (one input per
column, a string column among them): the command line reads each input from the file's column of
that name and explains every column with KernelSHAP, against the Shapley values of scikit-learn's
own pipeline by enumeration (exact: three columns); a category written as a number stays text; the
columns the model does not read are said; a cell that is not a number and a missing column are one
line, exit 1; the gradient explains one input and says which."""

from __future__ import annotations

import csv
import itertools
import json
import math

import numpy as np
import onnx
import pytest

from onnx_xai.cli import main

COLUMNS = ("age", "income", "city")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    pd = pytest.importorskip("pandas")  # shap's dependency, so present wherever the tables' tests run
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.uniform(20, 70, n).astype(np.float32),
            "income": rng.normal(50, 15, n).astype(np.float32),
            "city": rng.choice(["paris", "lyon", "7"], n),  # "7": a category that reads as a number
        }
    )
    y = frame.age / 50 + frame.income / 40 + (frame.city == "7") + rng.normal(0, 0.3, n) > 2.3
    encode = ColumnTransformer(
        [("numbers", StandardScaler(), ["age", "income"]), ("city", OneHotEncoder(), ["city"])]
    )
    fitted = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    folder = tmp_path_factory.mktemp("split")
    onnx.save(to_onnx(fitted, frame[:1], options={"zipmap": False}), folder / "model.onnx")
    frame.assign(note="unused")[:4].to_csv(folder / "rows.csv", index=False)
    frame[100:116].to_csv(folder / "background.csv", index=False)
    return folder, frame, fitted


def margins(fitted, frame) -> np.ndarray:
    """The two-class logistic regression's margins [-d, d] (d: its decision function): the score
    explained, before the post-transform."""
    d = fitted.decision_function(frame)
    return np.stack([-d, d], axis=1)


def shapley(score, row, background, target: int) -> np.ndarray:
    """Each column's Shapley value of the mean score over the background, by enumeration."""

    def value(kept) -> float:
        mixed = background.copy()
        for column in kept:
            mixed[column] = row[column]
        return float(score(mixed)[:, target].mean())

    found = np.zeros(len(COLUMNS))
    for j, column in enumerate(COLUMNS):
        others = [c for c in COLUMNS if c != column]
        for size in range(len(others) + 1):
            weight = (
                math.factorial(size) * math.factorial(len(COLUMNS) - size - 1) / math.factorial(len(COLUMNS))
            )
            for kept in itertools.combinations(others, size):
                found[j] += weight * (value(kept + (column,)) - value(kept))
    return found


def test_every_column_explained_by_name_against_the_pipeline(pipeline, tmp_path, capsys):
    folder, frame, fitted = pipeline
    out = tmp_path / "out"
    args = ["explain", str(folder / "model.onnx"), str(folder / "rows.csv"), "--out", str(out)]
    assert main([*args, "--background", str(folder / "background.csv")]) == 0
    said = capsys.readouterr().out
    assert "columns no input of the model reads (left out): note" in said
    background = frame[100:116].reset_index(drop=True)
    for i in range(4):
        record = json.loads((out / "rows" / f"{i}.json").read_text())
        entry = record["explanations"][0]
        assert entry["method"] == "kernel_shap" and list(entry["attributions"]) == list(COLUMNS)
        assert record["values"]["city"] == frame.city[i]  # text as written, "7" included
        target = record["objective"]["class"]
        want = shapley(lambda f: margins(fitted, f), frame.iloc[i], background, target)
        got = np.array([entry["attributions"][c] for c in COLUMNS])
        assert np.abs(got - want).max() < 2e-5, (got, want)
        assert entry["base"] == pytest.approx(margins(fitted, background)[:, target].mean(), abs=1e-5)
    with open(out / "attributions.csv") as f:
        assert {r["feature"] for r in csv.DictReader(f)} == {*COLUMNS, "base"}


def test_the_gradient_explains_one_input_and_says_which(pipeline, tmp_path, capsys):
    folder, frame, fitted = pipeline
    out = tmp_path / "out"
    args = ["explain", str(folder / "model.onnx"), str(folder / "rows.csv"), "--out", str(out)]
    assert main([*args, "--method", "gradient", "--input", "income"]) == 0
    assert "the input 'income' explained, the others held as given (age, city" in capsys.readouterr().out
    record = json.loads((out / "rows" / "0.json").read_text())
    found = record["explanations"][0]["attributions"]
    assert list(found) == ["income"]
    step, row = 1e-2, frame[:1].astype({"income": np.float64})
    higher, lower = row.assign(income=row.income + step), row.assign(income=row.income - step)
    target = record["objective"]["class"]
    slope = (margins(fitted, higher)[0, target] - margins(fitted, lower)[0, target]) / (2 * step)
    assert found["income"] == pytest.approx(slope, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda f: f.astype({"income": object}).assign(income=["lots", 1, 2, 3]),
            "column 'income' holds 'lots' in row 1",
        ),
        (lambda f: f.drop(columns=["income"]), "has no column 'income' for the model's input 'income'"),
    ],
)
def test_a_file_the_inputs_cannot_take_is_one_line(pipeline, tmp_path, capsys, change, message):
    folder, frame, _ = pipeline
    change(frame[:4]).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out"
    args = ["explain", str(folder / "model.onnx"), str(tmp_path / "rows.csv"), "--out", str(out)]
    assert main([*args, "--background", str(folder / "background.csv")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0] and not out.exists()


def test_auditing_a_table_split_over_inputs_is_refused_in_one_line(pipeline, tmp_path, capsys):
    folder, _, _ = pipeline
    out = tmp_path / "out"
    args = ["audit", str(folder / "model.onnx"), str(folder / "rows.csv"), "--background"]
    assert main([*args, str(folder / "background.csv"), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert (
        len(error) == 1 and "3 inputs (age, income, city): auditing such a model is not supported" in error[0]
    )
    assert not out.exists()
