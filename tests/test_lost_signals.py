"""A signal whose exception Python drops is raised again, in the main thread.

Python cannot propagate an exception out of a weakref callback or a ``__del__``: it hands it to
``sys.unraisablehook`` and goes on. When SIGINT or SIGTERM arrives while such code runs (a shared
weight's pool letting an array go as a session is collected), :class:`Interrupted` is lost that way.
Here the signal is raised from inside a weakref callback; the drop itself is observed (the
exception passed to the block's hook, not printed), then the next run's checkpoint (or the block's
end) must raise it.
"""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

from onnx_xai.runtime.work import checkpoint
from onnx_xai.support.signals import Interrupted, interruptible


class _Collected:
    pass


def _signal_during_a_callback(signum: int) -> None:
    """Raise ``signum`` from a weakref callback that goes on running after it (the handler runs there)."""

    def callback(_ref) -> None:
        signal.raise_signal(signum)
        sum(range(1000))  # bytecodes after the signal: its handler runs inside the callback

    thing = _Collected()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_dropped_interrupt_is_raised_at_the_next_checkpoint(monkeypatch, signum):
    printed: list = []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    ran_on = []
    with pytest.raises(Interrupted) as caught:
        with interruptible():
            hook = sys.unraisablehook
            dropped: list = []
            sys.unraisablehook = lambda u: (dropped.append(u.exc_value), hook(u))
            _signal_during_a_callback(signum)
            assert [type(d) for d in dropped] == [Interrupted]  # Python did drop it
            assert printed == []  # and it is not printed as ignored
            ran_on.append("before")
            checkpoint()
            ran_on.append("after")  # never reached
    assert caught.value.signum == signum
    assert ran_on == ["before"]


def test_a_dropped_interrupt_with_no_checkpoint_after_it_is_raised_when_the_block_ends(monkeypatch):
    printed: list = []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    with pytest.raises(Interrupted) as caught:
        with interruptible():
            _signal_during_a_callback(signal.SIGINT)
    assert printed == []
    assert sys.unraisablehook == printed.append  # the caller's hook is back
    assert caught.value.signum == signal.SIGINT


def test_an_interrupt_that_propagated_is_not_raised_again_by_a_later_block():
    with pytest.raises(Interrupted):
        with interruptible():
            signal.raise_signal(signal.SIGINT)
            sum(range(1000))
    with interruptible():  # a later call in the same process (the CLI's main, run twice)
        checkpoint()
    checkpoint()


def test_other_exceptions_python_drops_still_reach_the_callers_hook(monkeypatch):
    printed: list = []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)

    def callback(_ref) -> None:
        raise ValueError("from a callback")

    with interruptible():
        thing = _Collected()
        ref = weakref.ref(thing, callback)
        del thing
        checkpoint()
    assert ref() is None
    assert [type(p.exc_value) for p in printed] == [ValueError]
