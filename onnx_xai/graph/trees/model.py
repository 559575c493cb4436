"""A tree ensemble as read from a model: its trees, the map from the model's input columns to the
trees' features, and its margins computed in numpy as onnxruntime computes them.

:func:`find_ensemble` finds the one ensemble an output depends on and the ops after it;
:func:`read_ensemble` reads it into a :class:`TreeModel`, whose :meth:`TreeModel.margins` are the
ensemble's scores before its post-transform, one column per margin (comparisons in float32 for a
float32 model, sums in float64), and whose :attr:`TreeModel.paths` list every root-to-leaf path with
its conditions grouped by model input column — what exact TreeSHAP needs
(:mod:`onnx_xai.runtime.treeshap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import onnx

from ...support.errors import InputError, ModelError
from .columns import InputMap, read_input_map
from .forms import ENSEMBLES, LEAF, MODES, Forest, Scores, named, read_forest

MEMBER = MODES.index("BRANCH_MEMBER")
_COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)
_CHUNK = 1 << 21  # elements per temporary array in margins (rows x trees x outputs)


@dataclass(frozen=True, eq=False)
class Paths:
    """Every root-to-leaf path, with its conditions grouped into requirements, one per (path, model
    input column): a row meets a requirement when it takes the path's branch at each of its nodes.

    Paths are indexed ``[P]`` (``leaf``: the leaf's node position); requirements ``[R]`` are sorted by
    path, with ``column`` (``features`` for a tree feature that is a constant), ``bit`` (rank within
    the path) and ``first_edge`` (start of its conditions); conditions ``[E]`` are ``edge_node`` and
    ``edge_true`` (the path takes the true branch there).
    """

    leaf: np.ndarray
    path: np.ndarray
    column: np.ndarray
    bit: np.ndarray
    first_edge: np.ndarray
    edge_node: np.ndarray
    edge_true: np.ndarray


@dataclass(frozen=True, eq=False)
class TreeModel:
    """A tree ensemble read from a model (see the module docstring).

    ``node`` and ``op_type`` name the ensemble, ``after`` lists the op types between it and the
    explained output, ``scores`` says how the margins become the ensemble's output columns.
    """

    forest: Forest
    scores: Scores
    columns: InputMap
    node: str
    op_type: str
    after: tuple[str, ...]

    @property
    def label(self) -> str:
        """The ensemble as messages name it."""
        return f"'{self.node}' ({self.op_type})" if self.node else f"the {self.op_type} node"

    @property
    def features(self) -> int:
        return self.columns.features

    @property
    def outputs(self) -> int:
        return int(self.forest.values.shape[1])

    @property
    def post_transform(self) -> str:
        return self.scores.post_transform

    @property
    def input_name(self) -> str:
        return self.columns.input_name

    def rows(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked to be [rows, features]."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.features:
            raise InputError(
                f"expected rows of {self.features} columns for '{self.input_name}', got {list(x.shape)}"
            )
        return x

    def tree_inputs(self, x: np.ndarray) -> np.ndarray:
        """The values the trees compare, [rows, tree features], in the comparisons' type."""
        return self.columns.apply(self.rows(x)).astype(self.forest.dtype, copy=False)

    def decisions(self, t: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Whether each row of ``t`` (:meth:`tree_inputs`) takes the true branch at each branch node
        in ``nodes``: [len(nodes), rows] (nodes first: the layout the path reductions read)."""
        return self._branch(np.ascontiguousarray(t.T)[self.forest.feature[nodes]], nodes)

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's scores before its post-transform, [rows, outputs], in float64."""
        t = self.tree_inputs(x)
        f = self.forest
        step = max(1, _CHUNK // (f.roots.size * self.outputs))
        out = np.empty((len(t), self.outputs))
        for i in range(0, len(t), step):
            out[i : i + step] = f.values[self._leaves(t[i : i + step])].sum(axis=1) + f.base
        return out

    def _leaves(self, t: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree, [rows, trees]."""
        f = self.forest
        at = np.repeat(f.roots[None, :], len(t), axis=0)
        for _ in range(f.mode.size + 1):
            rows, trees = np.nonzero(f.mode[at] != LEAF)
            if rows.size == 0:
                return at
            nodes = at[rows, trees]
            go = self._branch(t[rows, f.feature[nodes]], nodes)
            at[rows, trees] = np.where(go, f.true_node[nodes], f.false_node[nodes])
        raise ModelError(f"{self.label} has a cycle in its trees")

    def _branch(self, values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Branch decisions for ``values`` [len(nodes), ...] read at ``nodes``: the comparison, set
        membership for BRANCH_MEMBER, or a NaN where the node sends missing values the true way."""
        f = self.forest
        shape = (-1,) + (1,) * (values.ndim - 1)
        mode, threshold = f.mode[nodes], f.threshold[nodes].reshape(shape)
        kinds = np.unique(mode)
        if kinds.size == 1 and kinds[0] < MEMBER:
            out = _COMPARE[kinds[0]](values, threshold)
        else:
            out = np.zeros(values.shape, bool)
            for kind in kinds[kinds < MEMBER]:
                hit = mode == kind
                out[hit] = _COMPARE[kind](values[hit], threshold[hit])
            for node in np.unique(nodes[mode == MEMBER]):
                hit = nodes == node
                out[hit] = _member(values[hit], f.members[1][f.members[0] == node])
        missing = f.missing_true[nodes].reshape(shape)
        return out | (missing & np.isnan(values)) if values.dtype.kind == "f" and missing.any() else out

    @cached_property
    def paths(self) -> Paths:
        return _paths(self.forest, self.columns.source, self.features, self.label)


def _member(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Set membership by equality, as the ONNX spec says. onnxruntime 1.32 agrees on integer inputs
    (category codes, what set splits test) but runs only integer sets and, for some of them, tests
    the input truncated to int32 (measured: {-1, 0} holds -0.5 and 0.25, {0, 5} does not)."""
    return np.isin(values, members)


def _paths(f: Forest, source: np.ndarray, features: int, name: str) -> Paths:
    """Enumerate root-to-leaf paths level by level (all trees at once), then group each path's
    conditions by the model input column their tree feature comes from."""
    at, parent = f.roots.copy(), np.full(f.roots.size, -1)
    e_node, e_true, e_parent, leaves, leaf_edge = [], [], [], [], []
    count = 0
    for _ in range(f.mode.size + 1):
        done = f.mode[at] == LEAF
        leaves.append(at[done])
        leaf_edge.append(parent[done])
        at, parent = at[~done], parent[~done]
        if at.size == 0:
            break
        ids = count + np.arange(2 * at.size)
        e_node += [at, at]
        e_true += [np.ones(at.size, bool), np.zeros(at.size, bool)]
        e_parent += [parent, parent]
        count += 2 * at.size
        at, parent = np.r_[f.true_node[at], f.false_node[at]], ids
    else:
        raise ModelError(f"{name} has a cycle in its trees")
    node, true, up = (np.concatenate(a) if a else np.zeros(0, int) for a in (e_node, e_true, e_parent))
    leaf, edge = np.concatenate(leaves), np.concatenate(leaf_edge)
    path_of, edges = [], []
    owner = np.arange(leaf.size)
    while edge.size:  # climb from every leaf to its root, one level per pass
        live = edge >= 0
        owner, edge = owner[live], edge[live]
        path_of.append(owner)
        edges.append(edge)
        edge = up[edge]
    path_of_e = np.concatenate(path_of) if path_of else np.zeros(0, int)
    edge_ids = np.concatenate(edges) if edges else np.zeros(0, int)
    return _requirements(leaf, path_of_e, node[edge_ids], true[edge_ids].astype(bool), source, f, features)


def _requirements(leaf, path_of, node, true, source, f: Forest, features: int) -> Paths:
    column = source[f.feature[node]]
    column = np.where(column < 0, features, column)
    order = np.lexsort((column, path_of))
    path_of, node, true, column = path_of[order], node[order], true[order], column[order]
    new = (
        np.r_[True, (path_of[1:] != path_of[:-1]) | (column[1:] != column[:-1])]
        if node.size
        else node[:0] > 0
    )
    first_edge = np.flatnonzero(new)
    req_path = path_of[first_edge]
    first_of_path = np.searchsorted(req_path, req_path)  # requirements are sorted by path
    bit = np.arange(req_path.size) - first_of_path
    return Paths(leaf, req_path, column[first_edge], bit, first_edge, node, true)


def find_ensemble(model: onnx.ModelProto, output: str) -> tuple[onnx.NodeProto, tuple[str, ...]]:
    """The tree ensemble node that ``output`` depends on, and the op types between them in run order.

    Raises:
        ModelError: ``output`` is not a graph output, depends on no tree ensemble or on several, or
            also depends on model inputs through another way than the trees.
    """
    graph = model.graph
    if output not in {o.name for o in graph.output}:
        raise ModelError(f"'{output}' is not an output of the model")
    producers = {o: n for n in graph.node for o in n.output}
    ancestors: list[onnx.NodeProto] = []
    stack, seen = [output], set()
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        ancestors.append(node)
        if node.op_type not in ENSEMBLES:
            stack += [i for i in node.input if i]
    trees = [n for n in ancestors if n.op_type in ENSEMBLES and n.domain == "ai.onnx.ml"]
    if len(trees) != 1:
        found = ", ".join(named(n) for n in trees)
        raise ModelError(
            f"output '{output}' depends on {len(trees)} tree ensembles{': ' + found if found else ''}"
        )
    return trees[0], _after(graph, trees[0], {id(n) for n in ancestors}, producers, output)


def _after(graph: onnx.GraphProto, ensemble: onnx.NodeProto, ancestors: set, producers: dict, output: str):
    """The op types from the ensemble to ``output``, refusing a way around the trees."""
    downstream = set(ensemble.output)
    consts = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input} - consts
    between: list[str] = []
    for node in graph.node:  # run order
        if id(node) not in ancestors or not any(i in downstream for i in node.input):
            continue
        for i in node.input:
            if i and i not in downstream and not _constant(i, producers, consts, inputs):
                raise ModelError(
                    f"output '{output}' also depends on '{i}' beside the trees of {named(ensemble)} "
                    f"(through {named(node)})"
                )
        downstream.update(node.output)
        between.append(node.op_type)
    return tuple(between)


def _constant(name: str, producers: dict, consts: set, inputs: set) -> bool:
    """Whether ``name`` depends on no model input (initializers and Constant nodes only)."""
    stack, seen = [name], set()
    while stack:
        n = stack.pop()
        if n in inputs:
            return False
        if n in seen or n in consts or n not in producers:
            continue
        seen.add(n)
        stack += [i for i in producers[n].input if i]
    return True


def read_ensemble(model: onnx.ModelProto, output: str) -> TreeModel:
    """Read the tree ensemble that ``output`` depends on, mapped to the model input's columns.

    Raises:
        ModelError: one line: no single supported ensemble behind ``output``, an aggregate that is
            not a sum, or no exact per-column map from the model's input to the trees' input.
    """
    node, after = find_ensemble(model, output)
    features = [a for a in node.attribute if a.name == "nodes_featureids"]
    needed = int(max(features[0].ints, default=-1)) + 1 if features else 0
    columns = read_input_map(model, node.input[0], needed)
    forest, scores = read_forest(node, columns.out_dtype)
    return TreeModel(forest, scores, columns, node.name, node.op_type, after)
