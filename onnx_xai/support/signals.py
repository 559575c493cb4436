"""SIGINT and SIGTERM as exceptions, and held while a group of renames that belong together completes.

:func:`interruptible` turns SIGTERM (and SIGINT) into an :class:`Interrupted` exception in the main
thread, so ``finally`` blocks run and temporary files are removed (SIGTERM's default action kills the
process mid-write); :func:`critical` holds both signals while a group of renames that belong together
(one photo's outputs) completes, and delivers the first that came when it ends. A signal whose exception
Python drops (raised while a ``__del__`` or a weakref callback runs: the shared weights' pool lets a
weight go when a dropped session is collected) is sent again a moment later, outside it. Standard
library only.
"""

from __future__ import annotations

import os
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


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; like KeyboardInterrupt, ``except Exception`` does not catch it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _deliver_later(signum: int) -> None:
    """The signal sent again in a moment, so that its handler runs outside the finalizer that dropped
    its :class:`Interrupted` (Python hands such exceptions to ``sys.unraisablehook``)."""
    timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


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

    def unraisable(hook_args) -> None:  # an Interrupted raised where Python drops exceptions
        if isinstance(hook_args.exc_value, Interrupted):
            _deliver_later(hook_args.exc_value.signum)
        else:
            dropped(hook_args)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    dropped, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        sys.unraisablehook = dropped
        for s, old in previous.items():
            signal.signal(s, old)


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
