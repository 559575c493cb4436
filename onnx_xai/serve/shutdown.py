"""SIGTERM (or SIGINT) always ends the server, within its grace period.

Uvicorn's graceful shutdown stops accepting connections and waits for the requests in flight; a
request that runs the model for minutes would hold it (and a thread that never ends would keep the
process after it). So the first signal also stops the long requests at their next run of the model
(503, :meth:`~.model.ExplainedModel.stop`) while short ones are answered, and starts a watchdog: if
the process is still there ``grace_s`` seconds later, it exits at once. A second signal exits at
once too. Either way the exit status is 0: the server stopped because it was asked to.

The handler is put in front of uvicorn's (which the REST server installs as it starts serving), and
hands the signal on to it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown:
    """See the module docstring; ``stop_long()`` is called once, on the event loop, at the first signal."""

    def __init__(self, stop_long: Callable[[], None], grace_s: float):
        self.stop_long, self.grace_s = stop_long, grace_s
        self.asked = False
        self._previous: dict[int, object] = {}
        self._loop = None

    def install(self, loop) -> None:
        """In front of the handlers installed now (uvicorn's); call from the main thread."""
        self._loop = loop
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, sig: int, frame) -> None:
        if self.asked:
            _exit_now(f"a second {signal.Signals(sig).name}: stopped at once")
        self.asked = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop_long)  # not here: a signal may land inside a lock
        threading.Thread(target=self._watchdog, name="onnx-xai-grace", daemon=True).start()
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)

    def _watchdog(self) -> None:
        time.sleep(self.grace_s)
        _exit_now(f"the grace period ({self.grace_s:g} s) is over: stopped at once")


def _exit_now(why: str) -> None:
    sys.stderr.write(f"onnx-xai serve: {why}\n")
    sys.stderr.flush()
    os._exit(0)
