"""Exact interventional TreeSHAP from ONNX tree ensembles, against shap, onnxruntime and Shapley
values by enumeration of every coalition.

Per converted model: the margins match onnxruntime run with the post-transform switched off (1e-5
relative: onnxruntime sums leaf weights in float32, we sum in float64), the values match
``shap.TreeExplainer(model, data=B, feature_perturbation="interventional", model_output="raw")`` on
the same rows and background within 1e-5, and they add up to the margin minus the background's mean
margin to 1e-9 (measured: 1e-15).

Why 1e-5 holds everywhere, not only where thresholds agree: converters write thresholds as float32
(skl2onnx and onnxmltools round sklearn's and LightGBM's float64 midpoints; XGBoost's are float32
already), and a row can only be decided differently by the library and by the ONNX file when its
value lies between the float64 threshold and its float32 rounding. The rows here are float32 values
and never land there (measured: every converter within 1e-7 of shap), so no case needs the 1e-4 the
issue allows. :func:`test_onnx_decides_at_a_rounded_threshold` puts a row exactly there: our values
then follow onnxruntime, which is the model being explained, and shap's follow the library.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_xai.graph.trees import read_ensemble
from onnx_xai.runtime.treeshap import interventional_tree_shap
from onnx_xai.support.errors import InputError, ModelError

from .tree_forms import (
    chained_model,
    model_of,
    random_trees,
    v3_classifier,
    v3_node,
    v3_regressor,
    v5_from_trees,
    v5_from_v3,
)
from .tree_models import (
    MLTOOLS,
    PIPELINES,
    SKLEARN,
    case,
    margins_by_onnxruntime,
    pipelines,
    shapley_by_enumeration,
)

shap = pytest.importorskip("shap")


def library_shap(library, rows: np.ndarray, background: np.ndarray, columns) -> np.ndarray:
    """shap's interventional values in our layout [N, F, outputs]."""
    explainer = shap.TreeExplainer(
        library, data=background, feature_perturbation="interventional", model_output="raw"
    )
    values = np.asarray(explainer.shap_values(rows, check_additivity=False))
    return values[..., None] if columns is None else values[..., list(columns)]


