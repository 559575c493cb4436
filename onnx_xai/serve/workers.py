"""Several server processes on one machine (``--workers N``), sharing the ports, kept alive.

KServe's own multi-process server spawns its workers with the model pickled to them, which an
onnxruntime session cannot be. Here the first process is a supervisor that loads nothing: it forks
``N`` workers (a runtime's thread pools do not survive a fork, so each worker loads the model after
it is forked), and each runs a whole server of its own, its REST socket bound with ``SO_REUSEPORT``
so that the kernel spreads the connections over the processes (gRPC servers bind their port so by
default). Each worker tells the supervisor, over a pipe, when its model is loaded, or why it could
not be. A worker that dies after it was ready (killed, out of memory) is replaced by a new one; one
that fails before it is ready stops them all, and its one-line reason is the supervisor's error.
SIGTERM or SIGINT to the supervisor passes SIGTERM on to every worker, waits for each to answer
what it holds in flight, and returns.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from ..support.errors import XaiError

RESTART_PAUSE_S = 1.0  # between a worker's death and its replacement: a crash loop stays slow


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind as well. Made with its
    protocol named: asyncio turns Nagle's algorithm off only on connections whose socket says TCP,
    and without that a response written in two parts waited 40 ms for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """``serve_one(ready)`` in ``count`` worker processes (module docstring); ``ready()`` is what a
    worker calls once its model is loaded."""

    def __init__(self, count: int, serve_one: Callable[[Callable[[], None]], None]):
        self.count, self.serve_one = count, serve_one
        self.workers: set[int] = set()
        self.ready: set[int] = set()
        self.stopping = False
        self.failure: str | None = None
        self._reports, self._report_to = os.pipe()
        os.set_blocking(self._reports, False)
        self._buffer = b""

    def run(self) -> None:
        """Until stopped: start the workers, replace those that die, stop on a signal or on a worker
        that fails to start (raised here as its error)."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.count):
                self._fork()
            while self.workers:
                pid, status = os.wait()
                self._ended(pid, status)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            os.close(self._reports)
            os.close(self._report_to)
        if self.failure is not None:
            raise XaiError(self.failure)

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # a worker: serve, then leave without running the supervisor's cleanup
            os._exit(self._work())
        self.workers.add(pid)

    def _work(self) -> int:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        _end_with_parent()
        os.close(self._reports)
        try:
            self.serve_one(lambda: self._report("ready"))
        except XaiError as exc:
            self._report("failed " + " ".join(str(exc).split()))
            return 1
        except BaseException as exc:  # noqa: BLE001 - a worker's failure is its report and exit status
            self._report(f"failed {type(exc).__name__}: {' '.join(str(exc).split())}")
            return 1
        return 0

    def _report(self, what: str) -> None:
        """One line to the supervisor (under the pipe's atomic size: lines never interleave)."""
        line = f"{os.getpid()} {what}"[:500] + "\n"
        os.write(self._report_to, line.encode("utf-8", "replace"))

    def _read_reports(self) -> None:
        try:
            while chunk := os.read(self._reports, 65536):
                self._buffer += chunk
        except BlockingIOError:
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            pid, _, what = line.decode("utf-8", "replace").partition(" ")
            if what == "ready":
                self.ready.add(int(pid))
            elif what.startswith("failed ") and int(pid) not in self.ready and self.failure is None:
                self.failure = what.removeprefix("failed ")

    def _ended(self, pid: int, status: int) -> None:
        self.workers.discard(pid)
        self._read_reports()
        if self.stopping:
            return
        if pid not in self.ready:  # it never served: its siblings will fail alike
            self.failure = self.failure or f"a server process exited before it was ready ({_said(status)})"
            self._stop()
            return
        self.ready.discard(pid)
        print(f"onnx-xai serve: worker {pid} {_said(status)}; starting another", file=sys.stderr, flush=True)
        time.sleep(RESTART_PAUSE_S)
        if not self.stopping:
            self._fork()

    def _stop(self, *_signal) -> None:
        self.stopping = True
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _end_with_parent() -> None:
    """SIGTERM to this worker when the supervisor dies, however it dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _said(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def run_workers(count: int, serve_one: Callable[[Callable[[], None]], None]) -> None:
    """``serve_one(ready)`` in ``count`` supervised worker processes (module docstring); returns once
    every worker has exited after a stop, raises :class:`~onnx_xai.support.errors.XaiError` when one could
    not start."""
    Supervisor(count, serve_one).run()
