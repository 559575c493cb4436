"""VJP rules of the differentiable ``ai.onnx.ml`` ops, as onnxruntime computes them.

The ML ops compute in float32 whatever their input's type (the spec's outputs are ``tensor(float)``;
Imputer and ArrayFeatureExtractor keep the input's type): a cotangent is computed in the output's
type and comes back in the input's. Where onnxruntime and the ONNX reference implementation differ,
the rules follow onnxruntime, which is what is served (measured on 1.32, and pinned by
``tests/graph/rules/test_ml.py``): a LinearClassifier with one coefficient row and two class labels
writes ``[1 - s, s]`` (NONE, SOFTMAX, SOFTMAX_ZERO) or ``[1 - sigmoid(s), sigmoid(s)]`` (LOGISTIC)
where the reference writes ``[-s, s]`` and ``softmax([-s, s])``; one row without two labels gives the
raw score unless PROBIT; SOFTMAX_ZERO leaves the scores within 1e-7 of zero out of its sum; Normalizer
MAX divides by the row's maximum (the spec's ``max(x)``, not the largest magnitude), and a row whose
norm is 0 passes unchanged. PROBIT is onnxruntime's (and the reference's) Winitzki approximation of
erfinv, differentiated as written.

ZipMap has no rule: its output is a sequence of maps, and the explained score is read at its input
(:func:`onnx_xai.graph.analysis.score_tensor`). Tree ensembles, encoders, category and label maps
have none either (piecewise constant, or not numbers): the sweep refuses them by name.
"""

from __future__ import annotations

import math

import numpy as np

from ..emitter import Emitter, Tensor
from ..info import GraphInfo, attr
from ..registry import vjp

POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
SOFTMAX_ZERO_BAND = 1e-7  # onnxruntime's SOFTMAX_ZERO: a score within this of 0 is left out
WINITZKI_A = 0.147  # the constant of the erfinv approximation behind PROBIT


def _computed(e: Emitter, x: str, y: str) -> Tensor:
    """The input ``x`` in the element type the op computes its output ``y`` in."""
    return e.t(x if e.info.dtype(x) == e.info.dtype(y) else e.cast_like(x, y), like=y)


def _back(e: Emitter, grad: Tensor | str, x: str, y: str) -> str:
    """A cotangent computed in ``y``'s type, in the shape (a 1-D input is read as one row) and type
    of the input ``x``."""
    name = str(grad)
    if e.info.rank(x) == 1 and e.info.rank(y) != 1:
        name = e.op("Reshape", [name, e.op("Shape", [x])])
    return name if e.info.dtype(x) == e.info.dtype(y) else e.cast_like(name, x)


def _rows_or_vector(info: GraphInfo, x: str) -> list[str]:
    rank = info.rank(x)
    return [] if rank in (1, 2) else [f"input {x!r} of rank {rank}" if rank else f"unknown rank of {x!r}"]


def _columns(e: Emitter, t: Tensor, start: int, end: int) -> Tensor:
    return e.t(e.op("Slice", [t, e.ints([start]), e.ints([end]), e.ints([1])]), like=t.like)


def _row_sum(e: Emitter, t: Tensor) -> Tensor:
    """The sum over the last axis of a ``[N, C]`` or ``[C]`` tensor, kept as size 1."""
    return e.t(e.reduce("ReduceSum", t.name, [-1]), like=t.like)


# -- scalers -----------------------------------------------------------------------------------------
def _scaler_check(info, node, wants) -> list[str]:
    """Per-column scales on a rank-3+ input: onnxruntime repeats them over the flattened elements."""
    rank, columns = info.rank(node.input[0]), len(attr(node, "scale") or [])
    if columns > 1 and rank not in (1, 2):
        return [f"{columns} scales on an input of rank {rank}" if rank else "unknown input rank"]
    return []


@vjp("Scaler", check=_scaler_check)
def scaler(e: Emitter, node, g_out):
    """Scaler: y = (x - offset) * scale (one value, or one per column); dx = dy * scale."""
    x, y = node.input[0], node.output[0]
    scale = np.asarray(attr(node, "scale") or [1.0], e.np_dtype(y))
    return (_back(e, e.t(g_out[0], like=y) * e.const(scale), x, y),)


