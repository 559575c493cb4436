"""SIGINT and SIGTERM as exceptions, and held while a group of renames that belong together completes.

:func:`interruptible` turns SIGTERM (and SIGINT) into an :class:`Interrupted` exception in the main
thread, so ``finally`` blocks run and temporary files are removed (SIGTERM's default action kills the
process mid-write); :func:`critical` holds both signals while a group of renames that belong together
(one photo's outputs) completes, and delivers the first that came when it ends. An
:class:`Interrupted` raised where Python cannot propagate it (inside a ``__del__`` or a weakref
callback, e.g. a shared weight's pool letting an array go) is handed to ``sys.unraisablehook``,
which would print it as "ignored": the block's hook notes it instead, :func:`raise_if_lost` raises it
again at the next run's checkpoint, and the block's end raises it if no checkpoint came. Standard
library only.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Hold:
    """Signals held by :func:`critical` (nesting depth, and the signals that arrived meanwhile)."""

    depth = 0
    pending: list[int] = []
    unseen: int | None = None  # the signal of an Interrupted that Python dropped, not raised again yet


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; like KeyboardInterrupt, ``except Exception`` does not catch it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (held inside :func:`critical`) in this block."""
    if not _in_main_thread():
        yield
        return

    def handler(signum, frame):
        if _Hold.depth:
            _Hold.pending.append(signum)
        else:
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    hook = sys.unraisablehook

    def dropped(unraisable) -> None:
        if isinstance(unraisable.exc_value, Interrupted):
            _Hold.unseen = unraisable.exc_value.signum  # raised again, not printed
        else:
            hook(unraisable)

    sys.unraisablehook = dropped
    try:
        yield
        raise_if_lost()
    finally:
        sys.unraisablehook = hook
        _Hold.unseen = None
        for s, old in previous.items():
            signal.signal(s, old)


def raise_if_lost() -> None:
    """Raise again, in the main thread, an :class:`Interrupted` that Python dropped (raised while it
    ran a ``__del__`` or a weakref callback, where an exception is printed and ignored)."""
    if _Hold.unseen is not None and not _Hold.depth and _in_main_thread():
        raise Interrupted(_Hold.unseen)


@contextmanager
def critical() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the block runs; deliver the first one that came, after it."""
    _Hold.depth += 1
    try:
        yield
    finally:
        _Hold.depth -= 1
        if not _Hold.depth and _Hold.pending:
            signum = _Hold.pending[0]
            _Hold.pending = []
            raise Interrupted(signum)
