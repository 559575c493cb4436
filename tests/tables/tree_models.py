"""Tree ensembles for the TreeSHAP tests: small models trained here with fixed seeds and converted the
way users convert them (skl2onnx, onnxmltools, pipelines included), and the references (onnxruntime
with the post-transform switched off, and Shapley values by enumeration of every coalition). Forms
written by hand live in :mod:`.tree_forms`.

Rows and background rows are float32 values held in float64, so the library (float64 comparisons)
and onnxruntime (float32 comparisons) see the same numbers.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

F = 5  # columns of the trained models


@dataclass(frozen=True)
class Case:
    """A converted model, the library model it came from, and how shap's values line up with ours:
    ``shap_columns`` picks shap's output columns (None: shap gives one output as [N, F]; "all
    coalitions": shap cannot read the model, the reference is :func:`shapley_by_enumeration` of
    onnxruntime's margins)."""

    name: str
    converter: str
    onnx: onnx.ModelProto
    output: str
    library: object
    rows: np.ndarray
    background: np.ndarray
    shap_columns: tuple[int, ...] | str | None
    tolerance: float = 1e-5


def data(
    seed: int, n: int = 400, nan: float = 0.0, categorical: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features (float32 values in float64; with ``categorical``, column 4 holds codes 0-5) and three
    targets: binary, three classes, regression."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, F)).astype(np.float32).astype(np.float64)
    if categorical:
        x[:, 4] = np.floor(np.abs(x[:, 4]) * 3) % 6
    score = x[:, 0] + np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3] + 2 * np.isin(x[:, 4], [1, 4]) * categorical
    targets = {
        "binary": (score > 0).astype(int),
        "multi": np.digitize(score, [-0.7, 0.7]),
        "regression": score + 0.1 * rng.normal(size=n),
    }
    if nan:
        x[rng.random(x.shape) < nan] = np.nan
    return x, targets


def _skl(library, task: str, seed: int = 0) -> tuple[object, onnx.ModelProto, np.ndarray]:
    from skl2onnx import to_onnx

    x, y = data(seed)
    library.fit(x[:300], y[task][:300])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(library, x[:1].astype(np.float32), target_opset={"": 15, "ai.onnx.ml": 3})
    return library, model, x