def check_margins(model: onnx.ModelProto, output: str, tree, rows: np.ndarray) -> None:
    reference = margins_by_onnxruntime(model, output, rows)[:, list(tree.scores.classes)]
    np.testing.assert_allclose(tree.margins(rows), reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


def check_additive(tree, values: np.ndarray, base: np.ndarray, rows: np.ndarray) -> None:
    np.testing.assert_allclose(values.sum(axis=1) + base, tree.margins(rows), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", SKLEARN + MLTOOLS)
def test_converted_models_match_shap_and_onnxruntime(name):
    c = case(name)
    tree = read_ensemble(c.onnx, c.output)
    check_margins(c.onnx, c.output, tree, np.r_[c.rows, c.background])
    values, base = interventional_tree_shap(tree, c.rows, c.background)
    if c.shap_columns == "all coalitions":
        by_ort = lambda r: margins_by_onnxruntime(c.onnx, c.output, r)[:, list(tree.scores.classes)]  # noqa: E731
        expected = shapley_by_enumeration(by_ort, c.rows, c.background)
    else:
        expected = library_shap(c.library, c.rows, c.background, c.shap_columns)
    np.testing.assert_allclose(values, expected, rtol=0, atol=c.tolerance)
    check_additive(tree, values, base, c.rows)


def test_binary_conventions_are_said():
    """One margin column for a two-class ensemble with one score, and how onnxruntime writes it."""
    forest = read_ensemble(case("RandomForestClassifier binary").onnx, "output_probability")
    boost = read_ensemble(case("LGBMClassifier binary").onnx, "probabilities")
    assert (forest.outputs, forest.scores.classes, forest.scores.binary) == (1, (1,), "[1 - s, s]")
    assert (boost.post_transform, boost.scores.binary) == ("LOGISTIC", "[logistic(-s), logistic(s)]")
    assert boost.after == ("Identity", "Mul")


TWO_CLASSES = {  # class ids weighted, base values, post_transform, weights >= 0 -> columns, binary rule
    "one score, mixed weights": ([0], [0.3], "NONE", False, (1,), "[-s, s]"),
    "one score, weights >= 0": ([0], [], "SOFTMAX", True, (1,), "[1 - s, s]"),
    "one score, weights >= 0, LOGISTIC": ([0], [], "LOGISTIC", True, (1,), "[logistic(-s), logistic(s)]"),
    "one score, LOGISTIC": ([0], [0.3], "LOGISTIC", False, (1,), "[logistic(-s), logistic(s)]"),
    "both classes, two base values": ([0, 1], [0.3, 0.7], "NONE", False, (0, 1), None),
    "class 0, two base values": ([0], [0.3, 0.7], "NONE", False, (0, 1), None),
    "both classes, one base value": ([0, 1], [0.3], "SOFTMAX", False, (0, 1), None),
    "three classes": ([0, 1, 2], [0.1, 0.2, 0.3], "SOFTMAX", False, (0, 1, 2), None),
}
RULES = {
    "[-s, s]": lambda s: np.c_[-s, s],
    "[1 - s, s]": lambda s: np.c_[1 - s, s],
    "[logistic(-s), logistic(s)]": lambda s: np.c_[1 / (1 + np.exp(s)), 1 / (1 + np.exp(-s))],
}


@pytest.mark.parametrize("form", list(TWO_CLASSES))
def test_classifier_scores_follow_onnxruntime(form):
    """onnxruntime's two-class rules, measured: one score becomes two columns by the rule said (the
    post-transform applied for LOGISTIC only), two base values with class-1 weights everywhere give
    [-(b1 + s0), b1 + s0] (class-1 weights unused), and without class-1 weights [b0 + s0, 0]."""
    classes, base, post, positive, columns, rule = TWO_CLASSES[form]
    trees, _ = random_trees(8)
    model = v3_classifier(trees, classes, max(2, len(classes)), base, post, positive)
    tree = read_ensemble(model, "Y")
    assert (tree.scores.classes, tree.scores.binary) == (columns, rule)
    rows, background = grid_rows(6, [-1, -0.5, 0, 0.5, 1, np.nan], (20, 4)), grid_rows(7, [-1, 0, 1], (10, 4))
    check_margins(model, "Y", tree, rows)
    if rule:
        import onnxruntime as ort

        written = ort.InferenceSession(model.SerializeToString()).run(["Y"], {"X": rows.astype(np.float32)})[
            0
        ]
        np.testing.assert_allclose(written, RULES[rule](tree.margins(rows)[:, 0]), rtol=1e-5, atol=1e-6)
    phi, base_value = interventional_tree_shap(tree, rows, background)
    np.testing.assert_allclose(
        phi, shapley_by_enumeration(tree.margins, rows, background), rtol=0, atol=1e-12
    )
    check_additive(tree, phi, base_value, rows)


def grid_rows(seed: int, values: list[float], shape: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(values, np.float32), size=shape).astype(np.float64)


HANDWRITTEN = {
    "opset 3, every mode, NaN rules": lambda trees: v3_regressor(trees, 4),
    "opset 3, double thresholds, AVERAGE": lambda trees: v3_regressor(trees, 4, "AVERAGE", np.float64),
    "opset 5, every mode, NaN rules": lambda trees: v5_from_trees(trees, 4),
    "opset 5, sets, two targets": lambda trees: v5_from_trees(
        trees,
        4,
        {(0, 0): [-1.0, 1.0], (1, 0): [0.0], (2, 1): [1.0, 0.0, -1.0], (3, 0): [2.0, 1.0]},
        n_targets=2,
    ),
}


@pytest.mark.parametrize("form", list(HANDWRITTEN))
def test_handwritten_forms_match_enumeration(form):
    """Random trees using every comparison mode, NaN sent either way, set membership, on values that
    hit the thresholds exactly; set-tested columns hold integers (category codes, see model._member)."""
    trees, _ = random_trees(3)
    model = HANDWRITTEN[form](trees)
    tree = read_ensemble(model, "Y")
    assert tree.forest.dtype == (
        np.float64 if "double" in form else np.float32
    )  # compared as onnxruntime does
    values = [-1, 0, 1, 2, np.nan] if "sets" in form else [-1, -0.5, 0, 0.25, 0.5, 1, np.nan]
    rows, background = grid_rows(1, values, (20, 4)), grid_rows(2, values, (15, 4))
    check_margins(model, "Y", tree, rows)
    phi, base = interventional_tree_shap(tree, rows, background)
    np.testing.assert_allclose(
        phi, shapley_by_enumeration(tree.margins, rows, background), rtol=0, atol=1e-12
    )
    by_ort = shapley_by_enumeration(lambda r: margins_by_onnxruntime(model, "Y", r), rows, background)
    np.testing.assert_allclose(phi, by_ort, rtol=0, atol=1e-5)
    check_additive(tree, phi, base, rows)


@pytest.mark.parametrize("name", ["GradientBoostingRegressor", "LGBMRegressor with NaN"])
def test_opset5_form_equals_opset3_form(name):
    c = case(name)
    v5 = v5_from_v3(c.onnx)
    old, new = read_ensemble(c.onnx, c.output), read_ensemble(v5, c.output)
    assert new.op_type == "TreeEnsemble" and new.after == ("Add",)
    by_ort = margins_by_onnxruntime(v5, c.output, c.rows) - old.forest.base  # the Add after the trees
    np.testing.assert_allclose(new.margins(c.rows), by_ort, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new.margins(c.rows) + old.forest.base, old.margins(c.rows), rtol=0, atol=1e-12)
    a, _ = interventional_tree_shap(old, c.rows, c.background)
    b, _ = interventional_tree_shap(new, c.rows, c.background)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_opset5_post_transform_is_named_as_onnxruntime_runs_it():
    """onnxruntime 1.32 reads TreeEnsemble's post_transform 1 as LOGISTIC (the spec says SOFTMAX)."""
    trees, _ = random_trees(4)
    model = v5_from_trees(trees, 4, post=1, n_targets=2)
    tree = read_ensemble(model, "Y")
    rows = grid_rows(3, [-1, 0, 0.5, 1], (10, 4))
    session_out = margins_by_onnxruntime(model, "Y", rows)  # post_transform switched off
    assert tree.post_transform == "LOGISTIC"
    import onnxruntime as ort

    probabilities = ort.InferenceSession(model.SerializeToString()).run(None, {"X": rows.astype(np.float32)})[
        0
    ]
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-session_out)), rtol=1e-5)


