"""``audit`` on tables: the curves over features against their closed form on a linear score, the
random baseline's curves from its stored attribution, the randomized-model check on an MLP (weights)
and on tree ensembles (leaf values, every form), and the command line end to end with its one-line
errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from markupsafe import escape
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.audit.curves import Protocol
from onnx_xai.audit.features import RowScorer, feature_curves
from onnx_xai.audit.learned import NOTHING, learned_layers, randomized_learned
from onnx_xai.audit.randomization import parameter_layers
from onnx_xai.audit.sanity import ATTRIBUTIONS, cascading_randomization
from onnx_xai.audit.similarity import spearman
from onnx_xai.audit.table_auditor import TableAuditOptions
from onnx_xai.audit.table_run import audit_table
from onnx_xai.cli import main
from onnx_xai.tables.rows import Rows, read_rows
from tests.inputs.test_any_input import Mlp, export
from tests.tables.tree_forms import random_trees, v3_regressor, v5_from_trees

NAMES = ("age", "income", "height", "weight", "score", "rank")
W = np.array([2.0, -1.0, 0.5, 3.0, -0.25, 1.5], np.float32)
C = 0.5


def linear_model(weighted: bool = True) -> onnx.ModelProto:
    """y = X @ W + C, [N, 1]; ``weighted=False``: the same score as a Mul by W and a ReduceSum, which
    has no layer the randomization check re-draws."""
    t = numpy_helper.from_array
    if weighted:
        nodes = [helper.make_node("MatMul", ["X", "W"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"])]
        inits = [t(W[:, None], "W"), t(np.array([C], np.float32), "c")]
    else:
        nodes = [
            helper.make_node("Mul", ["X", "W"], ["m"]),
            helper.make_node("ReduceSum", ["m", "axes"], ["s"], keepdims=1),
            helper.make_node("Add", ["s", "c"], ["y"]),
        ]
        inits = [t(W, "W"), t(np.array([1], np.int64), "axes"), t(np.array([C], np.float32), "c")]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The linear model, 4 rows and 10 background rows, as files (the background's columns reversed)."""
    folder = tmp_path_factory.mktemp("table")
    onnx.save(linear_model(), folder / "linear.onnx")
    onnx.save(linear_model(weighted=False), folder / "mul.onnx")
    rng = np.random.default_rng(0)
    rows, background = rng.normal(size=(4, 6)), rng.normal(size=(10, 6))
    np.savetxt(folder / "rows.csv", rows, delimiter=",", header=",".join(NAMES), comments="")
    np.savetxt(
        folder / "bg.csv", background[:, ::-1], delimiter=",", header=",".join(NAMES[::-1]), comments=""
    )
    return folder, rows.astype(np.float32), background.astype(np.float32)


def closed_form(x: np.ndarray, background: np.ndarray, order: np.ndarray, counts: np.ndarray):
    """The linear score's deletion and insertion curves: removing feature j moves the mean score by
    -phi_j = -W_j (x_j - mean(b_j))."""
    phi = W.astype(np.float64) * (x - background.mean(axis=0))
    own, base = float(W @ x + C), float((background @ W + C).mean())
    moved = np.r_[0.0, np.cumsum(phi[order])][counts]
    return own - moved, base + moved


def trapezoid(curve: np.ndarray, fractions: np.ndarray) -> float:
    return float(
        sum((curve[k] + curve[k + 1]) / 2 * (fractions[k + 1] - fractions[k]) for k in range(len(curve) - 1))
    )


@pytest.mark.parametrize("steps,counts", [(32, [0, 1, 2, 3, 4, 5, 6]), (3, [0, 2, 4, 6])])
def test_curves_are_the_closed_form_of_a_linear_score(table, steps, counts):
    folder, rows, background = table
    ex = onnx_xai.Explainer(str(folder / "linear.onnx"))
    phi = W * (rows - background.mean(axis=0))
    shap = ex.explain(rows, "kernel_shap", background=background)
    assert np.abs(shap.raw - phi).max() < 1e-5  # KernelSHAP of a linear score is phi, exactly
    fractions = np.array(counts) / 6
    for i in range(len(rows)):
        found = feature_curves(RowScorer(ex), rows[i], background, phi[i], 0, steps, noise_seed=0)
        deletion, insertion = closed_form(rows[i], background, np.argsort(-np.abs(phi[i])), np.array(counts))
        assert found["fractions"] == pytest.approx(fractions, abs=1e-6)
        assert found["deletion_curve"] == pytest.approx(deletion, abs=1e-5)
        assert found["insertion_curve"] == pytest.approx(insertion, abs=1e-5)
        assert found["deletion_auc"] == pytest.approx(trapezoid(deletion, fractions), abs=1e-5)
        assert found["insertion_auc"] == pytest.approx(trapezoid(insertion, fractions), abs=1e-5)