def _normalizer_check(info, node, wants) -> list[str]:
    norm = attr(node, "norm", "MAX")
    return _rows_or_vector(info, node.input[0]) + ([] if norm in ("MAX", "L1", "L2") else [f"norm={norm!r}"])


@vjp("Normalizer", check=_normalizer_check)
def normalizer(e: Emitter, node, g_out):
    """Normalizer: y = x / n per row (n = max x, sum |x|, |x|_2); dx = (dy - dn/dx sum(dy y)) / n.

    A row whose n is 0 passes unchanged (dx = dy there); MAX's dn/dx is shared equally by the entries
    tied for the maximum, as ReduceMax's rule shares it."""
    x, y = node.input[0], node.output[0]
    xf, dy, yt = _computed(e, x, y), e.t(g_out[0], like=y), e.t(y)
    total = _row_sum(e, dy * yt)
    norm = attr(node, "norm", "MAX")
    if norm == "MAX":
        n = e.t(e.reduce("ReduceMax", xf.name, [-1]), like=y)
        hit = e.t(e.cast_like(e.op("Equal", [xf, n]), y), like=y)
        slope = hit * total / _row_sum(e, hit)
    elif norm == "L1":
        n = _row_sum(e, e.t(e.op("Abs", [xf]), like=y))
        slope = e.t(e.op("Sign", [xf]), like=y) * total
    else:
        n = e.t(e.op("Sqrt", [_row_sum(e, xf * xf)]), like=y)
        slope = yt * total
    zero = e.op("Equal", [n, e.scalar(0.0, like=y)])
    safe = n + e.cast_like(zero, y)
    return (_back(e, e.op("Where", [zero, dy, (dy - slope) / safe]), x, y),)


@vjp("Imputer")
def imputer(e: Emitter, node, g_out):
    """Imputer: y = x where kept, a constant where x is the replaced value (or NaN); dx = dy [x kept]."""
    x = node.input[0]
    replaced = float(attr(node, "replaced_value_float", 0.0))
    missing = e.op("IsNaN", [x]) if math.isnan(replaced) else e.op("Equal", [x, e.scalar(replaced, like=x)])
    return ((e.t(g_out[0], like=x) * e.cast_like(e.op("Not", [missing]), x)).name,)


@vjp("Binarizer")
def binarizer(e: Emitter, node, g_out):
    """Binarizer: y = [x > threshold], a step: no gradient (zero almost everywhere)."""
    return (None,)


# -- linear models -----------------------------------------------------------------------------------
def _coefficients(e: Emitter, node, rows: int, y: str) -> str:
    """The ``[rows, features]`` coefficient matrix as onnxruntime reads it: the first rows x features
    values, row-major, features from the input (extra values ignored)."""
    values = np.asarray(attr(node, "coefficients") or [], e.np_dtype(y))
    features = _features(e.info, node, rows)
    return e.const(values[: rows * features].reshape(rows, features))


def _features(info: GraphInfo, node, rows: int) -> int:
    shape = info.shape(node.input[0]) or ()
    last = shape[-1] if shape else None
    return last if isinstance(last, int) else len(attr(node, "coefficients") or []) // max(rows, 1)


def _linear_check(info, node, rows: int) -> list[str]:
    count = len(attr(node, "coefficients") or [])
    problems = _rows_or_vector(info, node.input[0])
    if rows < 1:
        problems.append("no intercepts (onnxruntime counts the classes by them)")
    elif count < rows * _features(info, node, rows):
        problems.append(f"{count} coefficients for {rows} rows of {_features(info, node, rows)} features")
    return problems


def _regressor_check(info, node, wants) -> list[str]:
    post = attr(node, "post_transform", "NONE")
    problems = [] if post == "NONE" else [f"post_transform={post!r} (only NONE)"]
    return problems + _linear_check(info, node, int(attr(node, "targets", 1)))


@vjp("LinearRegressor", check=_regressor_check)
def linear_regressor(e: Emitter, node, g_out):
    """LinearRegressor: y = x W^T + b (W: targets x features); dx = dy W."""
    x, y = node.input[0], node.output[0]
    w = _coefficients(e, node, int(attr(node, "targets", 1)), y)
    return (_back(e, e.op("MatMul", [g_out[0], w]), x, y),)


