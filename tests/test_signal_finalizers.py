"""A signal that arrives while a finalizer runs is not lost (:mod:`onnx_xai.support.signals`).

Python prints and drops an exception raised in a ``__del__`` or a weakref callback. The shared
weights' pool is a ``WeakValueDictionary``: when a dropped session is collected, its callbacks run,
and a SIGINT handled there was lost (the run went on to the end, a traceback on stderr; seen once in
CI). The exception Python drops goes to ``sys.unraisablehook``, which now sends the signal again a
moment later, outside the finalizer.
"""

from __future__ import annotations

import signal
import time
import weakref

import pytest

from onnx_xai.support.signals import Interrupted, interruptible


class Weight:
    pass


def _wait_for_interruption() -> float:
    start = time.monotonic()
    while time.monotonic() - start < 2:
        time.sleep(0.01)
    return time.monotonic() - start


class SignalsWhenCollected:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)


def test_a_signal_inside_del_interrupts_the_code_after_it(capsys):
    with pytest.raises(Interrupted, match="SIGINT"), interruptible():
        SignalsWhenCollected()  # collected at once: its __del__ runs and signals
        _wait_for_interruption()
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_signal_inside_a_weakref_callback_interrupts_the_code_after_it(capsys):
    pool: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    finalizers = []

    def signal_then_forget(_):
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted, match="SIGINT"), interruptible():
        weight = Weight()
        pool["w"] = weight
        finalizers.append(weakref.ref(weight, signal_then_forget))
        del weight  # the pool's remove and the callback run; the signal lands in one of them
        _wait_for_interruption()
    assert "Exception ignored" not in capsys.readouterr().err
    assert "w" not in pool
