"""``onnx-xai explain`` on a table model: rows from CSV (a header naming the columns), Parquet or
.npy, background rows, the methods asked; attributions.csv, a JSON record per row and a summary
figure per method, the values those of the library; a missing column or a cell that is not a
number: exit 1 and one line naming it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import onnx_xai
from onnx_xai.cli import main

from .test_any_input import Mlp, export

NAMES = ["age", "income", "height", "weight", "score", "rank"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    model = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], folder / "mlp.onnx")
    rng = np.random.default_rng(0)
    rows, background = rng.normal(size=(4, 6)), rng.normal(size=(16, 6))
    header = ",".join(NAMES)
    np.savetxt(folder / "rows.csv", rows, delimiter=",", header=header, comments="")
    np.savetxt(
        folder / "bg.csv", background[:, ::-1], delimiter=",", header=",".join(NAMES[::-1]), comments=""
    )
    np.save(folder / "rows.npy", rows)
    return folder, model, rows, background


def test_rows_attributions_records_and_figures(files, tmp_path):
    folder, model, rows, background = files
    out = tmp_path / "out"
    args = ["explain", model, str(folder / "rows.csv"), "--background", str(folder / "bg.csv")]
    assert main([*args, "--method", "kernel_shap", "gradient", "--out", str(out)]) == 0
    ex = onnx_xai.Explainer(model)
    x = rows.astype(np.float32)
    kernel = ex.explain(
        x, "kernel_shap", background=background.astype(np.float32)
    )  # columns put back in order
    gradient = ex.explain(x, "gradient")
    with open(out / "attributions.csv") as f:
        table = list(csv.DictReader(f))
    found = {(int(r["row"]), r["method"], r["feature"]): float(r["value"]) for r in table}
    for i in range(4):
        for k, name in enumerate(NAMES):
            assert found[(i, "kernel_shap", name)] == pytest.approx(float(kernel.raw[i, k]), abs=1e-6)
            assert found[(i, "gradient", name)] == pytest.approx(float(gradient.raw[i, k]), abs=1e-6)
        assert found[(i, "kernel_shap", "base")] == pytest.approx(float(kernel.base[i]), abs=1e-6)
        record = json.loads((out / "rows" / f"{i}.json").read_text())
        assert (
            record["values"]["income"] == pytest.approx(rows[i, 1])
            and record["objective"]["class"] == kernel.targets[i]
        )
    for method in ("kernel_shap", "gradient"):
        with Image.open(out / f"summary.{method}.png") as picture:
            assert picture.format == "PNG" and picture.size[1] > 100


def test_npy_rows_and_the_default_method_said(files, tmp_path, capsys):
    folder, model, _, _ = files
    assert main(["explain", model, str(folder / "rows.npy"), "--out", str(tmp_path / "o")]) == 0
    assert "methods: gradient (no background rows were given" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content,message",
    [
        ("age,income\n1,2\n", "has 2 columns; the model takes 6"),
        ("a,b,c,d,e,f\n1,2,3,x,5,6\n", "column 'd' holds 'x' in row 1, not a number"),
    ],
)
def test_a_bad_file_is_one_line(files, tmp_path, capsys, content, message):
    folder, model, _, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert main(["explain", model, str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_background_missing_a_column_is_one_line(files, tmp_path, capsys):
    folder, model, _, _ = files
    bg = tmp_path / "bg.csv"
    bg.write_text("age,income,height,weight,score,other\n" + "1,2,3,4,5,6\n")
    args = ["explain", model, str(folder / "rows.csv"), "--background", str(bg), "--method", "kernel_shap"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 1
    assert "lacks the column 'rank'" in capsys.readouterr().err
