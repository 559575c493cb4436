"""Models as the converters write them: scikit-learn pipelines through skl2onnx, LightGBM and XGBoost
through onnxmltools, each built here at the converter's default opset.

What they write (measured with skl2onnx 1.20 and onnxmltools 1.16): a StandardScaler + LogisticRegression
pipeline imports ai.onnx 9 (its work is all ai.onnx.ml: Scaler, LinearClassifier, a Normalizer for
several classes, ZipMap), LightGBM 9 (8 for a regressor), XGBoost no ai.onnx opset at all; an MLP
pipeline and LinearRegression a recent one. The analysis upgrades a private copy
(:mod:`onnx_xai.graph.opsets`) and reads the score at ZipMap's input; the gradient of that score
(``vjp_model`` on the upgraded model, run by onnxruntime in float32) must equal the float64 gradient
computed with numpy from the fitted coefficients, within 1e-5. Trees have no gradient: the upgrade
must keep their outputs identical, and the sweep must refuse them by name.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnx_xai.graph import opsets
from onnx_xai.graph.analysis import score_tensor
from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.augment import analyze, augment
from onnx_xai.graph.info import GraphInfo
from onnx_xai.graph.opsets import MIN_OPSET, ai_onnx_opset, at_rule_opset
from onnx_xai.support.errors import ModelError, UnsupportedModelError

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")

from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

FEATURES = 5
ROWS = np.random.default_rng(30).normal(size=(80, FEATURES)).astype(np.float32)
TWO = (ROWS[:, 0] + ROWS[:, 1] > 0).astype(int)
THREE = np.digitize(ROWS[:, 0] - ROWS[:, 2], [-0.5, 0.5])


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def converted(estimator, y) -> onnx.ModelProto:
    """The fitted estimator through skl2onnx at its default target opset."""
    return skl2onnx.to_onnx(estimator.fit(ROWS, y), ROWS[:1])


def score_gradient(model: onnx.ModelProto, seed: np.ndarray) -> tuple[str, np.ndarray]:
    """The explained score's name and sum(seed * score)'s gradient on the input, the rewritten model
    run by onnxruntime."""
    a = analyze(model)
    rewritten = vjp_model(a.model, a.score.name, [a.source])
    (grad,) = session(rewritten).run([f"xai_grad/{a.source}"], {a.source: ROWS, "xai_seed": seed})
    return a.score.name, grad


def standardized(pipe) -> tuple[np.ndarray, np.ndarray]:
    """The scaler's output in float64, and d(it)/d(input) per column."""
    scaler = pipe[0]
    return (ROWS.astype(np.float64) - scaler.mean_) / scaler.scale_, 1.0 / scaler.scale_


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 3])
def test_scaler_and_logistic_regression(classes):
    """Explained on its margins (scikit-learn's decision_function, before the post-transform; for two
    classes [-d, d]), and on its probabilities with objective="probability"."""
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    model = converted(pipe, TWO if classes == 2 else THREE)
    assert ai_onnx_opset(model) < MIN_OPSET  # skl2onnx writes ai.onnx 9 here
    xs, slope = standardized(pipe)
    lr = pipe[-1]
    weights = np.concatenate([-lr.coef_, lr.coef_]) if classes == 2 else lr.coef_
    margins = xs @ weights.T + (np.r_[-lr.intercept_, lr.intercept_] if classes == 2 else lr.intercept_)
    np.testing.assert_allclose(
        margins[:, -1], pipe.decision_function(ROWS.astype(np.float64)).reshape(80, -1)[:, -1]
    )
    a = analyze(model)
    assert a.score.kind == ("pre-sigmoid" if classes == 2 else "pre-softmax")
    seed = np.random.default_rng(1).standard_normal((len(ROWS), classes))
    _, grad = score_gradient(model, seed.astype(np.float32))
    np.testing.assert_allclose(grad, seed @ weights * slope, rtol=0, atol=1e-5)
    target = np.arange(len(ROWS)) % classes
    feeds = {"X": ROWS, "xai_target": target}
    score, got = session(augment(model, outputs=["input_grad"])).run(["xai_score", "xai_input_grad"], feeds)
    np.testing.assert_allclose(score, margins[np.arange(len(ROWS)), target], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, weights[target] * slope, rtol=0, atol=1e-5)
    # as given: one class's probability per row, d p[target] / d input
    as_given = augment(analyze(model, objective="probability"), outputs=["input_grad"])
    (got,) = session(as_given).run(["xai_input_grad"], feeds)
    z = xs @ lr.coef_.T + lr.intercept_
    expected = probability_gradient(z, np.eye(classes)[target]) @ lr.coef_ * slope
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def probability_gradient(z: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """d sum(seed * p) / dz for scikit-learn's probabilities p: [1 - sigmoid(z), sigmoid(z)] for one
    column of z, softmax(z) otherwise (the Normalizer skl2onnx adds leaves them unchanged)."""
    if z.shape[1] == 1:
        p = 1 / (1 + np.exp(-z[:, 0]))
        return ((seed[:, 1] - seed[:, 0]) * p * (1 - p))[:, None]
    p = softmax(z)
    return p * (seed - (seed * p).sum(axis=1, keepdims=True))


def test_scaler_and_mlp_explains_the_logits():
    pipe = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(7,), max_iter=300, random_state=0)
    )
    model = converted(pipe, THREE)
    xs, slope = standardized(pipe)
    mlp = pipe[-1]
    hidden = xs @ mlp.coefs_[0] + mlp.intercepts_[0]
    seed = np.random.default_rng(2).standard_normal((len(ROWS), 3))
    expected = (((seed @ mlp.coefs_[1].T) * (hidden > 0)) @ mlp.coefs_[0].T) * slope
    name, grad = score_gradient(model, seed.astype(np.float32))
    assert GraphInfo(model).producer[name].op_type == "Add"  # the logits before the Softmax
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-5)