@pytest.mark.parametrize("name", PIPELINES)
def test_pipelines_are_explained_on_their_input_columns(name):
    pipe, model, x = pipelines()[name]
    output = model.graph.output[-1].name
    tree = read_ensemble(model, output)
    rows, background = x[300:330], x[330:350]
    check_margins(model, output, tree, rows)
    phi, base = interventional_tree_shap(tree, rows, background)
    by_ort = lambda r: margins_by_onnxruntime(model, output, r)[:, list(tree.scores.classes)]  # noqa: E731
    np.testing.assert_allclose(phi, shapley_by_enumeration(by_ort, rows, background), rtol=0, atol=1e-5)
    check_additive(tree, phi, base, rows)
    if (
        "StandardScaler" in name
    ):  # shap on the inner model, fed the columns exactly as onnxruntime scales them
        inner = pipe.steps[-1][1]
        seen = lambda r: tree.columns.apply(r).astype(np.float64)  # noqa: E731
        np.testing.assert_allclose(
            phi, library_shap(inner, seen(rows), seen(background), None), rtol=0, atol=1e-5
        )


def test_every_column_op_maps_back_exactly():
    """Slice, Gather, FeatureVectorizer padding (a constant column), Imputer, a Scaler with negative and
    zero scales, Mul and Cast in front of the trees: decided as onnxruntime decides, attributed to the
    4 input columns."""
    model = chained_model(5)
    tree = read_ensemble(model, "Y")
    assert tree.columns.source.tolist() == [1, 2, 3, 2, 0, -1]
    values = [-1, -0.5, 0, 0.25, 0.5, 1, np.nan]
    rows, background = grid_rows(4, values, (20, 4)), grid_rows(5, values, (12, 4))
    check_margins(model, "Y", tree, rows)
    phi, base = interventional_tree_shap(tree, rows, background)
    by_ort = shapley_by_enumeration(lambda r: margins_by_onnxruntime(model, "Y", r), rows, background)
    np.testing.assert_allclose(phi, by_ort, rtol=0, atol=1e-5)
    check_additive(tree, phi, base, rows)