def test_audit_records_the_methods_and_the_random_baseline(table, tmp_path):
    folder, rows, _ = table
    given = read_rows(folder / "rows.csv")
    background = read_rows(folder / "bg.csv", names=given.names)  # columns put back in order
    opts = TableAuditOptions(background, ["kernel_shap", "gradient"], randomization_steps=4)
    written = audit_table(str(folder / "linear.onnx"), given, tmp_path / "out", opts)
    records = [json.loads(line) for line in open(written["results.jsonl"])]
    stored = np.load(written["attributions.npz"])
    assert len(records) == 4 * 3 and list(stored["features"]) == list(NAMES)
    assert {r["method"] for r in records} == {"kernel_shap", "gradient", "baseline_random"}
    b = background.values.astype(np.float32)
    for r in records:
        raw = stored[f"{r['method']}/raw"][r["row"]]
        expected = {"kernel_shap": W * (rows[r["row"]] - b.mean(axis=0)), "gradient": W}.get(r["method"])
        if expected is not None:
            assert raw == pytest.approx(expected, abs=1e-5)
        deletion, insertion = closed_form(rows[r["row"]], b, np.argsort(-np.abs(raw)), np.arange(7))
        assert r["deletion_curve"] == pytest.approx(deletion, abs=1e-5)
        assert r["insertion_curve"] == pytest.approx(insertion, abs=1e-5)
        assert r["top_features"][0] == NAMES[int(np.argmax(np.abs(raw)))]
        assert r["protocol"]["steps"] == 6 and r["protocol"]["background_rows"] == 10
    assert stored["kernel_shap/base"] == pytest.approx(np.full(4, (b @ W + C).mean()), abs=1e-5)
    # one weighted layer (MatMul and its bias Add): the model itself, then re-drawn
    assert all(r["randomization_layers"] == [0, 1] for r in records if r["method"] != "baseline_random")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Random-class check not run: the model has one output" in page


def test_a_model_with_nothing_to_redraw_says_why(table, tmp_path):
    folder, _, _ = table
    given = read_rows(folder / "rows.csv")
    opts = TableAuditOptions(read_rows(folder / "bg.csv", names=given.names), ["gradient"])
    written = audit_table(str(folder / "mul.onnx"), given, tmp_path / "out", opts)
    assert not any("randomization_layers" in json.loads(line) for line in open(written["results.jsonl"]))
    assert f"Model randomization not run: {escape(NOTHING)}" in open(written["report.html"]).read()