def _mltools(library, task: str, options: dict) -> tuple[object, onnx.ModelProto, np.ndarray]:
    import lightgbm
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = data(0, **options)
    fit = {"categorical_feature": [4]} if options.get("categorical") else {}
    library.fit(x[:300], y[task][:300], **fit)
    kind = [("X", FloatTensorType([None, F]))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(library, lightgbm.LGBMModel):
            return library, convert_lightgbm(library, initial_types=kind, zipmap=False), x
        return library, convert_xgboost(library, initial_types=kind), x


def _sklearn_specs() -> dict[str, tuple]:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    forest = {"n_estimators": 8, "max_depth": 5, "random_state": 0}
    boost = {"n_estimators": 15, "max_depth": 3, "random_state": 0}
    hist = {"max_iter": 15, "max_leaf_nodes": 8, "random_state": 0}
    return {
        "RandomForestClassifier binary": (RandomForestClassifier(**forest), "binary", (1,)),
        "RandomForestClassifier 3 classes": (RandomForestClassifier(**forest), "multi", (0, 1, 2)),
        "RandomForestRegressor": (RandomForestRegressor(**forest), "regression", None),
        "ExtraTreesClassifier binary": (ExtraTreesClassifier(**forest), "binary", (1,)),
        "ExtraTreesRegressor": (ExtraTreesRegressor(**forest), "regression", None),
        "GradientBoostingClassifier binary": (GradientBoostingClassifier(**boost), "binary", None),
        # shap reads GradientBoostingClassifier for two classes only
        "GradientBoostingClassifier 3 classes": (
            GradientBoostingClassifier(**boost),
            "multi",
            "all coalitions",
        ),
        "GradientBoostingRegressor": (GradientBoostingRegressor(**boost), "regression", None),
        "HistGradientBoostingClassifier binary": (HistGradientBoostingClassifier(**hist), "binary", None),
        "HistGradientBoostingClassifier 3 classes": (
            HistGradientBoostingClassifier(**hist),
            "multi",
            (0, 1, 2),
        ),
        "HistGradientBoostingRegressor": (HistGradientBoostingRegressor(**hist), "regression", None),
    }


def _mltools_specs() -> dict[str, tuple]:
    import lightgbm
    import xgboost

    lgb = {"n_estimators": 15, "num_leaves": 8, "min_child_samples": 5, "verbose": -1, "random_state": 0}
    xgb = {"n_estimators": 15, "max_depth": 3, "random_state": 0}
    nan = {"nan": 0.2}
    return {
        "LGBMClassifier binary": (lightgbm.LGBMClassifier(**lgb), "binary", None, {}),
        "LGBMClassifier 3 classes": (lightgbm.LGBMClassifier(**lgb), "multi", (0, 1, 2), {}),
        "LGBMRegressor": (lightgbm.LGBMRegressor(**lgb), "regression", None, {}),
        "LGBMRegressor with NaN": (lightgbm.LGBMRegressor(**lgb), "regression", None, nan),
        # onnxmltools writes the category sets as chains of BRANCH_EQ; shap 0.51 misreads LightGBM's
        # categorical splits (0.9 off here, against the enumeration of LightGBM's own predictions too)
        "LGBMRegressor with a categorical column": (
            lightgbm.LGBMRegressor(**lgb),
            "regression",
            "all coalitions",
            {"categorical": True},
        ),
        "XGBClassifier binary": (xgboost.XGBClassifier(**xgb), "binary", None, {}),
        "XGBClassifier 3 classes": (xgboost.XGBClassifier(**xgb), "multi", (0, 1, 2), {}),
        "XGBRegressor": (xgboost.XGBRegressor(**xgb), "regression", None, {}),
        "XGBRegressor with NaN": (xgboost.XGBRegressor(**xgb), "regression", None, nan),
    }


SKLEARN = (
    "RandomForestClassifier binary", "RandomForestClassifier 3 classes", "RandomForestRegressor",
    "ExtraTreesClassifier binary", "ExtraTreesRegressor",
    "GradientBoostingClassifier binary", "GradientBoostingClassifier 3 classes", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier binary", "HistGradientBoostingClassifier 3 classes",
    "HistGradientBoostingRegressor",
)  # fmt: skip
MLTOOLS = (
    "LGBMClassifier binary", "LGBMClassifier 3 classes", "LGBMRegressor", "LGBMRegressor with NaN",
    "LGBMRegressor with a categorical column", "XGBClassifier binary", "XGBClassifier 3 classes",
    "XGBRegressor", "XGBRegressor with NaN",
)  # fmt: skip


@functools.cache
def case(name: str) -> Case:
    """A converted model by name (:data:`SKLEARN`, :data:`MLTOOLS`), trained once per session."""
    if name in SKLEARN:
        library, task, columns = _sklearn_specs()[name]
        fitted, model, x = _skl(library, task)
        converter = "skl2onnx"
    else:
        library, task, columns, options = _mltools_specs()[name]
        fitted, model, x = _mltools(library, task, options)
        converter = "onnxmltools"
    output = model.graph.output[-1].name  # the probabilities (through ZipMap for skl2onnx) or the value
    return Case(name, converter, model, output, fitted, x[300:340], x[340:370], columns)


# -- references ---------------------------------------------------------------------------------


def margins_by_onnxruntime(model: onnx.ModelProto, output: str, rows: np.ndarray) -> np.ndarray:
    """The model's ``output`` with every tree ensemble's post-transform set to NONE."""
    plain = onnx.ModelProto.FromString(model.SerializeToString())
    for node in plain.graph.node:
        for a in node.attribute:
            if a.name == "post_transform":
                if a.type == onnx.AttributeProto.STRING:
                    a.s = b"NONE"
                else:
                    a.i = 0
    session = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    kind = {"tensor(float)": np.float32, "tensor(double)": np.float64}[session.get_inputs()[0].type]
    out = session.run([output], {name: rows.astype(kind)})[0]
    if isinstance(out, list):  # ZipMap: a list of {class: probability}
        out = np.array([[m[k] for k in sorted(m)] for m in out])
    return np.asarray(out, np.float64)


def shapley_by_enumeration(margins: Callable, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Interventional Shapley values from every coalition: [N, F, outputs] (small F only)."""
    n_features = x.shape[1]
    subsets = np.array(list(itertools.product([False, True], repeat=n_features)))
    size = subsets.sum(axis=1)
    hybrid = np.where(subsets[None, :, None, :], x[:, None, None, :], background[None, None, :, :])
    value = margins(hybrid.reshape(-1, n_features)).reshape(len(x), len(subsets), len(background), -1).mean(2)
    index = {tuple(s): i for i, s in enumerate(subsets)}
    phi = np.zeros((len(x), n_features, value.shape[-1]))
    for j in range(n_features):
        for i, s in enumerate(subsets):
            if s[j]:
                continue
            with_j = index[tuple(np.r_[s[:j], True, s[j + 1 :]])]
            weight = (
                math.factorial(size[i])
                * math.factorial(n_features - size[i] - 1)
                / math.factorial(n_features)
            )
            phi[:, j] += weight * (value[:, with_j] - value[:, i])
    return phi


PIPELINES = ("StandardScaler + GradientBoostingClassifier", "ColumnTransformer + GradientBoostingRegressor")


@functools.cache
def pipelines() -> dict[str, tuple[object, onnx.ModelProto, np.ndarray]]:
    """skl2onnx pipelines whose trees sit behind a Scaler, or behind column picks, an Imputer and a
    Concat (a ColumnTransformer): name -> (fitted pipeline, model, rows with NaN in column 1)."""
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = data(1)
    x[::7, 1] = np.nan
    boost = {"n_estimators": 10, "max_depth": 3, "random_state": 0}
    columns = ColumnTransformer(
        [("s", StandardScaler(), [0, 3]), ("i", SimpleImputer(), [1]), ("p", "passthrough", [2, 4])]
    )
    found = {}
    scaled = make_pipeline(StandardScaler(), SimpleImputer(), GradientBoostingClassifier(**boost))
    picked = make_pipeline(columns, GradientBoostingRegressor(**boost))
    for name, pipe, task in zip(PIPELINES, (scaled, picked), ("binary", "regression")):
        pipe.fit(x[:300], y[task][:300])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found[name] = (pipe, to_onnx(pipe, x[:1].astype(np.float32)), x)
    return found