def classifier_rows(node) -> tuple[int, bool]:
    """The number of score rows (intercepts), and whether one row is written as two classes."""
    rows = len(attr(node, "intercepts") or [])
    labels = attr(node, "classlabels_ints") or attr(node, "classlabels_strings") or []
    return rows, rows == 1 and len(labels) == 2


def _classifier_check(info, node, wants) -> list[str]:
    post = attr(node, "post_transform", "NONE")
    rows, binary = classifier_rows(node)
    problems = [] if post in POST_TRANSFORMS else [f"post_transform={post!r}"]
    if binary and post == "PROBIT":
        problems.append(
            "post_transform='PROBIT' on one row with two classes (onnxruntime writes half the scores)"
        )
    return problems + _linear_check(info, node, rows)


@vjp("LinearClassifier", check=_classifier_check)
def linear_classifier(e: Emitter, node, g_out):
    """LinearClassifier: z = post_transform(s), s = x W^T + b; dx = (dz dz/ds) W; the label gets none.

    dz/ds per post_transform and layout in the module docstring; SOFTMAX_ZERO and PROBIT recompute s."""
    x, z = node.input[0], node.output[1]
    rows, _ = classifier_rows(node)
    ds = _score_cotangent(e, node, e.t(g_out[1], like=z), z)
    return (_back(e, e.op("MatMul", [ds, _coefficients(e, node, rows, z)]), x, z),)


def _score_cotangent(e: Emitter, node, dz: Tensor, z: str) -> Tensor:
    """The cotangent of the raw scores s from that of the written scores z (module docstring)."""
    post = attr(node, "post_transform", "NONE")
    rows, binary = classifier_rows(node)
    zt = e.t(z)
    if binary:
        ds = _columns(e, dz, 1, 2) - _columns(e, dz, 0, 1)
        p = _columns(e, zt, 1, 2)
        return ds * p * (1 - p) if post == "LOGISTIC" else ds
    if post == "NONE" or (rows == 1 and post != "PROBIT"):
        return dz
    if post == "LOGISTIC":
        return dz * zt * (1 - zt)
    if post == "SOFTMAX":
        return zt * (dz - _row_sum(e, dz * zt))
    s = _raw_scores(e, node, z)
    return _softmax_zero(e, s, zt, dz) if post == "SOFTMAX_ZERO" else dz * _probit_slope(e, s)


def _raw_scores(e: Emitter, node, z: str) -> Tensor:
    """s = x W^T + b, recomputed in the scores' type (SOFTMAX_ZERO and PROBIT need it)."""
    x = node.input[0]
    rows, _ = classifier_rows(node)
    xf = _computed(e, x, z)
    if e.info.rank(x) == 1:
        xf = e.t(e.op("Reshape", [xf, e.ints([1, -1])]), like=z)
    b = e.const(np.asarray(attr(node, "intercepts"), e.np_dtype(z)))
    return e.t(e.op("Gemm", [xf, _coefficients(e, node, rows, z), b], transB=1), like=z)


def _softmax_zero(e: Emitter, s: Tensor, z: Tensor, dz: Tensor) -> Tensor:
    """SOFTMAX_ZERO: z = e^s / Z off the band around 0, s / Z in it (Z sums e^s off the band);
    ds = z (dz - sum(dz z)) off the band, dz / Z in it."""
    off = e.op("Greater", [e.op("Abs", [s]), e.scalar(SOFTMAX_ZERO_BAND, like=z.name)])
    top = e.t(e.reduce("ReduceMax", s.name, [-1]), like=z.name)
    shifted = _row_sum(
        e, e.t(e.cast_like(off, z.name), like=z.name) * e.t(e.op("Exp", [s - top]), like=z.name)
    )
    inverse = e.t(e.op("Exp", [-top]), like=z.name) / shifted  # 1 / Z
    return e.t(e.op("Where", [off, z * (dz - _row_sum(e, dz * z)), dz * inverse]), like=z.name)