def test_randomization_of_an_mlp_redraws_its_weights(tmp_path):
    model = onnx.load(export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx"))
    layers = learned_layers(model)
    assert layers == parameter_layers(model) and len(layers) == 3
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    original = onnx_xai.Explainer(model).explain(x, "gradient")
    targets = original.targets
    steps = cascading_randomization(
        model, onnx_xai.Explainer, x, ["gradient"], targets, {"gradient": original.raw}, 3, 7, {},
        likeness=ATTRIBUTIONS, layers=layers, randomize=randomized_learned,
    )  # fmt: skip
    assert [s["layers"] for s in steps] == [0, 1, 2, 3]
    assert steps[0]["methods"]["gradient"]["spearman"] == [1.0] * 5
    everything = {t for layer in layers for t in layer.tensors}
    again = onnx_xai.Explainer(randomized_learned(model, everything, 7 + 3)).explain(
        x, "gradient", objective=targets
    )
    expected = [spearman(np.abs(a), np.abs(b)) for a, b in zip(original.raw, again.raw)]
    assert steps[-1]["methods"]["gradient"]["spearman"] == pytest.approx(expected)
    assert np.mean(steps[-1]["methods"]["gradient"]["spearman"]) < 0.9


@pytest.fixture(scope="module")
def gbdt(tmp_path_factory):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor

    folder = tmp_path_factory.mktemp("gbdt")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    fitted = GradientBoostingRegressor(n_estimators=6, max_depth=2, random_state=0).fit(
        x, x[:, 0] + x[:, 1] ** 2
    )
    onnx.save(to_onnx(fitted, x[:1]), folder / "gbdt.onnx")
    np.savetxt(folder / "rows.csv", x[:5], delimiter=",", header=",".join(NAMES), comments="")
    np.savetxt(folder / "bg.csv", x[100:130], delimiter=",", header=",".join(NAMES), comments="")
    return folder, fitted, x


def _weights(model: onnx.ModelProto) -> dict:
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    values = attrs.get("target_weights") or numpy_helper.to_array(attrs["target_weights_as_tensor"]).tolist()
    return {(t, n): w for t, n, w in zip(attrs["target_treeids"], attrs["target_nodeids"], values)}


def test_randomization_of_trees_redraws_the_last_trees_leaves(gbdt):
    folder, fitted, x = gbdt
    model = onnx.load(folder / "gbdt.onnx")
    layers = learned_layers(model)
    assert [layer.node for layer in layers] == [f"tree {t}" for t in range(5, -1, -1)]
    chosen = {t for layer in layers[:2] for t in layer.tensors}  # trees 5 and 4
    drawn = randomized_learned(model, chosen, 3)
    before, after = _weights(model), _weights(drawn)
    assert all((after[k] != before[k]) == (k[0] in (4, 5)) for k in before)
    thresholds = [
        [a for a in m.graph.node[0].attribute if a.name.startswith("nodes_values")] for m in (model, drawn)
    ]
    assert thresholds[0] == thresholds[1]  # the splits are kept

    def run(m):
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"X": x[:20]})[0][:, 0].astype(np.float64)

    leaves = {t: fitted.estimators_[t, 0].apply(x[:20]) for t in (4, 5)}  # sklearn's node ids are ONNX's
    moved = sum(np.array([after[(t, n)] - before[(t, n)] for n in leaves[t]]) for t in (4, 5))
    assert run(drawn) - run(model) == pytest.approx(moved, abs=1e-5)


def test_opset5_trees_are_redrawn_as_their_opset3_twins():
    trees, _ = random_trees(3, n_features=4, trees=4)
    v3, v5 = v3_regressor(trees, 4), v5_from_trees(trees, 4)
    assert [layer.node for layer in learned_layers(v5)] == [layer.node for layer in learned_layers(v3)]
    chosen = {(0, 1), (0, 3)}

    def leaves(model: onnx.ModelProto, name: str) -> np.ndarray:
        return numpy_helper.to_array(next(a.t for a in model.graph.node[0].attribute if a.name == name))

    old = leaves(v5, "leaf_weights")
    new3 = leaves(randomized_learned(v3, chosen, 5), "target_weights_as_tensor")
    new5 = leaves(randomized_learned(v5, chosen, 5), "leaf_weights")
    assert new5 == pytest.approx(new3)  # each leaf found in its own tree from the roots
    owners = np.array([t for t, root in trees for n in _leaves(root)])
    assert np.array_equal(new5 != old, np.isin(owners, [1, 3]))


def _leaves(tree: dict) -> list:
    return [tree] if "leaf" in tree else _leaves(tree["true"]) + _leaves(tree["false"])


