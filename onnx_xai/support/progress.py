"""Stages of long work (shape inference, the rewrite, compiling sessions), said as they start.

The graph layer and the sessions call :func:`stage` when they start a step whose time grows with the
graph (``inferring the shapes of 200,000 nodes``); it goes to the ``onnx_xai.progress`` logger at INFO
level, so a library user sees nothing unless they configure logging. The command line listens with
:class:`StageReporter`: silent for the first seconds (a usual model is analysed in well under one),
then the current stage and each later one as a line on standard error, so a graph of 200,000 nodes
(30 s to inspect on 2 cores) never looks like a hang. The methods that score thousands of perturbed
copies per image say each batch of them (:func:`copies_done`), which the command line shows as a
count beside its per-image bar. Standard library only: the graph layer uses it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TextIO

LOGGER = logging.getLogger("onnx_xai.progress")


def stage(message: str) -> None:
    """Say that a step starts (module docstring)."""
    LOGGER.info(message)


class StageReporter(logging.Handler):
    """Writes the stages to ``stream`` once the work has taken ``after`` seconds (a context manager)."""

    def __init__(self, stream: TextIO, after: float = 3.0, prefix: str = "onnx-xai: "):
        super().__init__(logging.INFO)
        self.stream, self.after, self.prefix = stream, after, prefix
        self._latest: str | None = None
        self._loud = False
        self._started = time.monotonic()
        self._guard = threading.Lock()
        self._timer = threading.Timer(after, self._wake)
        self._timer.daemon = True

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self._latest = record.getMessage()
            if self._loud:
                self._say(self._latest)

    def _wake(self) -> None:
        with self._guard:
            self._loud = True
            if self._latest is not None:
                self._say(self._latest)

    def _say(self, message: str) -> None:
        self.stream.write(f"{self.prefix}{message} ({time.monotonic() - self._started:.0f} s)\n")
        self.stream.flush()

    def __enter__(self) -> StageReporter:
        LOGGER.addHandler(self)
        self._level = LOGGER.level
        LOGGER.setLevel(logging.INFO)
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        LOGGER.removeHandler(self)
        LOGGER.setLevel(self._level)


_COPY_LISTENERS: list = []  # callables taking a count (the command line's bar)


def copies_done(count: int) -> None:
    """Say that ``count`` more perturbed copies were scored (occlusion, RISE, LIME, KernelSHAP, the
    head's copies): methods that run thousands of copies per image report as they go."""
    for listener in list(_COPY_LISTENERS):
        listener(count)


class CopiesListener:
    """Calls ``listener(count)`` for every :func:`copies_done` while entered (a context manager)."""

    def __init__(self, listener):
        self.listener = listener

    def __enter__(self) -> CopiesListener:
        _COPY_LISTENERS.append(self.listener)
        return self

    def __exit__(self, *exc) -> None:
        _COPY_LISTENERS.remove(self.listener)
