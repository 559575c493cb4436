"""Exact interventional TreeSHAP of a tree ensemble read from ONNX (numpy only), in margin space.

For a row ``x``, a background row ``z`` and a root-to-leaf path, let ``A`` be the model input
columns whose conditions on the path only ``x`` meets and ``B`` those only ``z`` meets (a column
tested several times counts once: a row meets it when it meets every test of the path on it). The
leaf is out of reach when a column is met by neither; otherwise the Shapley values of the game "the
row made of ``x`` on S and ``z`` elsewhere reaches the leaf" give each column of ``A``
``+v (|A|-1)! |B|! / (|A|+|B|)!`` and each of ``B`` ``-v |A|! (|B|-1)! / (|A|+|B|)!`` (``v``: the
leaf's value). Averaging over the background gives ``shap.TreeExplainer(model, data=background,
feature_perturbation="interventional", model_output="raw")``, and the values add up exactly:
``sum_j phi_j(x) = margin(x) - mean_z margin(z)``.

The sum is never taken pair by pair. Per path, a row is a bit pattern (which of the path's columns it
meets), and the pair (x, z) only matters through the two patterns: ``B`` is the columns ``x`` fails
and ``A`` those ``z`` fails, compatible when no column is failed by both. So each path's distinct row
patterns are paired with its distinct background patterns (counted), a table of coefficients per
(row pattern, column) is built from the compatible pairs, and each row reads its pattern's entries.
Rows, background rows and paths are processed in chunks of at most ``chunk`` elements per temporary
array, so memory depends on the chunk, never on rows x background x leaves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..graph.trees import Paths, TreeModel
from ..support.errors import InputError, ModelError

_MAX_DEPTH = 64  # columns on one path: a pattern is one uint64
_ROWS = 1024  # rows whose patterns are deduplicated together


def _weights() -> tuple[np.ndarray, np.ndarray]:
    """``PLUS[a, b] = (a-1)! b! / (a+b)!`` and ``MINUS[a, b] = a! (b-1)! / (a+b)!``, zero where undefined."""
    plus, minus = np.zeros((_MAX_DEPTH + 1,) * 2), np.zeros((_MAX_DEPTH + 1,) * 2)
    for a in range(_MAX_DEPTH + 1):
        for b in range(_MAX_DEPTH + 1 - a):
            if a:
                plus[a, b] = 1 / (a * math.comb(a + b, a))
            if b:
                minus[a, b] = 1 / (b * math.comb(a + b, b))
    return plus, minus


PLUS, MINUS = _weights()


def interventional_tree_shap(
    model: TreeModel, x: np.ndarray, background: np.ndarray, *, chunk: int = 1 << 21
) -> tuple[np.ndarray, np.ndarray]:
    """Exact interventional SHAP values of the ensemble's margins.

    Args:
        model: the ensemble (:func:`onnx_xai.graph.trees.read_ensemble`).
        x: rows to explain, [N, model.features] (cast to the model input's type, as onnxruntime gets it).
        background: background rows, [M, model.features].
        chunk: elements per temporary array (memory bound; results do not depend on it).

    Returns:
        ``(values [N, features, outputs], base [outputs])`` in float64, with ``values.sum(1) + base ==
        model.margins(x)`` to float64 rounding; ``base`` is the mean margin of the background.

    Raises:
        InputError: rows of the wrong width, or no background rows.
        ModelError: a path tests more than 64 columns.
    """
    x, z = model.rows(x), model.rows(background)
    if len(z) == 0:
        raise InputError("TreeSHAP needs at least one background row")
    plan = _Plan.of(model, chunk, len(z))
    tx, tz = model.tree_inputs(x), model.tree_inputs(z)
    values = np.zeros((len(x), model.features + 1, model.outputs))
    for group in plan.groups():
        bg = _Background.of(group, _patterns(group, model.decisions(tz, group.nodes)))
        for start in range(0, len(x), plan.rows):
            rows = slice(start, start + plan.rows)
            xu = _patterns(group, model.decisions(tx[rows], group.nodes))
            coef = _coefficients(plan, group, xu, bg)
            _add(values[rows], plan, group, xu, coef, len(z))
    return values[:, : model.features], model.margins(z).mean(axis=0)


@dataclass(frozen=True)
class _Plan:
    """The paths that can carry attributions (one column at least), with their requirements."""

    paths: Paths
    keep: np.ndarray  # kept path -> path
    depth: np.ndarray  # per kept path
    first_req: np.ndarray  # per kept path, its first requirement; + the total
    leaf_values: np.ndarray  # per kept path [outputs]
    rows: int
    edges_per_group: int
    chunk: int

    @staticmethod
    def of(model: TreeModel, chunk: int, n_background: int) -> _Plan:
        p = model.paths
        depth = np.bincount(p.path, minlength=p.leaf.size)
        if depth.size and depth.max() > _MAX_DEPTH:
            raise ModelError(
                f"{model.label} has a path testing {depth.max()} columns; TreeSHAP here handles 64"
            )
        keep = np.flatnonzero(depth)
        first_req = np.r_[0, np.cumsum(depth[keep])]
        rows = max(1, min(_ROWS, chunk // 64))
        edges = max(1, chunk // max(rows, n_background))
        return _Plan(p, keep, depth[keep], first_req, model.forest.values[p.leaf[keep]], rows, edges, chunk)

    def groups(self):
        """Consecutive runs of paths whose conditions fit ``edges_per_group`` (one path at least)."""
        first_edge = np.r_[self.paths.first_edge, self.paths.edge_node.size]
        edge_at = first_edge[self.first_req]  # per kept path boundary
        start = 0
        while start < self.keep.size:
            stop = int(np.searchsorted(edge_at, edge_at[start] + self.edges_per_group, side="right")) - 1
            stop = min(max(stop, start + 1), self.keep.size)
            yield _Group.of(self, start, stop, first_edge)
            start = stop


@dataclass(frozen=True)
class _Group:
    paths: slice  # kept paths
    reqs: slice  # their requirements
    nodes: np.ndarray  # distinct branch nodes their conditions test
    met_at: np.ndarray  # per condition, its row in [decisions; not decisions]
    cuts: np.ndarray  # per requirement, its first condition (local)
    req_cuts: np.ndarray  # per path, its first requirement (local)
    bit: np.ndarray  # per requirement
    depth: np.ndarray  # per path

    @staticmethod
    def of(plan: _Plan, start: int, stop: int, first_edge: np.ndarray) -> _Group:
        r0, r1 = int(plan.first_req[start]), int(plan.first_req[stop])
        e0, e1 = int(first_edge[r0]), int(first_edge[r1])
        nodes, node_of_edge = np.unique(plan.paths.edge_node[e0:e1], return_inverse=True)
        met_at = np.where(plan.paths.edge_true[e0:e1], node_of_edge, node_of_edge + nodes.size)
        return _Group(
            slice(start, stop), slice(r0, r1), nodes, met_at,
            first_edge[r0:r1] - e0, plan.first_req[start:stop] - r0, plan.paths.bit[r0:r1].astype(np.uint64),
            plan.depth[start:stop],
        )  # fmt: skip


@dataclass(frozen=True)
class _Unique:
    """Distinct patterns per path of a chunk of rows, grouped by path: ``code``, ``path`` (local),
    ``count`` (rows with it), ``first`` per path (+ total), and ``inverse`` [paths, rows]."""

    code: np.ndarray
    path: np.ndarray
    count: np.ndarray
    first: np.ndarray
    inverse: np.ndarray


def _patterns(group: _Group, decided: np.ndarray) -> _Unique:
    """Each row's pattern on each path of the group (bit ``k``: it meets the path's k-th column),
    from the decisions [nodes, rows] at the group's nodes."""
    both = np.packbits(np.concatenate([decided, ~decided]), axis=1)  # rows packed 8 to a byte
    met = np.bitwise_and.reduceat(both[group.met_at], group.cuts, axis=0)
    met = np.unpackbits(met, axis=1, count=decided.shape[1])
    codes = np.bitwise_or.reduceat(met.astype(np.uint64) << group.bit[:, None], group.req_cuts, axis=0)
    order = np.argsort(codes, axis=1)
    ranked = np.take_along_axis(codes, order, axis=1)
    new = np.ones(ranked.shape, bool)
    new[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    ids = np.cumsum(new).reshape(ranked.shape) - 1
    inverse = np.empty_like(ids)
    np.put_along_axis(inverse, order, ids, axis=1)
    at = np.flatnonzero(new)
    n_paths, n_rows = ranked.shape
    return _Unique(
        ranked.ravel()[at], at // n_rows, np.diff(np.r_[at, ranked.size]),
        np.r_[0, np.cumsum(new.sum(axis=1))], inverse,
    )  # fmt: skip


def _popcount(codes: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(codes).astype(np.int64)
    as_bytes = codes.astype("<u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1)


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index within owner) for ``lengths[i]`` consecutive entries per owner ``i``."""
    owner = np.repeat(np.arange(lengths.size), lengths)
    return owner, np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)


@dataclass(frozen=True)
class _Background:
    """A group's background patterns and what pairing needs: ``fails`` (columns each pattern fails),
    their zero bits (flat, from ``zero_first``), and ``meet``: per requirement ``r`` a bitmask over
    its path's background patterns that meet it, then per path ``p`` (row ``R + p``) all of them."""

    patterns: _Unique
    fails: np.ndarray
    zero_bits: np.ndarray
    zero_first: np.ndarray
    meet: np.ndarray

    @staticmethod
    def of(group: _Group, zu: _Unique) -> _Background:
        d_z = group.depth.astype(np.int64)[zu.path]
        words = (int(np.diff(zu.first).max()) + 63) // 64
        slot = np.arange(zu.code.size) - zu.first[zu.path]  # a pattern's index within its path
        owner, k = _ragged(d_z)
        met = ((zu.code[owner] >> k.astype(np.uint64)) & np.uint64(1)) == 1
        owner, k = owner[met], k[met]
        n_reqs = group.bit.size
        bits = np.zeros((n_reqs + group.depth.size, 64 * words), bool)
        bits[group.req_cuts[zu.path[owner]] + k, slot[owner]] = True
        bits[n_reqs + zu.path, slot] = True
        meet = np.packbits(bits, axis=1, bitorder="little").view("<u8")
        return _Background(zu, d_z - _popcount(zu.code), *_zero_bits(zu.code, d_z), meet)


def _coefficients(plan: _Plan, group: _Group, xu: _Unique, bg: _Background) -> np.ndarray:
    """Per (row pattern u, bit k) the background-summed unit attribution, flat at ``offset[u] + k``:
    ``sum_z [compatible] (PLUS[a, b] if z fails k else 0) - [x fails k] sum_z [compatible] MINUS[a, b]``
    with ``b`` the columns x fails and ``a`` those z fails."""
    d_x = group.depth.astype(np.int64)[xu.path]
    offset = np.r_[0, np.cumsum(d_x)]
    zero_bits, zero_first = _zero_bits(xu.code, d_x)
    x_facts = (d_x - _popcount(xu.code), offset, zero_bits, zero_first)
    coef, minus = np.zeros(offset[-1]), np.zeros(xu.code.size)
    step = max(1, plan.chunk // bg.meet.shape[1] // 64)
    for start in range(0, xu.code.size, step):  # row patterns by batches, ``chunk`` candidate pairs each
        _pair_batch(np.arange(start, min(start + step, xu.code.size)), group, xu, x_facts, bg, (coef, minus))
    owner, k = _ragged(x_facts[0])
    coef[offset[owner] + zero_bits[zero_first[owner] + k]] -= minus[owner]
    return coef


def _pair_batch(us: np.ndarray, group: _Group, xu: _Unique, x_facts: tuple, bg: _Background, out: tuple):
    """Add the compatible pairs of row patterns ``us``: the background patterns of the same path that
    meet every column the row fails (an AND of bitmasks), each with its count."""
    b, offset, zero_bits, zero_first = x_facts
    coef, minus = out
    path = xu.path[us]
    owner, k = _ragged(b[us] + 1)  # per row pattern: its path's "all" mask, then one per failed column
    rows = group.bit.size + path[owner]
    f = k > 0
    rows[f] = group.req_cuts[path[owner[f]]] + zero_bits[zero_first[us[owner[f]]] + k[f] - 1]
    width = int(np.diff(bg.patterns.first)[path].max())  # background patterns of the widest path
    meet = bg.meet[:, : (width + 63) // 64]
    mask = np.bitwise_and.reduceat(meet[rows], np.r_[0, np.cumsum(b[us] + 1)[:-1]], axis=0)
    i, slot = np.nonzero(np.unpackbits(mask.view(np.uint8), axis=1, count=width, bitorder="little"))
    u, w = us[i], bg.patterns.first[path[i]] + slot
    ab = (bg.fails[w], b[u])
    count = bg.patterns.count[w]
    minus += np.bincount(u, count * MINUS[ab], minlength=minus.size)
    pair, k = _ragged(bg.fails[w])  # every column z fails (x meets it) gets PLUS
    at = offset[u[pair]] + bg.zero_bits[bg.zero_first[w[pair]] + k]
    coef += np.bincount(at, (count * PLUS[ab])[pair], minlength=coef.size)


def _zero_bits(codes: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of each code's zero bits below its depth, flat, and where each code's start."""
    owner, k = _ragged(depth)
    zero = ((codes[owner] >> k.astype(np.uint64)) & np.uint64(1)) == 0
    counts = np.bincount(owner[zero], minlength=codes.size)
    return k[zero], np.r_[0, np.cumsum(counts)][:-1]


def _add(values: np.ndarray, plan: _Plan, group: _Group, xu: _Unique, coef: np.ndarray, n_background: int):
    """Each row reads its pattern's coefficients, weighted by the leaf value, summed per column."""
    per_req = np.repeat(np.arange(group.depth.size), group.depth)  # requirement -> local path
    start = (np.r_[0, np.cumsum(group.depth[xu.path])][:-1])[xu.inverse]  # [paths, rows]
    column = plan.paths.column[group.reqs]
    leaf = plan.leaf_values[group.paths] / n_background
    for o in range(leaf.shape[1]):
        live = np.flatnonzero(leaf[per_req, o])
        if not live.size:
            continue
        live = live[np.argsort(column[live], kind="stable")]
        cuts = np.flatnonzero(np.r_[True, column[live][1:] != column[live][:-1]])
        weighted = coef * np.repeat(leaf[xu.path, o], group.depth[xu.path])
        read = weighted[start[per_req[live]] + group.bit[live].astype(np.int64)[:, None]]
        values[:, column[live][cuts], o] += np.add.reduceat(read, cuts, axis=0).T