def test_cli_audits_a_tree_model_end_to_end(gbdt, tmp_path, capsys):
    folder, _, _ = gbdt
    out = tmp_path / "out"
    args = [
        "audit",
        str(folder / "gbdt.onnx"),
        str(folder / "rows.csv"),
        "--background",
        str(folder / "bg.csv"),
    ]
    assert main([*args, "--randomization-steps", "3", "--sanity-rows", "3", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "methods: tree_shap, kernel_shap (the model is a tree ensemble" in said
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 5 * 3 and sorted(p.name for p in out.iterdir()) == [
        "attributions.npz", "report.html", "results.jsonl",
    ]  # fmt: skip
    shap = [r for r in records if r["method"] == "tree_shap"]
    assert (
        all(r["randomization_layers"] == [0, 2, 4, 6] for r in shap[:3])
        and "randomization_layers" not in shap[3]
    )
    assert all(r["protocol"]["score"] == "margin" for r in records)
    page = (out / "report.html").read_text()
    assert (
        "the leaf values of the 6 trees (the last tree first" in page
        and "tree 0 (TreeEnsembleRegressor)" in page
    )
    for method in ("tree_shap", "kernel_shap", "baseline_random"):
        mean = np.mean([r["deletion_auc"] for r in records if r["method"] == method])
        assert f'data-method="{method}"' in page and f"{mean:.3f}" in page


def test_cli_on_an_mlp_writes_the_set_and_says_the_numbers(table, tmp_path):
    folder, _, _ = table
    model = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    args = ["audit", model, str(folder / "rows.csv"), "--background", str(folder / "bg.csv")]
    assert (
        main([*args, "--methods", "integrated_gradients", "--randomization-steps", "2", "--out", str(out)])
        == 0
    )
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(
        "random_target_spearman" in r for r in records if r["method"] != "baseline_random"
    )
    page = (out / "report.html").read_text()
    for name in NAMES:
        assert f'data-feature="{name}"' in page


@pytest.mark.parametrize(
    "flags,status,message",
    [
        (["--background", "bad.csv"], 1, "lacks the column 'rank'"),
        ([], 2, "a table audit needs --background ROWS"),
        (["--background", "bg.csv", "--metrics", "road"], 2, "--metrics road is for photos"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(table, tmp_path, capsys, flags, status, message):
    folder, _, _ = table
    (tmp_path / "bad.csv").write_text("age,income,height,weight,score,other\n1,2,3,4,5,6\n")
    (tmp_path / "bg.csv").write_text((folder / "bg.csv").read_text())
    flags = [str(tmp_path / f) if f.endswith(".csv") else f for f in flags]
    out = tmp_path / "out"
    assert (
        main(["audit", str(folder / "linear.onnx"), str(folder / "rows.csv"), *flags, "--out", str(out)])
        == status
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()


def test_rows_are_a_value_the_api_takes(table, tmp_path):
    """The Python API takes rows made in memory (no file): names from the caller."""
    folder, rows, background = table
    opts = TableAuditOptions(
        Rows(background.astype(np.float64), NAMES), ["gradient"], sanity=[], protocol=Protocol(steps=2)
    )
    written = audit_table(
        str(folder / "linear.onnx"), Rows(rows.astype(np.float64), NAMES), tmp_path / "o", opts
    )
    record = json.loads(open(written["results.jsonl"]).readline())
    assert record["fractions"] == pytest.approx([0, 0.5, 1]) and "randomization_layers" not in record


def test_a_linear_classifier_redraws_its_coefficients():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, (x[:, 0] > 0) + (x[:, 1] > 1))
    model = to_onnx(fitted, x[:1], options={"zipmap": False})
    (layer,) = learned_layers(model)
    assert layer.op_type == "LinearClassifier"

    def learned(m: onnx.ModelProto) -> dict:
        return {a.name: list(a.floats) for n in m.graph.node for a in n.attribute if a.floats}

    before, after = learned(model), learned(randomized_learned(model, set(layer.tensors), 1))
    for name in before:  # the scaler's offsets and scales kept, every coefficient and intercept re-drawn
        changed = np.array(before[name]) != np.array(after[name])
        assert changed.all() if name in ("coefficients", "intercepts") else not changed.any()


def test_the_random_class_check_says_why_one_score_for_two_classes_skips_it(gbdt, tmp_path):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    folder, _, x = gbdt
    fitted = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(x, x[:, 0] > 0)
    onnx.save(to_onnx(fitted, x[:1], options={"zipmap": False}), tmp_path / "two.onnx")
    given = read_rows(folder / "rows.csv")
    opts = TableAuditOptions(read_rows(folder / "bg.csv"), ["tree_shap"], sanity=["random_target"])
    written = audit_table(str(tmp_path / "two.onnx"), given, tmp_path / "out", opts)
    assert "the two classes&#39; scores add up to a constant" in open(written["report.html"]).read()