def test_onnx_decides_at_a_rounded_threshold():
    """A row exactly at a split's float32 threshold, above the library's float64 one: onnxruntime and
    we send it left, scikit-learn right; our values explain the ONNX model."""
    c = case("GradientBoostingRegressor")
    split = c.library.estimators_[0, 0].tree_
    node = next(i for i in range(split.node_count) if split.children_left[i] >= 0
                and float(np.float32(split.threshold[i])) > split.threshold[i])  # fmt: skip
    rows = c.rows[:4].copy()
    rows[0, split.feature[node]] = float(np.float32(split.threshold[node]))
    tree = read_ensemble(c.onnx, c.output)
    check_margins(c.onnx, c.output, tree, rows)
    phi, base = interventional_tree_shap(tree, rows, c.background)
    check_additive(tree, phi, base, rows)
    theirs = library_shap(c.library, rows, c.background, None)
    assert np.abs(phi[1:] - theirs[1:]).max() < 1e-5  # rows off the threshold agree
    assert np.abs(phi[0] - theirs[0]).max() > 1e-5  # the row on it does not: the file decides


def test_memory_is_bounded_by_the_chunk():
    """Results do not depend on the chunk, and a small chunk keeps the peak small where one float64
    per (row, background row, leaf) would take 50 MB."""
    import tracemalloc

    c = case("LGBMClassifier 3 classes")
    tree = read_ensemble(c.onnx, c.output)
    rows = np.repeat(c.rows, 15, axis=0)  # 600 rows, 30 background rows, ~300 leaves
    whole, _ = interventional_tree_shap(tree, rows[:40], c.background)
    small, _ = interventional_tree_shap(tree, rows[:40], c.background, chunk=300)
    np.testing.assert_allclose(small, whole, rtol=0, atol=1e-12)
    tracemalloc.start()
    interventional_tree_shap(tree, rows, c.background, chunk=1 << 14)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3e6, peak


def _refused(model: onnx.ModelProto, output: str = "Y") -> str:
    with pytest.raises(ModelError) as caught:
        read_ensemble(model, output)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_what_cannot_be_explained_exactly_is_refused_in_one_line():
    trees, _ = random_trees(6)
    assert "not additive" in _refused(v3_regressor(trees, 4, "MAX"))
    normalized = model_of([helper.make_node("Normalizer", ["X"], ["n"], domain="ai.onnx.ml", norm="L2"),
                         v3_node(trees, source="n")], 4, 1, 3)  # fmt: skip
    message = _refused(normalized)
    assert "a Normalizer node is not a per-column map" in message and "KernelSHAP" in message
    two = model_of([v3_node(trees), v3_node(trees)], 4, 1, 3)
    two.graph.node[1].output[0] = "Y2"
    two.graph.node.append(helper.make_node("Add", ["Y", "Y2"], ["S"]))
    two.graph.output[0].name = "S"
    assert "depends on 2 tree ensembles" in _refused(two, "S")
    beside = model_of([v3_node(trees), helper.make_node("ReduceSum", ["X"], ["r"], keepdims=1),
                     helper.make_node("Add", ["Y", "r"], ["S"])], 4, 1, 3)  # fmt: skip
    beside.graph.output[0].name = "S"
    assert "also depends on 'r'" in _refused(beside, "S")


def test_a_class_scored_in_some_leaves_only_is_refused():
    model = onnx.ModelProto.FromString(case("GradientBoostingClassifier binary").onnx.SerializeToString())
    ensemble = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    ids = next(a for a in ensemble.attribute if a.name == "class_ids")
    ids.ints[0] = 1
    assert "class 1 in some leaves only" in _refused(model, "output_probability")


def test_bad_rows_are_input_errors():
    c = case("XGBRegressor")
    tree = read_ensemble(c.onnx, c.output)
    with pytest.raises(InputError, match="expected rows of 5 columns"):
        interventional_tree_shap(tree, c.rows[:, :4], c.background)
    with pytest.raises(InputError, match="background"):
        interventional_tree_shap(tree, c.rows, c.background[:0])