def test_linear_regression():
    regression = LinearRegression()
    model = converted(regression, ROWS @ np.arange(1.0, FEATURES + 1) + 0.5 + ROWS[:, 0] ** 2)
    seed = np.random.default_rng(3).standard_normal((len(ROWS), 1))
    _, grad = score_gradient(model, seed.astype(np.float32))
    np.testing.assert_allclose(grad, seed * regression.coef_[None, :], rtol=0, atol=1e-5)


def test_zipmap_is_read_at_its_input():
    """The score of skl2onnx's probability output (a sequence of maps) is the tensor ZipMap zips,
    before the float Cast skl2onnx writes for an SVC."""
    for estimator, before in [
        (make_pipeline(StandardScaler(), LogisticRegression()), "Normalizer"),
        (SVC(probability=True), "SVMClassifier"),
    ]:
        model = at_rule_opset(converted(estimator, THREE))
        info = GraphInfo(model)
        zipped = next(o.name for o in model.graph.output if o.type.HasField("sequence_type"))
        score = score_tensor(info, zipped)
        assert info.producer[score.name].op_type == before
        assert score.name not in {o for n in model.graph.node if n.op_type == "ZipMap" for o in n.output}


def test_opset_kept_where_new_enough():
    model = converted(LinearRegression(), ROWS[:, 0])
    assert ai_onnx_opset(model) >= MIN_OPSET and at_rule_opset(model) is model


def outputs(model: onnx.ModelProto) -> list[np.ndarray]:
    return session(model).run(None, {"X": ROWS})


def assert_same_outputs(model: onnx.ModelProto, upgraded: onnx.ModelProto) -> None:
    for before, after in zip(outputs(model), outputs(upgraded)):
        before, after = (
            (np.array([sorted(m.items()) for m in v]) if isinstance(v, list) else v) for v in (before, after)
        )
        np.testing.assert_array_equal(before, after)


def trees(kind: str) -> onnx.ModelProto:
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("X", FloatTensorType([None, FEATURES]))]
    if kind.startswith("lightgbm"):
        lightgbm = pytest.importorskip("lightgbm")
        estimator = (lightgbm.LGBMRegressor if kind.endswith("regressor") else lightgbm.LGBMClassifier)(
            n_estimators=4, verbose=-1
        )
        return convert_lightgbm(
            estimator.fit(ROWS, ROWS[:, 0] if kind.endswith("regressor") else THREE), initial_types=types
        )
    xgboost = pytest.importorskip("xgboost")
    return convert_xgboost(xgboost.XGBClassifier(n_estimators=4).fit(ROWS, TWO), initial_types=types)


@pytest.mark.parametrize("kind", ["lightgbm", "lightgbm_regressor", "xgboost"])
def test_trees_upgraded_with_the_same_outputs(kind):
    pytest.importorskip("onnxmltools")
    model = trees(kind)
    written = ai_onnx_opset(model)
    assert written is None if kind == "xgboost" else written < MIN_OPSET
    upgraded = at_rule_opset(model)
    assert ai_onnx_opset(upgraded) == MIN_OPSET and ai_onnx_opset(model) == written  # a copy
    assert [n.op_type for n in upgraded.graph.node] == [n.op_type for n in model.graph.node]
    onnx.checker.check_model(upgraded, full_check=True)
    assert_same_outputs(model, upgraded)
    a = analyze(model)
    with pytest.raises(UnsupportedModelError, match=r"\(TreeEnsemble(Classifier|Regressor)\)"):
        vjp_model(a.model, a.score.name, [a.source])


def test_a_model_the_converter_cannot_upgrade_is_refused_in_one_line(monkeypatch):
    def refuse(model, version):
        raise RuntimeError("adapter_lookup: No Adapter From Version $10 for Foo\nmore")

    monkeypatch.setattr(opsets.version_converter, "convert_version", refuse)
    model = converted(make_pipeline(StandardScaler(), LogisticRegression()), TWO)
    expected = (
        "cannot upgrade the model from opset 9 to 11, which the rewrite needs: adapter_lookup: No Adapter"
    )
    with pytest.raises(ModelError, match=f"^{expected} From Version \\$10 for Foo$"):
        at_rule_opset(model)
