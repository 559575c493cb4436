"""What the VJP rules of LSTM, GRU and RNN share: the node seen time-major, its directions, its
sequence lengths, and the Scan that carries the state's cotangent back in time.

Each direction ``d`` runs a recurrence ``s_t = cell(x_t, s_prev)`` over the steps in its order (0 to
T-1 forward, T-1 to 0 in reverse). With ``sequence_lens`` a row's steps past its length ``L`` are
skipped: the state is kept, ``Y`` is 0 there, and ``Y_h`` (``Y_c``) is the state after the row's last
step, 0 for ``L = 0`` (onnxruntime 1.32's kernels; in reverse the row's own ``L`` first steps are run
from ``L - 1`` down). The forward's ``Y`` gives every step's previous hidden state, so the gates'
pre-activations of all steps are one MatMul over T; a cell then reduces its backward to per-step
coefficients computed in parallel, and a Scan against the direction's order carries
``dh_prev = (gate cotangents) R + dh * direct`` (LSTM also ``dc``), its per-step outputs the gate
cotangents ``G``: ``dX = sum_d G_d W_d`` in one MatMul, the final carry is the initial state's
cotangent. A skipped step has zero gate coefficients and passes the carry on unchanged. The Scans
come from :mod:`.recurrent_scan`; ``layout = 1`` is transposed to time-major and back. Where the node
does not output Y, a twin of it does (with no Y on the path, its only consumer is the backward).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ...support.errors import ModelError
from ..emitter import Emitter
from ..info import attr
from .recurrent_activations import PER_DIRECTION, Activation, activations, clip_value
from .recurrent_scan import scan

INT64 = onnx.TensorProto.INT64
LAST = np.iinfo(np.int64).max
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
WEIGHTS = {1: "W", 2: "R", 3: "B", 7: "P"}  # inputs that must not depend on the explained input
INITIAL_H, INITIAL_C = 5, 6


def _input(node, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def hidden_size(info, node) -> int | None:
    """``hidden_size``, else the last dimension of R when it is static."""
    size = attr(node, "hidden_size")
    if size is not None:
        return int(size)
    shape = info.shape(node.input[2])
    return shape[2] if shape is not None and len(shape) == 3 and isinstance(shape[2], int) else None


def recurrent_check(info, node, wants) -> list[str]:
    """Weights that depend on the input, attributes out of the spec, an unknown hidden size."""
    problems = [
        f"input {_input(node, i)!r} ({what}, a weight) depends on the input"
        for i, what in WEIGHTS.items()
        if _input(node, i) and wants(_input(node, i))
    ]
    direction = attr(node, "direction", "forward")
    if direction not in DIRECTIONS:
        problems.append(f"direction {direction!r}")
    else:
        found = activations(node, DIRECTIONS[direction])
        problems += [found] if isinstance(found, str) else []
    if attr(node, "layout", 0) not in (0, 1):
        problems.append(f"layout={attr(node, 'layout')}")
    clip = clip_value(node)
    if clip is not None and clip <= 0:
        problems.append(f"clip={clip} (not positive)")
    if hidden_size(info, node) is None:
        problems.append("no hidden_size attribute and R of unknown shape")
    return problems


@dataclass
class Recurrence:
    """One recurrent node seen time-major."""

    node: onnx.NodeProto
    x: str  # X, [T, B, I]
    y: str  # the hidden states of all directions, as the node's layout has them
    hidden: int
    layout: int
    like: str  # the forward tensor whose element type the constants take
    lengths: str | None  # sequence_lens as int64 [B]
    acts: list[tuple[Activation, ...]]
    clip: float | None
    cache: dict = field(default_factory=dict)

    @property
    def directions(self) -> int:
        return len(self.acts)


@dataclass
class Direction:
    """One direction's weights, states and cotangents (time-major, [T, B, H] per step)."""

    index: int
    reverse: bool
    w: str  # [G H, I]
    r: str  # [G H, H]
    bias: str | None  # [2 G H]: Wb then Rb
    h0: str  # [B, H]
    hprev: str  # [T, B, H]: the hidden state each step starts from
    dy: str | None  # [T, B, H], 0 on skipped steps
    dyh: str | None  # [B, H], 0 for empty rows


def sequence(e: Emitter, node) -> Recurrence:
    x, layout = node.input[0], int(attr(node, "layout", 0))
    acts = activations(node, DIRECTIONS[attr(node, "direction", "forward")])
    if isinstance(acts, str):  # the check refuses it first
        raise ModelError(f"{node.op_type} {node.name!r}: {acts}")
    lengths = _input(node, 4)
    return Recurrence(
        node=node,
        x=e.op("Transpose", [x], perm=[1, 0, 2]) if layout else x,
        y=_hidden_states(e, node),
        hidden=int(hidden_size(e.info, node) or 0),
        layout=layout,
        like=x,
        lengths=e.op("Cast", [lengths], to=INT64) if lengths else None,
        acts=acts,
        clip=clip_value(node),
    )


