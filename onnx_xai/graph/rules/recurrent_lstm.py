"""The VJP rule of LSTM (:mod:`.recurrent_common` has the shared machinery and the sequence lengths).

Per step, with gate pre-activations ``p = x W^T + h_prev R^T + Wb + Rb`` in the order i, o, f, c,
peepholes ``Pi, Po, Pf`` and activations f, g, h (each gate's input clipped when ``clip`` is set;
h's input is not, as onnxruntime does): ``i = f(p_i + Pi c_prev)``, ``f = f(p_f + Pf c_prev)`` (or
``1 - i`` with ``input_forget``), ``g = g(p_c)``, ``c = f c_prev + i g``, ``o = f(p_o + Po c)``,
``h = o h(c)``. The cell states are not an output: a forward Scan recomputes them (its body is
``c = f c_prev + i g`` with f and ``i g`` computed for all steps at once, or with the peepholes' i and
f computed in the body). Backward, with ``dh`` the step's hidden cotangent and ``dc`` the carried
cell cotangent: ``dp_o = dh h(c) f'_o``, ``dc_t = dc + dh (o h'(c) + dp_o Po)``,
``dp_i = dc_t g f'_i`` (``dc_t (g - c_prev) f'_i`` with ``input_forget``), ``dp_f = dc_t c_prev f'_f``,
``dp_c = dc_t i g'``, ``dc_prev = dc_t f + dp_i Pi + dp_f Pf``, ``dh_prev = [dp_i dp_o dp_f dp_c] R``.
Every coefficient of ``dh`` and ``dc_t`` is computed for all steps at once from the recomputed
gates, so the reverse Scan's body is one MatMul and a few products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..emitter import Emitter, Tensor
from ..info import attr
from ..registry import vjp
from .recurrent_activations import Activation, apply, apply_with_slope, clipped, gated
from .recurrent_common import (
    INITIAL_C,
    Backward,
    Direction,
    Recurrence,
    backward_scan,
    gate_inputs,
    initial_state,
    keep,
    part,
    previous,
    recurrent_check,
    recurrent_vjp,
    skipped,
    state_cotangent,
    valid,
    zeros,
)
from .recurrent_scan import scan


@dataclass
class _Gates:
    """One direction's gate pre-activations [T, B, H] (peepholes not added) and peepholes [H]."""

    i: str
    o: str
    f: str
    c: str
    peep: tuple[str, str, str] | None  # Pi, Po, Pf
    coupled: bool  # input_forget: f = 1 - i


@vjp("LSTM", check=recurrent_check)
def lstm(e: Emitter, node, g_out):
    """LSTM: dX = (gate cotangents) W; d initial_h and d initial_c carried back by a reverse-time Scan."""
    return recurrent_vjp(e, node, g_out, _cell)


def _cell(e: Emitter, seq: Recurrence, dr: Direction, g_out: list) -> Backward:
    pre = gate_inputs(e, seq, dr, 4)
    coupled = bool(attr(seq.node, "input_forget", 0))
    i, o, f, c = (part(e, pre, k, seq.hidden) for k in range(4))
    gates = _Gates(i, o, f, c, _peepholes(e, seq, dr), coupled)
    c0 = initial_state(e, seq, INITIAL_C, dr.index)
    g = _gated(e, seq, seq.acts[dr.index][1], gates.c)
    if gates.peep is None:  # i and f do not read the cell: computed once, before the cells
        side = _input_side(e, seq, dr, gates, g, "")
        cells = _cell_states(e, seq, dr, side, c0)
        prev = previous(e, seq, cells, c0, dr.reverse, True)
    else:
        cells = _peephole_cell_states(e, seq, dr, gates, g[0].name, c0)
        prev = previous(e, seq, cells, c0, dr.reverse, True)
        side = _input_side(e, seq, dr, gates, g, prev)
    a, k_c, k_f = _coefficients(e, seq, dr, gates, side, cells, prev)
    dyc = state_cotangent(e, seq, g_out[2] if len(g_out) > 2 else None, dr.index)
    carries = [dr.dyh or zeros(e, seq), dyc or zeros(e, seq)]

    def body(dh: str, rest: list[str], steps: list[str]):
        a_t, k_c_t, k_f_t = steps
        dc = e.op("Add", [rest[0], e.op("Mul", [dh, k_c_t])])
        grads = e.op("Mul", [e.op("Concat", [dc, dh, dc, dc], axis=-1), a_t])
        return [e.op("MatMul", [grads, dr.r]), e.op("Mul", [dc, k_f_t])], [grads]

    (dh0, dc0), (grads,) = backward_scan(e, seq, dr, carries, [a, k_c, k_f], body, skipped(e, seq))
    return Backward(grads, dh0, dc0)


def _peepholes(e: Emitter, seq: Recurrence, dr: Direction) -> tuple[str, str, str] | None:
    name = seq.node.input[7] if len(seq.node.input) > 7 else ""
    if not name:
        return None
    p = e.op("Gather", [name, e.const(np.array(dr.index, np.int64))], axis=0)
    return part(e, p, 0, seq.hidden), part(e, p, 1, seq.hidden), part(e, p, 2, seq.hidden)


