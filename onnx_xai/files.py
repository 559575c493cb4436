"""Writing files safely: atomically, with the permissions the umask allows, and through signals.

- :func:`write_atomic` writes into a temporary file in the destination folder, gives it the mode a
  plain ``open()`` would have given (``0o666`` less the umask; ``mkstemp`` makes 0600), and renames it
  into place: a reader sees the old file or the new one, never half of one.
- :func:`interruptible` turns SIGTERM (and SIGINT) into an :class:`Interrupted` exception in the main
  thread, so ``finally`` blocks run and temporary files are removed (SIGTERM's default action kills
  the process mid-write); :func:`critical` holds both signals while a group of renames that belong
  together (one photo's outputs) completes, and delivers them when it ends.

Only the standard library is used, so the graph layer can share it.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Hold:
    """Signals held by :func:`critical` (nesting depth, and the signals that arrived meanwhile)."""
    depth = 0
    pending: list[int] = []


_lock = threading.Lock()
_mode: list[int] = []


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; like KeyboardInterrupt, ``except Exception`` does not catch it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file."""
    with _lock:
        if not _mode:
            mask = os.umask(0o022)
            os.umask(mask)
            _mode.append(0o666 & ~mask)
        return _mode[0]


def write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the result to ``path``; nothing half-written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        with critical():
            Path(tmp).unlink(missing_ok=True)


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
    try:
        yield
    finally:
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
