"""Several server processes on one machine (``--workers N``), sharing the ports.

KServe's own multi-process server spawns its workers with the model pickled to them, which an
onnxruntime session cannot be; here the process forks ``N - 1`` workers before anything is loaded
(a runtime's thread pools do not survive a fork), and each process then loads the model and runs a
whole server of its own, its REST socket bound with ``SO_REUSEPORT`` so that the kernel spreads the
connections over the processes (gRPC servers bind their port so by default). The first process is
the parent: when its server stops (SIGTERM, SIGINT), it passes SIGTERM on to the workers, waits for
each to answer what it holds in flight, and exits. A worker that dies is not replaced.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(count: int, serve_one: Callable[[], None]) -> None:
    """``serve_one()`` in ``count`` processes (module docstring); returns in the parent once every
    worker has exited."""
    children = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:  # a worker: serve, then leave without running the parent's cleanup
            code = 0
            try:
                serve_one()
            except BaseException:  # noqa: BLE001 - a worker's failure is its exit status
                code = 1
            os._exit(code)
        children.append(pid)
    try:
        serve_one()
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
