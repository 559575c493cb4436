"""Tree ensembles written by hand for the TreeSHAP tests: random trees using every comparison mode
and NaN rule, as an opset-3 ``TreeEnsembleRegressor`` or an opset-5 ``TreeEnsemble`` (set membership
included), behind a chain of per-column ops, and an opset-3 regressor rewritten in the opset-5 form.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx_xai.graph.trees.forms import MODES


def model_of(nodes: list[onnx.NodeProto], n_in: int, n_out: int, ml_opset: int, dtype=onnx.TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "trees", [helper.make_tensor_value_info("X", dtype, [None, n_in])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None, n_out])],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    return helper.make_model(graph, opset_imports=opsets)


def random_trees(seed: int, n_features: int = 4, trees: int = 4, depth: int = 4):
    """Random trees over a small grid of values, using every comparison mode and NaN rule: per node
    (tree, feature, mode, threshold, missing_true, children); leaves hold a weight."""
    rng = np.random.default_rng(seed)
    grid = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
    found = []
    for t in range(trees):

        def grow(level: int, ids=itertools.count()) -> dict:
            me = next(ids)
            if level == depth or (level > 1 and rng.random() < 0.2):
                return {"id": me, "leaf": float(rng.normal())}
            node = {"id": me, "feature": int(rng.integers(n_features)), "mode": int(rng.integers(6)),
                    "value": float(rng.choice(grid)), "missing": int(rng.integers(2))}  # fmt: skip
            node["true"], node["false"] = grow(level + 1), grow(level + 1)
            return node

        found.append((t, grow(0)))
    return found, grid


def _flatten(tree: dict) -> list[dict]:
    if "leaf" in tree:
        return [tree]
    return [tree] + _flatten(tree["true"]) + _flatten(tree["false"])


def v3_node(trees: list, source: str = "X", aggregate: str = "SUM", base: float = 0.25, dtype=np.float32):
    """A TreeEnsembleRegressor (opset 3: thresholds, weights and base as tensors of ``dtype``) reading
    ``source``, from :func:`random_trees`."""
    nodes = [(t, n) for t, root in trees for n in _flatten(root)]
    inner = lambda n, key, leaf_value: leaf_value if "leaf" in n else key(n)  # noqa: E731
    leaves = [(t, n) for t, n in nodes if "leaf" in n]
    tensor = lambda values: numpy_helper.from_array(np.array(values, dtype))  # noqa: E731
    return helper.make_node(
        "TreeEnsembleRegressor", [source], ["Y"], domain="ai.onnx.ml", n_targets=1,
        aggregate_function=aggregate,
        nodes_treeids=[t for t, _ in nodes], nodes_nodeids=[n["id"] for _, n in nodes],
        nodes_featureids=[inner(n, lambda n: n["feature"], 0) for _, n in nodes],
        nodes_modes=[inner(n, lambda n: MODES[n["mode"]], "LEAF") for _, n in nodes],
        nodes_values_as_tensor=tensor([inner(n, lambda n: n["value"], 0.0) for _, n in nodes]),
        nodes_truenodeids=[inner(n, lambda n: n["true"]["id"], 0) for _, n in nodes],
        nodes_falsenodeids=[inner(n, lambda n: n["false"]["id"], 0) for _, n in nodes],
        nodes_missing_value_tracks_true=[inner(n, lambda n: n["missing"], 0) for _, n in nodes],
        target_treeids=[t for t, _ in leaves], target_nodeids=[n["id"] for _, n in leaves],
        target_ids=[0] * len(leaves), target_weights_as_tensor=tensor([n["leaf"] for _, n in leaves]),
        base_values_as_tensor=tensor([base]),
    )  # fmt: skip


def v3_classifier(
    trees: list, classes: list[int], n_classes: int, base: list[float], post: str, positive: bool
):
    """A TreeEnsembleClassifier (opset 3, weights and base as tensors) from :func:`random_trees`: each
    leaf weights every class in ``classes`` (by ``(c + 1) * weight``, its absolute value when
    ``positive``), with ``n_classes`` labels."""
    nodes = [(t, n) for t, root in trees for n in _flatten(root)]
    inner = lambda n, key, leaf_value: leaf_value if "leaf" in n else key(n)  # noqa: E731
    votes = [(t, n, c) for t, n in nodes if "leaf" in n for c in classes]
    weights = [(c + 1) * (abs(n["leaf"]) if positive else n["leaf"]) for _, n, c in votes]
    node = helper.make_node(
        "TreeEnsembleClassifier", ["X"], ["label", "Y"], domain="ai.onnx.ml", post_transform=post,
        classlabels_int64s=list(range(n_classes)),
        nodes_treeids=[t for t, _ in nodes], nodes_nodeids=[n["id"] for _, n in nodes],
        nodes_featureids=[inner(n, lambda n: n["feature"], 0) for _, n in nodes],
        nodes_modes=[inner(n, lambda n: MODES[n["mode"]], "LEAF") for _, n in nodes],
        nodes_values_as_tensor=numpy_helper.from_array(
            np.array([inner(n, lambda n: n["value"], 0.0) for _, n in nodes], np.float32)),
        nodes_truenodeids=[inner(n, lambda n: n["true"]["id"], 0) for _, n in nodes],
        nodes_falsenodeids=[inner(n, lambda n: n["false"]["id"], 0) for _, n in nodes],
        nodes_missing_value_tracks_true=[inner(n, lambda n: n["missing"], 0) for _, n in nodes],
        class_treeids=[t for t, _, _ in votes], class_nodeids=[n["id"] for _, n, _ in votes],
        class_ids=[c for _, _, c in votes],
        class_weights_as_tensor=numpy_helper.from_array(np.array(weights, np.float32)),
        **({"base_values_as_tensor": numpy_helper.from_array(np.array(base, np.float32))} if base else {}),
    )  # fmt: skip
    return model_of([node], 4, n_classes, 3)


def v3_regressor(trees: list, n_features: int, aggregate: str = "SUM", dtype=np.float32) -> onnx.ModelProto:
    node = v3_node(trees, aggregate=aggregate, dtype=dtype)
    return model_of([node], n_features, 1, 3, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def chained_model(seed: int) -> onnx.ModelProto:
    """Trees behind every per-column op: a Slice and a Gather of the 4 input columns, joined by a
    FeatureVectorizer that pads one constant column, an Imputer, a Scaler with negative and zero
    scales, a Mul by a constant per column and a Cast; the trees read the 6 resulting columns."""
    trees, _ = random_trees(seed, n_features=6, trees=5)
    const = lambda name, values: numpy_helper.from_array(np.array(values), name)  # noqa: E731
    nodes = [
        helper.make_node("Slice", ["X", "starts", "ends", "axes"], ["sliced"]),
        helper.make_node("Gather", ["X", "picks"], ["picked"], axis=1),
        helper.make_node("FeatureVectorizer", ["sliced", "picked"], ["joined"], domain="ai.onnx.ml",
                         inputdimensions=[3, 3]),
        helper.make_node("Imputer", ["joined"], ["imputed"], domain="ai.onnx.ml",
                         imputed_value_floats=[0.5], replaced_value_float=float("nan")),
        helper.make_node("Scaler", ["imputed"], ["scaled"], domain="ai.onnx.ml",
                         offset=[0.25, -0.5, 0.0, 0.5, 0.0, 1.0], scale=[2.0, -1.0, 0.0, 1.5, -2.0, 1.0]),
        helper.make_node("Mul", ["scaled", "factor"], ["product"]),
        helper.make_node("Cast", ["product"], ["cast"], to=onnx.TensorProto.FLOAT),
        v3_node(trees, source="cast"),
    ]  # fmt: skip
    model = model_of(nodes, 4, 1, 3)
    model.graph.initializer.extend([
        const("starts", [1]), const("ends", [4]), const("axes", [1]), const("picks", [2, 0]),
        const("factor", np.array([1.0, -1.0, 0.5, 1.0, 1.0, 1.0], np.float32)),
    ])  # fmt: skip
    return model


def v5_from_trees(
    trees: list, n_features: int, members: dict | None = None, post: int = 0, n_targets: int = 1
):
    """An opset-5 TreeEnsemble from :func:`random_trees`; ``members`` maps a node's (tree, id) to a
    set, turning that node into BRANCH_MEMBER. The leaves of tree ``t`` go to target ``t % n_targets``."""
    inner, leaves, roots = [], [], []
    for t, root in trees:
        flat, index = _flatten(root), {}
        counts = [len(inner), len(leaves)]
        for node in flat:
            kind = int("leaf" in node)
            index[node["id"]] = (counts[kind], kind)
            counts[kind] += 1
        for node in flat:
            if "leaf" in node:
                leaves.append((t, node))
            else:
                inner.append((t, node, index[node["true"]["id"]], index[node["false"]["id"]]))
        roots.append(index[root["id"]][0])
    members = members or {}
    sets = [members[(t, n["id"])] for t, n, _, _ in inner if (t, n["id"]) in members]
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=n_targets, post_transform=post,
        nodes_featureids=[n["feature"] for _, n, _, _ in inner],
        nodes_modes=numpy_helper.from_array(np.array(
            [6 if (t, n["id"]) in members else n["mode"] for t, n, _, _ in inner], np.uint8)),
        nodes_splits=numpy_helper.from_array(np.array([n["value"] for _, n, _, _ in inner], np.float32)),
        nodes_truenodeids=[tr[0] for _, _, tr, _ in inner],
        nodes_trueleafs=[tr[1] for _, _, tr, _ in inner],
        nodes_falsenodeids=[fa[0] for _, _, _, fa in inner],
        nodes_falseleafs=[fa[1] for _, _, _, fa in inner],
        nodes_missing_value_tracks_true=[n["missing"] for _, n, _, _ in inner],
        leaf_targetids=[t % n_targets for t, _ in leaves],
        leaf_weights=numpy_helper.from_array(np.array([n["leaf"] for _, n in leaves], np.float32)),
        tree_roots=roots,
        **({"membership_values": numpy_helper.from_array(np.concatenate(
            [np.r_[np.asarray(s, np.float32), np.float32(np.nan)] for s in sets]))} if sets else {}),
    )  # fmt: skip
    return model_of([node], n_features, n_targets, 5)


def v5_from_v3(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same regressor as an opset-5 TreeEnsemble, its base value moved to an Add after it."""
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    pick = lambda name: (
        numpy_helper.to_array(a[name + "_as_tensor"]) if name + "_as_tensor" in a else np.array(a[name])
    )  # noqa: E731
    trees, ids, modes = (
        np.array(a["nodes_treeids"]),
        np.array(a["nodes_nodeids"]),
        [m.decode() for m in a["nodes_modes"]],
    )
    position = {}
    inner = [i for i, m in enumerate(modes) if m != "LEAF"]
    leaves = [i for i, m in enumerate(modes) if m == "LEAF"]
    position.update({(trees[i], ids[i]): (k, 0) for k, i in enumerate(inner)})
    position.update({(trees[i], ids[i]): (k, 1) for k, i in enumerate(leaves)})
    weight = {(t, n): w for t, n, w in zip(a["target_treeids"], a["target_nodeids"], pick("target_weights"))}
    child = lambda side, i: position[(trees[i], a[f"nodes_{side}nodeids"][i])]  # noqa: E731
    missing = a.get("nodes_missing_value_tracks_true", [0] * len(modes))
    v5 = helper.make_node(
        "TreeEnsemble", [node.input[0]], ["trees"], domain="ai.onnx.ml", n_targets=1,
        nodes_featureids=[a["nodes_featureids"][i] for i in inner],
        nodes_modes=numpy_helper.from_array(np.array([MODES.index(modes[i]) for i in inner], np.uint8)),
        nodes_splits=numpy_helper.from_array(pick("nodes_values")[inner].astype(np.float32)),
        nodes_truenodeids=[child("true", i)[0] for i in inner],
        nodes_trueleafs=[child("true", i)[1] for i in inner],
        nodes_falsenodeids=[child("false", i)[0] for i in inner],
        nodes_falseleafs=[child("false", i)[1] for i in inner],
        nodes_missing_value_tracks_true=[missing[i] for i in inner],
        leaf_targetids=[0] * len(leaves),
        leaf_weights=numpy_helper.from_array(
            np.array([weight[(trees[i], ids[i])] for i in leaves], np.float32)),
        tree_roots=[position[(t, ids[np.flatnonzero(trees == t)[0]])][0] for t in dict.fromkeys(trees)],
        aggregate_function=1,
    )  # fmt: skip
    base = numpy_helper.from_array(np.array([a.get("base_values", [0.0])[0]], np.float32), "base")
    add = helper.make_node("Add", ["trees", "base"], [model.graph.output[0].name])
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    del copy.graph.node[:]
    copy.graph.node.extend([v5, add])
    copy.graph.initializer.append(base)
    del copy.opset_import[:]
    copy.opset_import.extend([helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)])
    return copy