def _hidden_states(e: Emitter, node) -> str:
    """The node's Y, or Y of a twin of the node when the node does not output it."""
    if node.output[0]:
        return node.output[0]
    return e.op(node.op_type, list(node.input), **_twin_attributes(node))


def _twin_attributes(node) -> dict:
    """The node's attributes spelled differently, same values: onnxruntime 1.32's common
    subexpression elimination merges a twin with equal attributes into the node and then wires the
    node's absent Y ("Argument type mismatch when adding edge")."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    defaults = {"direction": b"forward", "activations": None, "clip": float(np.finfo(np.float32).max)}
    for name, value in defaults.items():
        if name not in attrs:
            directions = DIRECTIONS[attr(node, "direction", "forward")]
            per = list(PER_DIRECTION[node.op_type]) * directions
            return attrs | {name: value if value is not None else per}
        if name == "direction" and attrs[name] == b"forward":
            return {k: v for k, v in attrs.items() if k != name}
    return attrs


def direction(e: Emitter, seq: Recurrence, d: int, g_out) -> Direction:
    node = seq.node
    reverse = attr(node, "direction", "forward") == "reverse" or d == 1
    index = e.const(np.array(d, np.int64))
    bias = _input(node, 3)
    h0 = initial_state(e, seq, INITIAL_H, d)
    y = _per_direction(e, seq, seq.y, d)
    dy = _per_direction(e, seq, g_out[0], d) if g_out[0] else None
    return Direction(
        index=d,
        reverse=reverse,
        w=e.op("Gather", [node.input[1], index], axis=0),
        r=e.op("Gather", [node.input[2], index], axis=0),
        bias=e.op("Gather", [bias, index], axis=0) if bias else None,
        h0=h0,
        hprev=previous(e, seq, y, h0, reverse, frozen=False),
        dy=keep(e, seq, dy, 0.0) if dy else None,
        dyh=state_cotangent(e, seq, g_out[1] if len(g_out) > 1 else None, d),
    )


def _per_direction(e: Emitter, seq: Recurrence, y: str, d: int) -> str:
    """Direction ``d`` of a Y-shaped tensor, time-major: [T, B, H]."""
    index = e.const(np.array(d, np.int64))
    if not seq.layout:
        return e.op("Gather", [y, index], axis=1)
    return e.op("Transpose", [e.op("Gather", [y, index], axis=2)], perm=[1, 0, 2])


def initial_state(e: Emitter, seq: Recurrence, index: int, d: int) -> str:
    """Direction ``d`` of initial_h or initial_c, [B, H]; zeros when the input is absent."""
    name = _input(seq.node, index)
    if not name:
        return zeros(e, seq)
    return e.op("Gather", [name, e.const(np.array(d, np.int64))], axis=seq.layout)


def state_cotangent(e: Emitter, seq: Recurrence, g: str | None, d: int) -> str | None:
    """Direction ``d`` of Y_h's (Y_c's) cotangent, [B, H], 0 for a row of length 0."""
    if not g:
        return None
    part = e.op("Gather", [g, e.const(np.array(d, np.int64))], axis=seq.layout)
    if seq.lengths is None:
        return part
    nonempty = e.unsqueeze(e.op("Greater", [seq.lengths, e.const(np.array(0, np.int64))]), [1])
    return e.op("Where", [nonempty, part, e.scalar(0.0, seq.like)])


def zeros(e: Emitter, seq: Recurrence) -> str:
    """Zeros [B, H]."""
    batch = e.op("Slice", [e.op("Shape", [seq.x]), e.ints([1]), e.ints([2])])
    shape = e.op("Concat", [batch, e.ints([seq.hidden])], axis=0)
    return e.op("ConstantOfShape", [shape], value=e.zero_fill(seq.like))


def _steps(e: Emitter, seq: Recurrence, start: int) -> str:
    """start, start + 1, ..., start + T - 1 as a column [T, 1] (int64)."""
    count = e.op("Gather", [e.op("Shape", [seq.x]), e.const(np.array(0, np.int64))])
    first = e.const(np.array(start, np.int64))
    end = e.op("Add", [count, first])
    return e.unsqueeze(e.op("Range", [first, end, e.const(np.array(1, np.int64))]), [1])


def valid(e: Emitter, seq: Recurrence, shift: int = 0) -> str:
    """[T, B, 1] bool: step ``t + shift`` is within its row's length (``seq.lengths`` is set)."""
    key = ("valid", shift)
    if key not in seq.cache:
        lengths = e.unsqueeze(str(seq.lengths), [0])
        seq.cache[key] = e.unsqueeze(e.op("Less", [_steps(e, seq, shift), lengths]), [2])
    return seq.cache[key]


def keep(e: Emitter, seq: Recurrence, x: str, fill: float) -> str:
    """``x`` on the steps within each row's length, ``fill`` on the skipped ones."""
    if seq.lengths is None:
        return x
    return e.op("Where", [valid(e, seq), x, e.scalar(fill, seq.like)])


def skipped(e: Emitter, seq: Recurrence) -> str | None:
    """[T, B, 1]: 1 on the skipped steps, 0 elsewhere (None without sequence_lens)."""
    if seq.lengths is None:
        return None
    return e.op("Where", [valid(e, seq), e.scalar(0.0, seq.like), e.scalar(1.0, seq.like)])


