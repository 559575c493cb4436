"""Table of cases for the ``ai.onnx.ml`` rules: Scaler, Normalizer, Imputer, Binarizer, LinearRegressor,
LinearClassifier, FeatureVectorizer and ArrayFeatureExtractor; the refusals; the non-differentiable ML
ops refused by name; float64 inputs (computed in float) on onnxruntime.

Adapted checks, and why. onnxruntime computes the ML ops in float32 whatever their input, so the
float64 finite differences run on the ONNX reference evaluator (``float64_runner`` sends a model with
ML ops there), with LinearClassifier and Normalizer replaced by :mod:`tests.ml_reference`, which
computes them as onnxruntime does (the reference differs on one-row classifiers, SOFTMAX_ZERO and
Normalizer MAX); :func:`test_reference_agrees_with_onnxruntime` holds those two to onnxruntime's
float32 outputs on every case. The float64 build declares its output ``y`` in float64 where the spec
says float (the reference computes in the input's type): the ONNX checker runs on the float32 build
only, the one onnxruntime sees. A tensor between two ML ops is declared float (the spec's type) in both
builds, so the float64 check rounds a chain's middle cotangent to float32: the table holds one chain
(Scaler -> LinearClassifier); converters' pipelines are tested in ``tests/graph/test_converters.py``.
PROBIT's scores are kept in (0, 1), its domain, and away from 1/2, where onnxruntime's float32 formula
loses its digits (``1 - u^2`` rounds to 1), so that the float32 gradient holds to the harness's 2e-4.
SOFTMAX_ZERO's band (a score within 1e-7 of 0) is narrower than the harness's step: its own test.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.support.errors import UnsupportedModelError

from ...reference_runtime import reference
from .harness import Case, build, check, node

R = np.random.default_rng(30)
X = {"x": (3, 4)}


def ml(op_type: str, inputs, outputs="y", **attrs):
    """A node of the ai.onnx.ml domain."""
    return node(op_type, inputs, outputs, domain="ai.onnx.ml", **attrs)


def floats(*shape, scale=1.0) -> list[float]:
    return (R.uniform(-scale, scale, size=shape)).ravel().tolist()


def classifier(post: str, rows: int = 3, labels: int | None = None, **attrs) -> list:
    """A LinearClassifier writing its scores to ``y`` (its labels unread)."""
    labels = rows if labels is None else labels
    extra = {"classlabels_ints": list(range(labels))} if labels else {}
    return [
        ml(
            "LinearClassifier",
            ["x"],
            ["label", "y"],
            coefficients=floats(rows, 4),
            intercepts=floats(rows),
            post_transform=post,
            **extra,
            **attrs,
        )
    ]


# PROBIT's domain is (0, 1): small coefficients around 0.25 keep |2s - 1| in [0.2, 0.9]
PROBIT = dict(coefficients=floats(3, 4, scale=0.05), intercepts=[0.2, 0.25, 0.3], post_transform="PROBIT")

CASES = [
    Case("scaler_one_value", [ml("Scaler", ["x"], offset=[0.5], scale=[-2.0])], X),
    Case("scaler_per_column", [ml("Scaler", ["x"], offset=floats(4), scale=floats(4))], X),
    Case("scaler_vector", [ml("Scaler", ["x"], offset=floats(4), scale=floats(4))], {"x": (4,)}),
    Case("scaler_rank3_one_value", [ml("Scaler", ["x"], offset=[1.0], scale=[3.0])], {"x": (2, 3, 4)}),
    Case("normalizer_max", [ml("Normalizer", ["x"], norm="MAX")], X),
    Case("normalizer_max_negative_rows", [ml("Normalizer", ["x"], norm="MAX")], X, low=-3.0, high=-0.5),
    Case("normalizer_l1", [ml("Normalizer", ["x"], norm="L1")], X),
    Case("normalizer_l2", [ml("Normalizer", ["x"], norm="L2")], X),
    Case("normalizer_l2_vector", [ml("Normalizer", ["x"], norm="L2")], {"x": (5,)}),
    Case(
        "imputer_nan",
        [
            ml("Imputer", ["x"], "v", imputed_value_floats=[9.0], replaced_value_float=float("nan")),
            node("Mul", ["v", "v"]),
        ],
        X,
    ),
    Case(
        "imputer_value_per_column",
        [
            ml("Imputer", ["x"], "v", imputed_value_floats=floats(4), replaced_value_float=1.0),
            node("Mul", ["v", "v"]),
        ],
        X,
    ),
    Case("binarizer_ramp", [ml("Binarizer", ["x"], "b", threshold=0.0), node("Mul", ["b", "x"])], X),
    Case("binarizer_step_times", [ml("Binarizer", ["x"], "b", threshold=0.5), node("Mul", ["b", "x"])], X),
    Case(
        "linear_regressor",
        [ml("LinearRegressor", ["x"], coefficients=floats(2, 4), intercepts=floats(2), targets=2)],
        X,
    ),
    Case(
        "linear_regressor_one_target",
        [ml("LinearRegressor", ["x"], coefficients=floats(4), intercepts=[0.5], post_transform="NONE")],
        X,
    ),
    Case("linear_classifier_none", classifier("NONE"), X),
    Case("linear_classifier_logistic", classifier("LOGISTIC"), X),
    Case("linear_classifier_softmax", classifier("SOFTMAX", multi_class=1), X),
    Case("linear_classifier_softmax_zero", classifier("SOFTMAX_ZERO"), X),
    Case(
        "linear_classifier_probit",
        [ml("LinearClassifier", ["x"], ["label", "y"], classlabels_ints=[0, 1, 2], **PROBIT)],
        X,
        low=-1,
        high=1,
    ),
    Case("linear_classifier_two_rows", classifier("LOGISTIC", rows=2), X),
    Case("linear_classifier_binary_none", classifier("NONE", rows=1, labels=2), X),
    Case("linear_classifier_binary_logistic", classifier("LOGISTIC", rows=1, labels=2), X),
    Case("linear_classifier_binary_softmax", classifier("SOFTMAX", rows=1, labels=2), X),
    Case("linear_classifier_binary_softmax_zero", classifier("SOFTMAX_ZERO", rows=1, labels=2), X),
    Case("linear_classifier_one_row_raw", classifier("LOGISTIC", rows=1, labels=0), X),
    Case(
        "linear_classifier_one_row_probit",
        [
            ml(
                "LinearClassifier",
                ["x"],
                ["label", "y"],
                coefficients=floats(4, scale=0.05),
                intercepts=[0.3],
                post_transform="PROBIT",
            )
        ],
        X,
        low=-1,
        high=1,
    ),
    Case(
        "scaler_then_classifier",
        [
            ml("Scaler", ["x"], "h", offset=floats(4), scale=floats(4)),
            ml(
                "LinearClassifier",
                ["h"],
                ["label", "y"],
                coefficients=floats(3, 4),
                intercepts=floats(3),
                classlabels_strings=["a", "b", "c"],
                post_transform="SOFTMAX",
            ),
        ],
        X,
    ),
    Case(
        "feature_vectorizer_cut_and_pad",
        [ml("FeatureVectorizer", ["a", "b", "c"], inputdimensions=[2, 3, 1])],
        {"a": (3, 2), "b": (3, 1), "c": (3, 2)},
    ),
    Case(
        "feature_vectorizer_one_input_held",
        [ml("FeatureVectorizer", ["a", "w"], inputdimensions=[3, 2])],
        {"a": (2, 3)},
        {"w": R.normal(size=(2, 2))},
    ),
    Case(
        "array_feature_extractor_columns",
        [ml("ArrayFeatureExtractor", ["x", "idx"])],
        X,
        {"idx": np.array([3, 0, 3], np.int64)},
    ),
    Case(
        "array_feature_extractor_row_indices",
        [ml("ArrayFeatureExtractor", ["x", "idx"])],
        {"x": (2, 3, 4)},
        {"idx": np.array([[1, 2]], np.int64)},
    ),
    Case(
        "array_feature_extractor_vector",
        [ml("ArrayFeatureExtractor", ["x", "idx"])],
        {"x": (5,)},
        {"idx": np.array([4, 1], np.int64)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if any(s[0] in ("LinearClassifier", "Normalizer") for s in c.nodes)],
    ids=lambda c: c.name,
)
def test_reference_agrees_with_onnxruntime(case):
    """The float64 forward the finite differences read is onnxruntime's, to float32 precision."""
    model, rng = build(case, 13, np.float32), np.random.default_rng(0)
    xs = {n: rng.uniform(case.low, case.high, size=s).astype(np.float32) for n, s in case.wrt.items()}
    served = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["y"], xs
    )[0]
    (ours,) = reference(model).run(["y"], {n: x.astype(np.float64) for n, x in xs.items()})
    np.testing.assert_allclose(ours, served, rtol=1e-5, atol=1e-6)


