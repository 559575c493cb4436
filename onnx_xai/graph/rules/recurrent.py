"""The VJP rules of the recurrent ops: RNN here, LSTM in :mod:`.recurrent_lstm` and GRU in
:mod:`.recurrent_gru` (imported below, so that importing this module registers all three), their
shared machinery in :mod:`.recurrent_common` and their activations in :mod:`.recurrent_activations`.

RNN's step is ``h = f(x W^T + h_prev R^T + Wb + Rb)`` (f's input clipped when ``clip`` is set), so
with ``dh`` the step's hidden cotangent its gate cotangent is ``dp = dh f'(p)`` and
``dh_prev = dp R``: the slopes ``f'(p)`` of all steps come from one MatMul over the forward's Y, a
reverse-time Scan carries ``dh`` (one MatMul and one product a step), and ``dX = [dp] W``.
"""

from __future__ import annotations

from ..emitter import Emitter
from ..registry import vjp
from . import recurrent_gru, recurrent_lstm  # noqa: F401 - registers LSTM and GRU
from .recurrent_activations import gated
from .recurrent_common import (
    Backward,
    Direction,
    Recurrence,
    backward_scan,
    gate_inputs,
    keep,
    recurrent_check,
    recurrent_vjp,
    skipped,
    zeros,
)


@vjp("RNN", check=recurrent_check)
def rnn(e: Emitter, node, g_out):
    """RNN: dX = (dh f'(pre-activation)) W; d initial_h carried back by a reverse-time Scan."""
    return recurrent_vjp(e, node, g_out, _cell)


def _cell(e: Emitter, seq: Recurrence, dr: Direction, g_out: list) -> Backward:
    (act,) = seq.acts[dr.index]
    _, slope = gated(e, act, gate_inputs(e, seq, dr, 1), seq.clip, seq.like)

    def body(dh: str, rest: list[str], steps: list[str]):
        grads = e.op("Mul", [dh, steps[0]])
        return [e.op("MatMul", [grads, dr.r])], [grads]

    carry = dr.dyh or zeros(e, seq)
    (dh0,), (grads,) = backward_scan(e, seq, dr, [carry], [keep(e, seq, slope, 0.0)], body, skipped(e, seq))
    return Backward(grads, dh0)
