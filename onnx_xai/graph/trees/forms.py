"""The three ONNX forms of a tree ensemble, read into one set of flat numpy arrays (:class:`Forest`).

``TreeEnsembleClassifier`` and ``TreeEnsembleRegressor`` (``ai.onnx.ml`` opsets 1 and 3, with or
without the ``*_as_tensor`` attributes) name nodes by (tree id, node id) and hang weights on leaves by
the same pair; the opset-5 ``TreeEnsemble`` indexes nodes and leaves by position, encodes modes and
transforms as integers and adds set membership (``BRANCH_MEMBER``). Both are read the way
onnxruntime 1.32 reads them (``tree_ensemble_common.h``, ``tree_ensemble_aggregator.h``,
``tree_ensemble_attribute.h``), since the margins must match what it computes: a tree's root is the
first node of each run of equal tree ids, weights hung on branches are ignored, a one-target regressor
keeps the first weight of a leaf, ``AVERAGE`` divides by the number of roots, and a two-class
classifier follows onnxruntime's binary rules (:func:`_two_classes`). The margin columns are the
scores before the post-transform, summed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from ...support.errors import ModelError

MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
LEAF = len(MODES)  # the mode code of a leaf; the branch codes are the opset-5 ones (an index in MODES)
# onnxruntime 1.32 reads TreeEnsemble's integer post_transform in this order (1 = LOGISTIC, 2 = SOFTMAX),
# the reverse of the opset-5 spec (1 = SOFTMAX, 2 = LOGISTIC); we name what runs (measured in the tests)
V5_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
V5_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")


@dataclass(frozen=True, eq=False)
class Forest:
    """Trees as flat node arrays, every array indexed by node position.

    ``feature``, ``mode``, ``threshold`` and ``missing_true`` describe each branch (a leaf has mode
    :data:`LEAF`); ``true_node``/``false_node`` are child positions (-1 at leaves); ``members`` holds
    the sets of ``BRANCH_MEMBER`` branches as (branch position, member value) pairs. ``values`` [nodes,
    outputs] is each leaf's contribution to each margin column (already divided by the tree count for
    ``AVERAGE``), ``base`` [outputs] the constant added. ``dtype`` is the type the comparisons run in.
    """

    feature: np.ndarray
    mode: np.ndarray
    threshold: np.ndarray
    missing_true: np.ndarray
    true_node: np.ndarray
    false_node: np.ndarray
    roots: np.ndarray
    values: np.ndarray
    base: np.ndarray
    members: tuple[np.ndarray, np.ndarray]
    dtype: np.dtype


@dataclass(frozen=True)
class Scores:
    """How the margin columns relate to the node's score output.

    ``classes[k]`` is the output column margin column ``k`` is written to; ``binary`` is set when one
    margin ``s`` becomes two columns (onnxruntime's rule, e.g. ``"[1 - s, s]"``), else ``None``.
    """

    post_transform: str
    classes: tuple[int, ...]
    binary: str | None


def named(node: onnx.NodeProto) -> str:
    """How messages name a node: ``'name' (OpType)``, or ``a OpType node`` when it has no name."""
    return f"'{node.name}' ({node.op_type})" if node.name else f"a {node.op_type} node"


def read_forest(node: onnx.NodeProto, input_dtype: np.dtype) -> tuple[Forest, Scores]:
    """Read a tree ensemble node whose input has numpy type ``input_dtype``.

    Raises:
        ModelError: the node is not a tree ensemble, its trees are inconsistent, or its aggregate is
            MIN or MAX (not a sum over trees, so not additive).
    """
    if node.op_type not in ENSEMBLES or node.domain != "ai.onnx.ml":
        raise ModelError(f"{named(node)} is not a tree ensemble")
    attrs = {a.name: _value(a) for a in node.attribute}
    if node.op_type == "TreeEnsemble":
        return _read_v5(node, attrs, np.dtype(input_dtype))
    dtype = np.dtype(np.float64 if np.dtype(input_dtype) == np.float64 else np.float32)
    return _read_v3(node, attrs, dtype)


def _value(a: onnx.AttributeProto):
    if a.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(a.t)
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _pick(attrs: dict, name: str, dtype: npt.DTypeLike) -> np.ndarray:
    """A list attribute or its ``*_as_tensor`` twin (opset 3), as ``dtype``; empty when absent."""
    found = attrs.get(f"{name}_as_tensor", attrs.get(name, []))
    return np.asarray(found, dtype=dtype).reshape(-1)


def _read_v3(node: onnx.NodeProto, attrs: dict, dtype: np.dtype) -> tuple[Forest, Scores]:
    classifier = node.op_type == "TreeEnsembleClassifier"
    trees = np.asarray(attrs.get("nodes_treeids", []), np.int64)
    ids = np.asarray(attrs.get("nodes_nodeids", []), np.int64)
    lists = ("nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids")
    if trees.size == 0 or any(len(attrs.get(name, [])) != trees.size for name in lists):
        raise ModelError(f"{named(node)} has no nodes or node lists of different lengths")
    mode_names = attrs.get("nodes_modes", [])
    unknown = sorted(set(mode_names) - set(MODES[:6]) - {"LEAF"})
    if unknown:
        raise ModelError(f"{named(node)}: unknown nodes_modes {', '.join(unknown)}")
    mode = np.array([MODES.index(m) if m != "LEAF" else LEAF for m in mode_names], np.int8)
    find = _Locator(node, trees, ids)
    leaf = mode == LEAF
    true_node, false_node = np.full(trees.size, -1), np.full(trees.size, -1)
    true_node[~leaf] = find(trees[~leaf], _ints(attrs, "nodes_truenodeids", trees.size)[~leaf])
    false_node[~leaf] = find(trees[~leaf], _ints(attrs, "nodes_falsenodeids", trees.size)[~leaf])
    missing = _ints(attrs, "nodes_missing_value_tracks_true", trees.size, default=0).astype(bool)
    threshold = _pick(attrs, "nodes_values", dtype)
    roots = np.flatnonzero(np.r_[True, trees[1:] != trees[:-1]])  # onnxruntime: each run of equal ids
    prefix = "class" if classifier else "target"
    w_pos = find(np.asarray(attrs.get(f"{prefix}_treeids", []), np.int64),
                 np.asarray(attrs.get(f"{prefix}_nodeids", []), np.int64))  # fmt: skip
    w_id = np.asarray(attrs.get(f"{prefix}_ids", []), np.int64)
    w_value = _pick(attrs, f"{prefix}_weights", np.float64)
    on_leaf = leaf[w_pos]  # onnxruntime ignores weights hung on branches (old onnxmltools files)
    w_pos, w_id, w_value = w_pos[on_leaf], w_id[on_leaf], w_value[on_leaf]
    base = _pick(attrs, "base_values", np.float64)
    post = attrs.get("post_transform", "NONE")
    if classifier:
        values, base, scores = _classes(node, attrs, (trees, leaf), (w_pos, w_id, w_value), base, post)
    else:
        aggregate = attrs.get("aggregate_function", "SUM")
        values, base = _targets(node, attrs.get("n_targets", 1), mode.size, (w_pos, w_id, w_value), base)
        values = _aggregate(node, aggregate, values, roots.size)
        scores = Scores(post, tuple(range(values.shape[1])), None)
    forest = Forest(
        np.where(leaf, 0, np.asarray(attrs.get("nodes_featureids", []), np.int64)), mode,
        threshold, missing & ~leaf, true_node, false_node, roots, values, base,
        (np.zeros(0, np.int64), np.zeros(0, dtype)), dtype,
    )  # fmt: skip
    _check_lengths(node, forest)
    return forest, scores


def _ints(attrs: dict, name: str, n: int, default: int | None = None) -> np.ndarray:
    found = np.asarray(attrs.get(name, []), np.int64)
    if found.size == 0 and default is not None:
        return np.full(n, default, np.int64)
    return found


class _Locator:
    """Maps (tree id, node id) pairs to node positions, failing with the pair that is missing."""

    def __init__(self, node: onnx.NodeProto, trees: np.ndarray, ids: np.ndarray):
        self.node, self.span = node, int(ids.max()) + 1
        keys = trees * self.span + ids
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        if np.any(self.keys[1:] == self.keys[:-1]):
            raise ModelError(f"{named(node)} lists a (tree, node) pair twice")

    def __call__(self, trees: np.ndarray, ids: np.ndarray) -> np.ndarray:
        keys = trees * self.span + ids
        at = np.clip(np.searchsorted(self.keys, keys), 0, self.keys.size - 1)
        bad = (self.keys[at] != keys) | (ids < 0) | (ids >= self.span)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(
                f"{named(self.node)} refers to node {ids[i]} of tree {trees[i]}, which it does not define"
            )
        return self.order[at]


def _targets(node: onnx.NodeProto, n_targets: int, n_nodes: int, weights: tuple, base: np.ndarray):
    """Regressor leaf values [nodes, targets] and base, as onnxruntime adds them."""
    pos, ids, value = weights
    if ids.size and (ids.min() < 0 or ids.max() >= n_targets):
        raise ModelError(f"{named(node)} has target ids outside [0, {n_targets})")
    values = np.zeros((n_nodes, n_targets))
    if n_targets == 1:  # onnxruntime's one-output path keeps each leaf's first weight
        pos, first = np.unique(pos, return_index=True)
        values[pos, 0] = value[first]
        return values, np.array([base[0] if base.size == 1 else 0.0])
    np.add.at(values, (pos, ids), value)
    return values, (base if base.size == n_targets else np.zeros(n_targets))


def _aggregate(node: onnx.NodeProto, aggregate: str, values: np.ndarray, n_trees: int) -> np.ndarray:
    if aggregate in ("MIN", "MAX"):
        raise ModelError(
            f"{named(node)} aggregates its trees with {aggregate}, not a sum: "
            "its scores are not additive over trees, so TreeSHAP does not apply"
        )
    if aggregate not in ("SUM", "AVERAGE"):
        raise ModelError(f"{named(node)}: unknown aggregate_function {aggregate}")
    return values / n_trees if aggregate == "AVERAGE" else values


def _classes(node, attrs, nodes, weights, base, post) -> tuple[np.ndarray, np.ndarray, Scores]:
    """Classifier leaf values and base per margin column (always a sum over trees); ``nodes`` is
    (tree id, is leaf) per node, ``weights`` (node, class, weight) per weight on a leaf."""
    labels = attrs.get("classlabels_int64s", attrs.get("classlabels_strings", []))
    n_classes = len(labels)
    (trees, leaf), (pos, ids, value) = nodes, weights
    if n_classes < 2 or ids.size == 0:
        raise ModelError(f"{named(node)} has {n_classes} class(es) and {ids.size} weights")
    if ids.min() < 0 or ids.max() >= n_classes or base.size > n_classes:
        raise ModelError(f"{named(node)} has class ids or base_values beyond its classes")
    per_class = np.zeros((trees.size, n_classes))
    np.add.at(per_class, (pos, ids), value)
    if n_classes > 2:
        return (
            per_class,
            np.r_[base, np.zeros(n_classes - base.size)],
            Scores(post, tuple(range(n_classes)), None),
        )
    has1 = _class1_everywhere(trees, leaf, pos[ids == 1])
    if has1 is None:
        raise ModelError(
            f"{named(node)} weights class 1 in some leaves only: onnxruntime's "
            "two-class scores then depend on the leaves a row reaches"
        )
    positive = bool(np.all(_pick(attrs, "class_weights", np.float64) >= 0))
    return _two_classes(per_class, has1, base, post, positive)


def _two_classes(per_class: np.ndarray, has1: bool, base: np.ndarray, post: str, positive: bool) -> tuple:
    """onnxruntime's two-class rules (``TreeAggregatorClassifier::FinalizeScores``, measured on 1.32).

    Without class-1 weights and with at most one base value, the trees give one score ``s`` =
    class-0 weights + base, written ``[logistic(-s), logistic(s)]`` for LOGISTIC, else ``[1 - s, s]``
    when every weight is >= 0 and ``[-s, s]`` otherwise (the post-transform is not applied; PROBIT
    writes ``probit(s)`` alone). With two base values, class 1 gets its base only where it has weights:
    without any it scores 0, with weights in every tree's leaves onnxruntime writes
    ``[-(b1 + s0), b1 + s0]`` (class-1 weights unused). Class-1 weights in only some leaves make a
    row's class-1 score depend on its leaves, and are refused by the caller.
    """
    w0 = per_class[:, 0]
    if has1:
        if base.size == 2:
            return np.c_[-w0, w0], np.array([-base[1], base[1]]), Scores(post, (0, 1), None)
        return per_class, np.array([base[0] if base.size == 1 else 0.0, 0.0]), Scores(post, (0, 1), None)
    if base.size >= 2:
        kept = np.array([base[0] if base.size == 2 else 0.0, 0.0])
        return np.c_[w0, np.zeros_like(w0)], kept, Scores(post, (0, 1), None)
    one = np.array([base[0] if base.size == 1 else 0.0])
    if post == "PROBIT":
        return w0[:, None], one, Scores(post, (0,), "[probit(s), undefined]")
    if post == "LOGISTIC":
        rule = "[logistic(-s), logistic(s)]"
    else:
        rule = "[1 - s, s]" if positive else "[-s, s]"
    return w0[:, None], one, Scores(post, (1,), rule)


def _class1_everywhere(trees: np.ndarray, leaf: np.ndarray, class1_leaves: np.ndarray) -> bool | None:
    """True when some tree weights class 1 in all its leaves (every row then has a class-1 score),
    False when no leaf does, None when it depends on the row."""
    if class1_leaves.size == 0:
        return False
    weighted = np.zeros(trees.size, bool)
    weighted[class1_leaves] = True
    for t in np.unique(trees[class1_leaves]):
        if weighted[(trees == t) & leaf].all():
            return True
    return None


def _read_v5(node: onnx.NodeProto, attrs: dict, dtype: np.dtype) -> tuple[Forest, Scores]:
    if dtype not in (np.float32, np.float64):
        raise ModelError(f"{named(node)} reads {dtype} inputs; float and double are handled")
    splits = _pick(attrs, "nodes_splits", dtype)
    n = splits.size
    leaf_targets = np.asarray(attrs.get("leaf_targetids", []), np.int64)
    leaf_weights = _pick(attrs, "leaf_weights", np.float64)
    n_targets, n_leaves = int(attrs.get("n_targets", 1)), leaf_targets.size
    if n == 0 or leaf_weights.size != n_leaves or (n_leaves and leaf_targets.max() >= n_targets):
        raise ModelError(f"{named(node)} has inconsistent node or leaf lists")
    mode = _pick(attrs, "nodes_modes", np.int64).astype(np.int8)
    if mode.size != n or np.any((mode < 0) | (mode >= LEAF)):
        raise ModelError(f"{named(node)} has nodes_modes outside 0..6 or of another length")
    post, aggregate = int(attrs.get("post_transform", 0)), int(attrs.get("aggregate_function", 1))
    if not (0 <= post < len(V5_TRANSFORMS) and 0 <= aggregate < len(V5_AGGREGATES)):
        raise ModelError(f"{named(node)}: unknown post_transform {post} or aggregate {aggregate}")
    true_node = _child(attrs, "true", n)
    false_node = _child(attrs, "false", n)
    if np.any(
        (true_node < 0) | (false_node < 0) | (true_node >= n + n_leaves) | (false_node >= n + n_leaves)
    ):
        raise ModelError(f"{named(node)} has a child index out of range")
    values = np.zeros((n + n_leaves, n_targets))
    values[n + np.arange(n_leaves), leaf_targets] = leaf_weights
    roots = np.asarray(attrs.get("tree_roots", []), np.int64)
    values = _aggregate(node, V5_AGGREGATES[aggregate], values, roots.size)
    member_nodes = np.flatnonzero(mode == MODES.index("BRANCH_MEMBER"))
    forest = Forest(
        np.r_[_ints(attrs, "nodes_featureids", n), np.zeros(n_leaves, np.int64)],
        np.r_[mode, np.full(n_leaves, LEAF, np.int8)],
        np.r_[splits, np.zeros(n_leaves, dtype)],
        np.r_[_ints(attrs, "nodes_missing_value_tracks_true", n, 0).astype(bool), np.zeros(n_leaves, bool)],
        np.r_[true_node, np.full(n_leaves, -1)], np.r_[false_node, np.full(n_leaves, -1)],
        roots, values, np.zeros(n_targets),
        _memberships(node, _pick(attrs, "membership_values", dtype), member_nodes), dtype,
    )  # fmt: skip
    _check_lengths(node, forest)
    return forest, Scores(V5_TRANSFORMS[post], tuple(range(n_targets)), None)


def _child(attrs: dict, side: str, n: int) -> np.ndarray:
    """Child positions, leaves shifted past the ``n`` branch nodes."""
    ids = _ints(attrs, f"nodes_{side}nodeids", n)
    leafs = _ints(attrs, f"nodes_{side}leafs", n, default=0).astype(bool)
    return np.where(leafs, ids + n, ids)


def _memberships(node: onnx.NodeProto, values: np.ndarray, member_nodes: np.ndarray) -> tuple:
    """(branch, member) pairs from the NaN-delimited ``membership_values``, one set per MEMBER branch."""
    cuts = np.flatnonzero(np.isnan(values))
    sets = np.split(values, cuts)
    sets = [s[~np.isnan(s)] for s in sets][: member_nodes.size]
    if len(sets) < member_nodes.size or any(s.size == 0 for s in sets):
        raise ModelError(f"{named(node)} has fewer membership sets than BRANCH_MEMBER nodes")
    owners = np.repeat(member_nodes, [s.size for s in sets])
    return owners, (np.concatenate(sets) if sets else values[:0])


def _check_lengths(node: onnx.NodeProto, forest: Forest) -> None:
    n = forest.mode.size
    arrays = (forest.feature, forest.threshold, forest.missing_true, forest.true_node, forest.false_node)
    if any(a.size != n for a in arrays) or forest.values.shape[0] != n:
        raise ModelError(f"{named(node)} has node attribute lists of different lengths")
    if forest.roots.size == 0 or forest.roots.min() < 0 or forest.roots.max() >= n:
        raise ModelError(f"{named(node)} has no trees or a root out of range")