def test_softmax_zero_band():
    """A score within 1e-7 of zero is left out of SOFTMAX_ZERO's sum (z = s / Z there): its slope
    1 / Z, along a direction that keeps it in the band (finite differences of 1e-10)."""
    coefficients = [0.5, 0.0, 0.0, 0.0, *floats(2, 4)]  # class 0 reads column 0 only
    case = Case(
        "band",
        [ml("LinearClassifier", ["x"], ["label", "y"], coefficients=coefficients, intercepts=[0.0, 0.3, -0.2],
            classlabels_ints=[0, 1, 2], post_transform="SOFTMAX_ZERO")],
        X,
    )  # fmt: skip
    model, rng = build(case, 13, np.float64), np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(3, 4))
    x[:, 0] = 0.0  # class 0 scores exactly 0
    ybar, t = rng.standard_normal((3, 3)), rng.standard_normal((3, 4))
    grad = reference(vjp_model(model, "y", ["x"])).run(["xai_grad/x"], {"x": x, "xai_seed": ybar})[0]
    forward = reference(model)

    def f(step):
        return float(np.sum(ybar * forward.run(["y"], {"x": x + step * t})[0]))

    eps = 1e-10
    numeric = (f(eps) - f(-eps)) / (2 * eps)
    assert abs(numeric - float(np.sum(grad * t))) <= 1e-5 * max(1.0, abs(numeric))


