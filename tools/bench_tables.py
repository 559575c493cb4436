"""Our table explainers against shap on the same model and rows, in one process.

TreeSHAP (``--only tree_shap``): a 100-tree GBDT with 31 leaves per tree (LightGBM's defaults, or
scikit-learn's GradientBoostingRegressor with ``max_leaf_nodes=31`` via ``--model sklearn``) trained
on 5,000 synthetic rows of 20 features, converted to ONNX (onnxmltools or skl2onnx); 1,000 rows
explained against 100 background rows. Ours: ``read_ensemble`` of the ONNX file then
``interventional_tree_shap``; shap: ``TreeExplainer(model, data=background,
feature_perturbation="interventional", model_output="raw")`` then ``shap_values`` (its C++ path) on
the library model. Both times include building the explainer; rounds interleave the two so a drift of
the machine hits both. Prints the median of each, the ratio shap / ours (above 1: ours is faster) and
the largest difference between the two sets of values.

KernelSHAP (``--only kernel_shap``): an MLP on 8 features (random init, exported by torch), 100 rows
explained against 50 background rows, every one of the 2^8 - 2 coalitions (exact). Ours:
``Explainer.explain(rows, "kernel_shap", background=...)``; shap: ``KernelExplainer`` on a function
that runs the same ONNX file on onnxruntime (2 threads both), ``nsamples=254`` (its exact
enumeration of the same coalitions), one row at a time as it works. Prints the medians, the ratio
and the largest difference between the values.

    python tools/bench_tables.py [--only tree_shap kernel_shap] [--rounds 5] [--model lightgbm|sklearn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent))
from onnx_xai.graph.trees import read_ensemble  # noqa: E402
from onnx_xai.runtime.treeshap import interventional_tree_shap  # noqa: E402

FEATURES = 20


def _gbdt(kind: str):
    """A trained 100-tree, 31-leaf GBDT regressor, its ONNX conversion, and data to explain."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, FEATURES)).astype(np.float32)
    y = x[:, 0] + np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3] + 0.1 * rng.normal(size=len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "lightgbm":
            import lightgbm
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType

            model = lightgbm.LGBMRegressor(n_estimators=100, num_leaves=31, verbose=-1).fit(x, y)
            onx = convert_lightgbm(model, initial_types=[("X", FloatTensorType([None, FEATURES]))])
        else:
            from skl2onnx import to_onnx
            from sklearn.ensemble import GradientBoostingRegressor

            model = GradientBoostingRegressor(
                n_estimators=100, max_leaf_nodes=31, max_depth=None, random_state=0
            ).fit(x, y)
            onx = to_onnx(model, x[:1])
    return model, onx, x.astype(np.float64)


def _median_ms(fn: Callable[[], object], rounds: int, other: Callable[[], object]) -> tuple[float, float]:
    """Medians of ``fn`` and ``other`` in ms over interleaved rounds."""
    mine, theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        mine.append(time.perf_counter() - start)
        start = time.perf_counter()
        other()
        theirs.append(time.perf_counter() - start)
    return 1e3 * statistics.median(mine), 1e3 * statistics.median(theirs)


def tree_shap(args: argparse.Namespace) -> None:
    import shap

    model, onx, x = _gbdt(args.model)
    rows, background = x[: args.rows], x[-100:]
    output = onx.graph.output[-1].name

    def ours():
        return interventional_tree_shap(read_ensemble(onx, output), rows, background)

    def theirs():
        explainer = shap.TreeExplainer(
            model, data=background, feature_perturbation="interventional", model_output="raw"
        )
        return explainer.shap_values(rows, check_additivity=False)

    values, _ = ours()
    gap = float(np.abs(values[..., 0] - theirs()).max())
    tree = read_ensemble(onx, output)
    ours_ms, shap_ms = _median_ms(ours, args.rounds, theirs)
    leaves = tree.paths.leaf.size / tree.forest.roots.size
    print(
        f"\nTreeSHAP, {args.model} GBDT: {tree.forest.roots.size} trees, {leaves:.1f} leaves per tree, ",
        end="",
    )
    print(
        f"{FEATURES} features; {len(rows)} rows, {len(background)} background rows; median of {args.rounds}"
    )
    print("| explainer | ms | shap / ours |\n|---|---|---|")
    print(f"| onnx_xai: read_ensemble + interventional_tree_shap | {ours_ms:.0f} | {shap_ms / ours_ms:.2f} |")
    print(f"| shap: TreeExplainer(interventional) + shap_values (C++) | {shap_ms:.0f} | 1.00 |")
    print(f"largest |ours - shap|: {gap:.1e}")


def _mlp_file(features: int) -> str:
    import tempfile

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)).eval()
    path = str(Path(tempfile.mkdtemp()) / "mlp.onnx")
    torch.onnx.export(
        net, torch.zeros(1, features), path, dynamo=False, input_names=["X"], output_names=["y"],
        dynamic_axes={"X": {0: "N"}, "y": {0: "N"}},
    )  # fmt: skip
    return path


def kernel_shap(args: argparse.Namespace) -> None:
    import onnxruntime as ort
    import shap

    import onnx_xai

    features = 8
    path = _mlp_file(features)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(100, features)).astype(np.float32)
    background = rng.normal(size=(50, features)).astype(np.float32)
    ex = onnx_xai.Explainer(path, threads=2)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def f(batch):
        return session.run(None, {"X": batch.astype(np.float32)})[0][:, 1]

    def ours():
        return ex.explain(rows, "kernel_shap", background=background, objective=1).raw

    def theirs():
        return shap.KernelExplainer(f, background).shap_values(rows, nsamples=2**features - 2, silent=True)

    gap = float(np.abs(ours() - theirs()).max())
    ours_ms, shap_ms = _median_ms(ours, args.rounds, theirs)
    print(f"\nKernelSHAP, exact on {features} features (254 coalitions): {len(rows)} rows, ", end="")
    print(f"{len(background)} background rows; median of {args.rounds}")
    print("| explainer | ms | shap / ours |\n|---|---|---|")
    print(f"| onnx_xai: Explainer.explain(kernel_shap) | {ours_ms:.0f} | {shap_ms / ours_ms:.2f} |")
    print(f"| shap: KernelExplainer(onnxruntime).shap_values | {shap_ms:.0f} | 1.00 |")
    print(f"largest |ours - shap|: {gap:.1e}")


COMPARISONS = {"tree_shap": tree_shap, "kernel_shap": kernel_shap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(COMPARISONS), default=sorted(COMPARISONS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", choices=["lightgbm", "sklearn"], default="lightgbm")
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    for name in args.only:
        COMPARISONS[name](args)


if __name__ == "__main__":
    main()
