"""Cascading randomization of what a table model learned, also where it lives in attributes.

A network keeps its weights in initializers (:func:`.randomization.parameter_layers`); the
``ai.onnx.ml`` operators keep theirs in node attributes. Here every tree of a tree ensemble
(``TreeEnsembleClassifier`` and ``TreeEnsembleRegressor``, opsets 1 and 3, and the opset-5
``TreeEnsemble``) is a layer, and re-drawing it re-draws its leaf values (``class_weights``,
``target_weights``, ``leaf_weights`` or their ``*_as_tensor`` twins) from a normal with the mean and
standard deviation of that tree's own leaf values; its splits (features and thresholds) are kept, as a
network's running statistics are. A ``LinearClassifier`` or ``LinearRegressor`` is a layer whose
``coefficients`` and ``intercepts`` are re-drawn each from its own mean and deviation. All layers are
ordered from the output down (reverse graph order; an ensemble's last tree first), so the cascade of
:func:`.sanity.cascading_randomization` re-draws the last trees first, then more and more of them.
"""

from __future__ import annotations

import numpy as np

from .randomization import Layer, parameter_layers, randomized

ML = "ai.onnx.ml"
ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
LINEAR = {
    "LinearClassifier": ("coefficients", "intercepts"),
    "LinearRegressor": ("coefficients", "intercepts"),
}
NOTHING = (
    "the model holds no learned values the check re-draws (weights of Conv, Gemm or MatMul in "
    "initializers, a tree ensemble's leaves, a linear model's coefficients)"
)


def learned_layers(model) -> list[Layer]:
    """Every layer with learned values, top first: initializer layers, trees, linear models. A tree
    layer's keys are ``(node index, tree)``, a linear model's ``(node index, None)``."""
    weighted = {layer.node: layer for layer in parameter_layers(model)}
    ensembles = sum(node.domain == ML and node.op_type in ENSEMBLES for node in model.graph.node)
    found: list[Layer] = []
    for index, node in enumerate(model.graph.node):
        name = node.name or node.output[0]
        if name in weighted:
            found.append(weighted[name])
        elif node.domain == ML and node.op_type in ENSEMBLES:
            prefix = f"{name}: " if ensembles > 1 else ""  # a tree's name says its ensemble's where several
            found += [Layer(f"{prefix}tree {t}", node.op_type, ((index, t),)) for t in _trees(node)]
        elif node.domain == ML and node.op_type in LINEAR:
            found.append(Layer(name, node.op_type, ((index, None),)))
    return found[::-1]


def randomized_learned(model, keys: set, noise_seed: int):
    """A copy of ``model`` with the layers of ``keys`` re-drawn (module docstring): initializer names
    as :func:`.randomization.randomized` re-draws them, node attributes here."""
    copy = randomized(model, {k for k in keys if isinstance(k, str)}, noise_seed)
    chosen: dict[int, list] = {}
    for key in keys:
        if isinstance(key, tuple):
            chosen.setdefault(key[0], []).append(key[1])
    for index, trees in chosen.items():
        _redraw_node(copy.graph.node[index], index, trees, noise_seed)
    return copy


def _redraw_node(node, index: int, trees: list, noise_seed: int) -> None:
    """Re-draw a linear model's coefficients and intercepts, or the leaf values of ``trees``."""
    attributes = _attributes(node)
    if node.op_type in LINEAR:
        for k, name in enumerate(LINEAR[node.op_type]):
            if name in attributes:
                rng = np.random.default_rng((noise_seed, index, k))
                _write(attributes[name], _redraw(_values(attributes[name]), rng))
        return
    owners, name = _leaf_owners(node)
    if name in attributes:
        _write(attributes[name], _redraw_trees(_values(attributes[name]), owners, trees, noise_seed, index))


def _attributes(node) -> dict:
    return {a.name: a for a in node.attribute}


def _values(attribute) -> np.ndarray:
    from onnx import numpy_helper

    if attribute.HasField("t"):
        return numpy_helper.to_array(attribute.t).reshape(-1).astype(np.float64)
    return np.asarray(attribute.floats, np.float64)


def _trees(node) -> list[int]:
    """The tree ids of an ensemble node, in order."""
    attrs = _attributes(node)
    if node.op_type == "TreeEnsemble":
        return list(range(len(attrs["tree_roots"].ints))) if "tree_roots" in attrs else []
    return sorted(set(attrs["nodes_treeids"].ints)) if "nodes_treeids" in attrs else []


def _leaf_owners(node) -> tuple[np.ndarray, str]:
    """The tree of each leaf value, and the attribute holding the values (a list or its tensor)."""
    attrs = _attributes(node)
    if node.op_type == "TreeEnsemble":
        return _v5_owners(attrs), "leaf_weights"
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    name = f"{prefix}_weights_as_tensor" if f"{prefix}_weights_as_tensor" in attrs else f"{prefix}_weights"
    return np.asarray(attrs[f"{prefix}_treeids"].ints, np.int64), name


def _v5_owners(attrs: dict) -> np.ndarray:
    """Each leaf's tree in an opset-5 ``TreeEnsemble``: leaves are found from each root's branches."""
    true_ids, false_ids = list(attrs["nodes_truenodeids"].ints), list(attrs["nodes_falsenodeids"].ints)
    no_flags = [0] * len(true_ids)
    true_leaf = list(attrs["nodes_trueleafs"].ints) if "nodes_trueleafs" in attrs else no_flags
    false_leaf = list(attrs["nodes_falseleafs"].ints) if "nodes_falseleafs" in attrs else no_flags
    owners = np.full(len(attrs["leaf_targetids"].ints), -1, np.int64)
    for tree, root in enumerate(attrs["tree_roots"].ints):
        stack, seen = [root], set()
        while stack:
            branch = stack.pop()
            if branch in seen:
                continue
            seen.add(branch)
            for child, leaf in (
                (true_ids[branch], true_leaf[branch]),
                (false_ids[branch], false_leaf[branch]),
            ):
                if leaf:
                    owners[child] = tree
                else:
                    stack.append(child)
    return owners


def _write(attribute, drawn: np.ndarray) -> None:
    """Replace an attribute's values (a tensor, or a list of floats) by ``drawn``, in its type."""
    from onnx import numpy_helper

    if attribute.HasField("t"):
        dtype = numpy_helper.to_array(attribute.t).dtype
        attribute.t.CopyFrom(numpy_helper.from_array(drawn.astype(dtype), attribute.t.name))
    else:
        del attribute.floats[:]
        attribute.floats.extend(drawn.astype(np.float32).tolist())


def _redraw(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(values.mean(), values.std(), values.shape) if values.size else values


def _redraw_trees(
    values: np.ndarray, owners: np.ndarray, trees: list, noise_seed: int, index: int
) -> np.ndarray:
    """The leaf values of ``trees`` re-drawn, each tree from its own mean and deviation."""
    drawn = values.copy()
    for tree in trees:
        mine = owners == tree
        if mine.any():
            drawn[mine] = _redraw(values[mine], np.random.default_rng((noise_seed, index, int(tree))))
    return drawn