def _model(nodes, inputs: dict, ml_opset: int = 1) -> onnx.ModelProto:
    """A float32 model of node specs, its output ``y`` declared without a shape (nothing is run)."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ins, outs, **attrs) for op, ins, outs, _, attrs in nodes],
        "refused",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs.items()],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    opsets = [onnx.helper.make_opsetid("", 13), onnx.helper.make_opsetid("ai.onnx.ml", ml_opset)]
    return onnx.helper.make_model(graph, opset_imports=opsets)


REFUSED = [
    (classifier("PROBIT", rows=1, labels=2), "post_transform='PROBIT' on one row with two classes"),
    ([ml("Scaler", ["x"], offset=floats(4), scale=floats(4))], "4 scales on an input of rank 3"),
    ([ml("Normalizer", ["x"], norm="L2")], "input 'x' of rank 3"),
    ([ml("LinearRegressor", ["x"], coefficients=floats(4), intercepts=[0.0], post_transform="LOGISTIC")],
     "post_transform='LOGISTIC' (only NONE)"),
]  # fmt: skip


@pytest.mark.parametrize("nodes, problem", REFUSED, ids=lambda v: v[0][0] if isinstance(v, list) else "")
def test_unsupported_attributes_are_refused(nodes, problem):
    shape = [3, 4] if nodes[0][0] in ("LinearClassifier", "LinearRegressor") else [2, 3, 4]
    model = _model(nodes, {"x": shape})
    with pytest.raises(UnsupportedModelError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        vjp_model(model, "y", ["x"])


def test_non_differentiable_ml_ops_are_refused_by_name():
    """Tree ensembles and encoders on the path are refused in one line that names each of them."""
    trees = dict(
        nodes_treeids=[0, 0, 0],
        nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0],
        target_treeids=[0, 0],
        target_nodeids=[1, 2],
        target_ids=[0, 0],
        target_weights=[1.0, 2.0],
        n_targets=1,
    )
    nodes = [
        ml("TreeEnsembleRegressor", ["x"], "t", **trees),
        ml("OneHotEncoder", ["x"], "o", cats_int64s=[0, 1]),
        ml("LabelEncoder", ["x"], "l", keys_floats=[0.0, 1.0], values_floats=[2.0, 3.0], default_float=0.0),
        node("ReduceSum", ["o"], "os", keepdims=0),
        node("Add", ["t", "l"], "tl"),
        node("Add", ["tl", "os"]),
    ]
    model = _model(nodes, {"x": [3, 4]}, ml_opset=2)  # LabelEncoder's float keys: ai.onnx.ml 2
    with pytest.raises(UnsupportedModelError) as raised:
        vjp_model(model, "y", ["x"])
    message = str(raised.value)
    assert "\n" not in message and message.startswith("cannot differentiate 3 nodes:")
    for op in ("TreeEnsembleRegressor", "OneHotEncoder", "LabelEncoder"):
        assert f"({op})" in message


DOUBLE_INPUT = [
    ([ml("Scaler", ["x"], offset=floats(4), scale=floats(4))], 4),
    ([ml("Normalizer", ["x"], norm="MAX")], 4),
    ([ml("Normalizer", ["x"], norm="L1")], 4),
    (classifier("SOFTMAX_ZERO"), 3),
    (classifier("LOGISTIC", rows=1, labels=2), 2),
    ([ml("FeatureVectorizer", ["x"], inputdimensions=[3])], 3),
]


@pytest.mark.parametrize("nodes, columns", DOUBLE_INPUT, ids=lambda v: v[0][0] if isinstance(v, list) else "")
def test_double_input_on_onnxruntime(nodes, columns):
    """A float64 input to an op that computes in float: onnxruntime runs the rewritten model (the
    checker passes it), and the cotangent comes back in float64, right to float32's precision."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ins, outs, **attrs) for op, ins, outs, _, attrs in nodes],
        "double",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [3, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, columns])],
    )
    opsets = [onnx.helper.make_opsetid("", 13), onnx.helper.make_opsetid("ai.onnx.ml", 1)]
    model = onnx.helper.make_model(graph, opset_imports=opsets)
    rewritten = vjp_model(model, "y", ["x"])
    onnx.checker.check_model(rewritten, full_check=True)
    rng = np.random.default_rng(0)
    x, ybar, t = rng.uniform(-2, 2, (3, 4)), rng.standard_normal((3, columns)), rng.standard_normal((3, 4))
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    (grad,) = session.run(["xai_grad/x"], {"x": x, "xai_seed": ybar.astype(np.float32)})
    forward = reference(model)

    def f(step):
        return float(np.sum(ybar * forward.run(["y"], {"x": x + step * t})[0]))

    numeric = (f(1e-6) - f(-1e-6)) / 2e-6
    assert grad.dtype == np.float64
    assert abs(numeric - float(np.sum(grad * t))) <= 1e-5 * max(1.0, abs(numeric))