def _probit_slope(e: Emitter, s: Tensor) -> Tensor:
    """d/ds of sqrt(2) erfinv(2s - 1) with erfinv(u) = sgn(u) sqrt(sqrt(v^2 - L/a) - v),
    L = ln(1 - u^2), v = 2/(pi a) + L/2: -2 sqrt(2) (dv3/dL) sqrt(a (v + R) u^2/(-L)) / (1 - u^2),
    R = sqrt(v^2 - L/a), dv3/dL = (v - 1/a) / 2R - 1/2; u^2/(-L) is 1 at u = 0."""
    a, like = WINITZKI_A, s.like
    u = 2 * s - 1
    w = (1 - u) * (1 + u)
    log_w = e.t(e.op("Log", [w]), like=like)
    v = log_w * 0.5 + 2 / (math.pi * a)
    root = e.t(e.op("Sqrt", [v * v - log_w / a]), like=like)
    dv3 = (v - 1 / a) / (root * 2) - 0.5
    inside = e.op("Less", [log_w, e.scalar(0.0, like=like)])
    ratio = e.t(e.op("Where", [inside, u * u / -log_w, e.scalar(1.0, like=like)]), like=like)
    spread = e.t(e.op("Sqrt", [(v + root) * ratio * a]), like=like)
    return dv3 * spread * (-2 * math.sqrt(2)) / w


# -- feature plumbing --------------------------------------------------------------------------------
def _width(info: GraphInfo, x: str) -> int | None:
    """The number of values per row onnxruntime reads from a FeatureVectorizer input (a 1-D input is
    one row), or None when it is not static."""
    dims = info.shape(x)
    row = None if dims is None else (dims if len(dims) == 1 else dims[1:])
    return int(np.prod(row)) if row is not None and all(isinstance(d, int) for d in row) else None  # type: ignore[arg-type]


def _vectorizer_check(info, node, wants) -> list[str]:
    return [f"unknown column count of {x!r}" for x in node.input if wants(x) and _width(info, x) is None]


@vjp("FeatureVectorizer", check=_vectorizer_check)
def feature_vectorizer(e: Emitter, node, g_out):
    """FeatureVectorizer: y = [x_1 | x_2 | ...] (each cut or padded); dx_i = dy's columns x_i fills.

    Input i takes inputdimensions[i] columns: cut to them, or zero-padded (its columns beyond get a
    zero cotangent)."""
    dy, y = e.t(g_out[0], like=node.output[0]), node.output[0]
    dims = [int(d) for d in attr(node, "inputdimensions") or []]
    starts = np.cumsum([0, *dims]).tolist()
    grads: list[str | None] = []
    for x, d, start in zip(node.input, dims, starts):
        if not e.wants(x):
            grads.append(None)
            continue
        width = _width(e.info, x) or 0
        part = _columns(e, dy, start, start + min(width, d)).name
        if width > d:
            part = e.op("Pad", [part, e.ints([0, 0, 0, width - d])])
        if e.info.rank(x) != 2:
            part = e.op("Reshape", [part, e.op("Shape", [x])])
        grads.append(part if e.info.dtype(x) == e.info.dtype(y) else e.cast_like(part, x))
    return tuple(grads) + (None,) * (len(node.input) - len(grads))


@vjp("ArrayFeatureExtractor")
def array_feature_extractor(e: Emitter, node, g_out):
    """ArrayFeatureExtractor: y = x[..., idx]; dx = dy @ onehot(idx, columns) (repeats add up).

    idx is flattened; a 1-D x gives one row, as onnxruntime reads it."""
    x, idx = node.input
    shape = e.info.shape(x) or ()
    columns = (
        e.const(np.array(shape[-1], np.int64))
        if shape and isinstance(shape[-1], int)
        else e.op("Gather", [e.op("Shape", [x]), e.const(np.array(-1, np.int64))])
    )
    every = e.op("Range", [e.const(np.array(0, np.int64)), columns, e.const(np.array(1, np.int64))])
    one_hot = e.cast_like(e.op("Equal", [e.op("Reshape", [idx, e.ints([-1, 1])]), every]), x)
    dx = e.op("MatMul", [g_out[0], one_hot])
    return (e.op("Reshape", [dx, e.op("Shape", [x])]) if e.info.rank(x) == 1 else dx, None)