def previous(e: Emitter, seq: Recurrence, states: str, init: str, reverse: bool, frozen: bool) -> str:
    """The state each step starts from, [T, B, H], from the states after each step and the initial
    one. ``frozen``: ``states`` keeps the state on skipped steps (else Y's zeros are there, and a
    reverse row's first step starts from ``init``)."""
    first = e.unsqueeze(init, [0])
    if not reverse:
        return e.op(
            "Concat", [first, e.op("Slice", [states, e.ints([0]), e.ints([-1]), e.ints([0])])], axis=0
        )
    later = e.op("Concat", [e.op("Slice", [states, e.ints([1]), e.ints([LAST]), e.ints([0])]), first], axis=0)
    if frozen or seq.lengths is None:
        return later
    return e.op("Where", [valid(e, seq, 1), later, init])


def part(e: Emitter, x: str, k: int, size: int, axis: int = -1) -> str:
    """Block ``k`` of ``size`` along ``axis``."""
    return e.op("Slice", [x, e.ints([k * size]), e.ints([(k + 1) * size]), e.ints([axis])])


def projected(e: Emitter, seq: Recurrence, dr: Direction, bias: str | None) -> str:
    """``X W^T (+ bias)`` for every step: [T, B, G H]."""
    xw = e.op("MatMul", [seq.x, e.op("Transpose", [dr.w])])
    return e.op("Add", [xw, bias]) if bias else xw


def bias_sum(e: Emitter, dr: Direction, gates: int, hidden: int) -> str | None:
    """``Wb + Rb``, [G H] (None without B)."""
    if dr.bias is None:
        return None
    return e.op("Add", [part(e, dr.bias, 0, gates * hidden), part(e, dr.bias, 1, gates * hidden)])


def gate_inputs(e: Emitter, seq: Recurrence, dr: Direction, gates: int) -> str:
    """``X W^T + H_prev R^T + Wb + Rb`` for every step: [T, B, G H]."""
    recurrent = e.op("MatMul", [dr.hprev, e.op("Transpose", [dr.r])])
    return e.op("Add", [projected(e, seq, dr, bias_sum(e, dr, gates, seq.hidden)), recurrent])


CellBody = Callable[[str, list[str], list[str]], tuple[list[str], list[str]]]


def backward_scan(
    e: Emitter,
    seq: Recurrence,
    dr: Direction,
    carries: Sequence[str],
    elements: Sequence[str],
    body: CellBody,
    direct: str | None,
    n_out: int = 1,
):
    """The Scan against the direction's order: ``carries`` start as the cotangents of the final
    state (``dh`` first), ``body(dh, other carries, elements)`` gets ``dh`` with Y's cotangent of
    the step added and returns the carries of the previous step and its outputs; ``dh * direct``
    (per step) is added to the first carry."""
    extra = ([dr.dy] if dr.dy else []) + list(elements) + ([direct] if direct else [])

    def wrapped(states: list[str], steps: list[str]):
        dh = e.op("Add", [states[0], steps[0]]) if dr.dy else states[0]
        own = steps[1:] if dr.dy else steps
        own, direct_t = (own[:-1], own[-1]) if direct else (own, None)
        new_states, outputs = body(dh, states[1:], own)
        if direct_t is not None:
            new_states[0] = e.op("Add", [new_states[0], e.op("Mul", [dh, direct_t])])
        return new_states, outputs

    return scan(e, seq.like, list(carries), extra, wrapped, n_out, reverse=not dr.reverse)


@dataclass
class Backward:
    """What a cell's backward gives per direction: the cotangent of ``X W^T`` [T, B, G H] and of
    the initial states [B, H] (``dc0`` for LSTM only)."""

    gates: str
    dh0: str
    dc0: str | None = None


Cell = Callable[[Emitter, Recurrence, Direction, list], Backward]


def recurrent_vjp(e: Emitter, node, g_out, cell: Cell) -> tuple:
    """The cotangents of X, initial_h and initial_c (None for the weights and lengths)."""
    seq = sequence(e, node)
    found = []
    for d in range(seq.directions):
        dr = direction(e, seq, d, list(g_out))
        found.append((dr, cell(e, seq, dr, list(g_out))))
    grads: list[str | None] = [None] * len(node.input)
    if e.wants(node.input[0]):
        parts = [e.op("MatMul", [back.gates, dr.w]) for dr, back in found]
        dx = parts[0] if len(parts) == 1 else e.op("Sum", parts)
        grads[0] = e.op("Transpose", [dx], perm=[1, 0, 2]) if seq.layout else dx
    for index, attr_name in ((INITIAL_H, "dh0"), (INITIAL_C, "dc0")):
        name = _input(node, index)
        if name and e.wants(name):
            states = [e.unsqueeze(getattr(back, attr_name), [seq.layout]) for _, back in found]
            grads[index] = states[0] if len(states) == 1 else e.op("Concat", states, axis=seq.layout)
    return tuple(grads)
