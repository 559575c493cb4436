"""Tree ensembles through the Explainer: ``tree_shap`` against SHAP's interventional TreeExplainer
for the class explained (class 0 of a two-class ensemble is its margin's negative), the base the
background's mean margin; ``kernel_shap`` on the same margins equal to it where it enumerates every
coalition; the record's score kind; the CLI's default method for a tree model, said."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import shap

import onnx_xai
from onnx_xai.cli import main


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    folder = tmp_path_factory.mktemp("trees")
    x, y = make_classification(300, 6, n_informative=4, n_classes=3, n_clusters_per_class=1, random_state=0)
    x = x.astype(np.float32)
    binary = GradientBoostingClassifier(n_estimators=15, random_state=0).fit(x, y == 0)
    onnx.save(to_onnx(binary, x[:1]), folder / "gbdt.onnx")
    three = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1).fit(x, y)
    types = [("X", FloatTensorType([None, 6]))]
    onnx.save(convert_lightgbm(three, initial_types=types, zipmap=False), folder / "lgbm.onnx")
    return folder, x, {"gbdt": binary, "lgbm": three}


def test_tree_shap_is_shap_for_each_class(models):
    folder, x, fitted = models
    background, rows = x[:40], x[200:206]
    for name, classes in (("gbdt", 2), ("lgbm", 3)):
        ex = onnx_xai.Explainer(str(folder / f"{name}.onnx"))
        assert ex.kind == "table" and ex.record.score_kind == "margin"
        reference = shap.TreeExplainer(
            fitted[name], data=background, feature_perturbation="interventional", model_output="raw"
        )
        values, expected = np.asarray(reference.shap_values(rows)), np.ravel(reference.expected_value)
        for target in range(classes):
            r = ex.explain(rows, "tree_shap", background=background, objective=target)
            if classes == 2:  # SHAP's one output is class 1's log-odds; class 0's is its negative
                want, base = (values if target == 1 else -values), (1 if target == 1 else -1) * expected[0]
            else:
                want, base = values[..., target], expected[target]
            assert np.abs(r.raw - want).max() < 1e-4, (name, target)
            assert np.allclose(r.base, base, atol=1e-5)


def test_kernel_shap_on_the_margins_is_tree_shap_when_exact(models):
    folder, x, _ = models
    ex = onnx_xai.Explainer(str(folder / "gbdt.onnx"))
    background, rows = x[:30], x[100:104]
    tree = ex.explain(rows, "tree_shap", background=background)
    kernel = ex.explain(rows, "kernel_shap", background=background)  # 6 columns: every coalition
    assert np.abs(kernel.raw - tree.raw).max() < 1e-5 and np.allclose(kernel.base, tree.base, atol=1e-6)


def test_the_cli_explains_a_tree_model_with_tree_shap(models, tmp_path, capsys):
    folder, x, _ = models
    np.savetxt(tmp_path / "rows.csv", x[:5], delimiter=",")
    np.savetxt(tmp_path / "bg.csv", x[50:80], delimiter=",")
    args = ["explain", str(folder / "gbdt.onnx"), str(tmp_path / "rows.csv"), "--background"]
    assert main([*args, str(tmp_path / "bg.csv"), "--out", str(tmp_path / "out")]) == 0
    assert "methods: tree_shap (the model is a tree ensemble" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.tree_shap.png").is_file()
    without = ["explain", str(folder / "gbdt.onnx"), str(tmp_path / "rows.csv"), "--out", str(tmp_path / "o")]
    assert main(without) == 1  # no gradient crosses trees: background rows or nothing
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "onnx-xai: error: a tree ensemble is explained against background rows: give --background ROWS"
    ]


def test_objective_probability_explains_the_output_as_given(models):
    folder, x, _ = models
    ex = onnx_xai.Explainer(str(folder / "gbdt.onnx"), objective="probability")
    assert ex.record.score_kind == "output"
    rows, background = x[100:104], x[:30]
    r = ex.explain(rows, "kernel_shap", background=background)
    probabilities = ex.predict(rows)[np.arange(4), r.targets]
    assert np.allclose(r.raw.sum(1) + r.base, probabilities, atol=1e-5)
    assert np.allclose(r.base, ex.predict(background)[:, r.targets].mean(0), atol=1e-5)
    with pytest.raises(onnx_xai.InputError, match="objective='probability'"):
        ex.explain(rows, "tree_shap", background=background)


def test_trees_behind_a_normalizer_are_explained_on_the_output_and_say_why(tmp_path, capsys):
    """A Normalizer's row-wise scaling cannot be read back to the columns, so no margin per column:
    KernelSHAP explains the probability (adding up to scikit-learn's), each result and inspect say
    why, and tree_shap is refused in one line."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    pipeline = make_pipeline(Normalizer(), GradientBoostingClassifier(n_estimators=5, max_depth=2))
    pipeline.fit(x, x[:, 0] + x[:, 1] > 0)
    path = tmp_path / "normalized.onnx"
    onnx.save(to_onnx(pipeline, x[:1], options={"zipmap": False}), path)
    ex = onnx_xai.Explainer(str(path))
    assert ex.score_kind == "output" and ex.tree_model() is None
    r = ex.explain(x[:3], "kernel_shap", background=x[:16], objective=1)
    assert "output as given" in r.note and "Normalizer" in r.note
    np.testing.assert_allclose(r.raw.sum(axis=1) + r.base, pipeline.predict_proba(x[:3])[:, 1], atol=1e-5)
    with pytest.raises(onnx_xai.InputError, match="trees of this model cannot be read"):
        ex.explain(x[:3], "tree_shap", background=x[:16])
    assert main(["inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "not the trees' margin" in shown and "methods: kernel_shap only" in shown
    np.savetxt(tmp_path / "rows.csv", x[:3], delimiter=",")
    np.savetxt(tmp_path / "bg.csv", x[:16], delimiter=",")
    args = ["explain", str(path), str(tmp_path / "rows.csv"), "--background", str(tmp_path / "bg.csv")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert "methods: kernel_shap (the model's trees cannot be read back" in capsys.readouterr().out