def _gated(e: Emitter, seq: Recurrence, act: Activation, x: str) -> tuple[Tensor, Tensor]:
    """``act`` of ``x`` (clipped when the node clips) and its slope, as arithmetic handles."""
    y, slope = gated(e, act, x, seq.clip, seq.like)
    return e.t(y, seq.like), e.t(slope, seq.like)


def _activated(e: Emitter, seq: Recurrence, act: Activation, x: str) -> str:
    """``act(x)``, ``x`` clipped first when the node clips."""
    return apply(e, act, clipped(e, x, seq.clip, seq.like)[0], seq.like)


@dataclass
class _Side:
    """The input and forget gates and the cell input g, with their slopes, for every step."""

    i: Tensor
    di: Tensor
    f: Tensor
    df: Tensor | None  # None with input_forget (f = 1 - i has no input of its own)
    g: Tensor
    dg: Tensor


def _input_side(e: Emitter, seq: Recurrence, dr: Direction, gates: _Gates, g, prev: str) -> _Side:
    """i, f (peepholes reading ``prev``, the cell each step starts from) and g with their slopes."""
    f_act, peep = seq.acts[dr.index][0], gates.peep

    def peeped(pre: str, k: int) -> str:
        return pre if peep is None else e.op("Add", [pre, e.op("Mul", [peep[k], prev])])

    i, di = _gated(e, seq, f_act, peeped(gates.i, 0))
    if gates.coupled:
        return _Side(i, di, 1.0 - i, None, *g)
    f, df = _gated(e, seq, f_act, peeped(gates.f, 2))
    return _Side(i, di, f, df, *g)


def _cell_states(e: Emitter, seq: Recurrence, dr: Direction, side: _Side, c0: str) -> str:
    """The cell state after every step, [T, B, H] (kept on skipped steps), by a forward Scan:
    ``c = f c_prev + i g``."""
    elements = [keep(e, seq, side.f.name, 1.0), keep(e, seq, (side.i * side.g).name, 0.0)]

    def body(states: list[str], steps: list[str]):
        c = e.op("Add", [e.op("Mul", [states[0], steps[0]]), steps[1]])  # carry first: .recurrent_scan
        return [c], [e.op("Identity", [c])]

    return scan(e, seq.like, [c0], elements, body, 1, reverse=dr.reverse)[1][0]


def _peephole_cell_states(e: Emitter, seq: Recurrence, dr: Direction, gates: _Gates, g: str, c0: str):
    """:func:`_cell_states` where i and f read the previous cell state through the peepholes."""
    f_act, like = seq.acts[dr.index][0], seq.like
    assert gates.peep is not None
    p_i, _, p_f = gates.peep
    elements = [gates.i, g] + ([] if gates.coupled else [gates.f])
    bools = (len(elements),) if seq.lengths is not None else ()
    elements += [valid(e, seq)] if seq.lengths is not None else []

    def body(states: list[str], steps: list[str]):
        c = states[0]
        i = e.t(_activated(e, seq, f_act, e.op("Add", [e.op("Mul", [c, p_i]), steps[0]])), like)
        if gates.coupled:
            forget = (1.0 - i).name
        else:
            forget = _activated(e, seq, f_act, e.op("Add", [e.op("Mul", [c, p_f]), steps[2]]))
        new = e.op("Add", [e.op("Mul", [c, forget]), (i * steps[1]).name])
        if bools:
            new = e.op("Where", [steps[-1], new, c])
        return [new], [e.op("Identity", [new])]

    return scan(e, seq.like, [c0], elements, body, 1, reverse=dr.reverse, bools=bools)[1][0]


def _coefficients(e: Emitter, seq, dr: Direction, gates: _Gates, side: _Side, cells: str, prev: str):
    """Per step: the gate coefficients A [T, B, 4H] (``[dc_t dh dc_t dc_t] A`` are the gates'
    cotangents), ``k_c`` (``dc_t = dc + dh k_c``) and ``k_f`` (``dc_prev = dc_t k_f``), zero (one)
    on skipped steps."""
    f_act, _, h_act = seq.acts[dr.index]
    peep = gates.peep
    o_in = gates.o if peep is None else e.op("Add", [gates.o, e.op("Mul", [peep[1], cells])])
    o, do = _gated(e, seq, f_act, o_in)
    hc, dhc = (e.t(t, seq.like) for t in apply_with_slope(e, h_act, cells, seq.like))
    a_o = hc * do
    k_c = o * dhc if peep is None else o * dhc + a_o * peep[1]
    if side.df is None:  # input_forget: dc/di = g - c_prev, and f has no gradient of its own
        a_i = (side.g - prev) * side.di
        a_f = e.op("ConstantOfShape", [e.op("Shape", [a_i.name])], value=e.zero_fill(seq.like))
    else:
        a_i, a_f = side.g * side.di, (side.df * prev).name
    k_f = side.f if peep is None else side.f + a_i * peep[0]
    if peep is not None and side.df is not None:
        k_f = k_f + e.t(a_f, seq.like) * peep[2]
    a = e.op("Concat", [a_i.name, a_o.name, a_f, (side.i * side.dg).name], axis=-1)
    return keep(e, seq, a, 0.0), keep(e, seq, k_c.name, 0.0), keep(e, seq, k_f.name, 1.0)
