"""Starting KServe's model server on one :class:`~onnx_xai.serve.model.ExplainedModel`.

KServe's ``ModelServer`` answers the V1 protocol (``/v1/models/NAME:predict`` and ``:explain``), the V2
Open Inference Protocol (``/v2/models/NAME/infer``, health, readiness, metadata) over REST, and V2
over gRPC. It binds every interface; here it binds ``host`` only (loopback unless told otherwise):
the REST server's uvicorn configuration and the gRPC server's listening address are set to it. A
body over ``max_body_mb`` is refused before it is read, and so is a request that would take the
bodies in flight over ``max_pending_mb`` (503), a body that comes too slowly (408), a request head
over ``max_header_kb`` (431, in uvicorn's HTTP protocol) and a photo over ``max_pixels`` or the
pixels in flight (:mod:`.limits`, :mod:`.requests`). The ports are checked free as the servers bind
them (``SO_REUSEADDR``: a restart right after a stop finds its ports in TIME_WAIT).
A client that leaves cancels its request (:mod:`.disconnects`). SIGTERM and SIGINT stop it after
the short requests in flight are answered, the long ones stopped with 503, always within the grace
period (:mod:`.shutdown`). ``workers > 1`` runs as many such servers, one per process, on the
same ports, under a supervisor that replaces a worker that dies (:mod:`.workers`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ..support.errors import XaiError
from .disconnects import Disconnects
from .limits import BodyLimit, head_limited
from .model import ExplainedModel, ServeConfig
from .requests import limit_photos
from .shutdown import Shutdown
from .workers import reuse_port_socket, run_workers


def serve(
    path: str,
    name: str,
    config: ServeConfig,
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int | None = 8081,
    workers: int = 1,
    log_latency: bool = False,
) -> None:
    """Load the model and serve it until stopped (see the module docstring); ``workers`` processes,
    each with the model, sharing the ports (:mod:`.workers`); ``log_latency``: KServe's trace lines
    (each request's stages and wall and CPU time), two per request."""
    for port in (http_port, grpc_port):
        _check_free(host, port)
    ports = Ports(host, http_port, grpc_port, log_latency)
    if workers > 1:
        run_workers(workers, lambda ready: _serve_one(path, name, config, ports, shared=True, ready=ready))
    else:
        _serve_one(path, name, config, ports, shared=False)


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class Ports:
    """Where a server process listens, and whether it logs each request's latency."""

    host: str
    http: int
    grpc: int | None
    log_latency: bool


def _serve_one(
    path: str,
    name: str,
    config: ServeConfig,
    ports: Ports,
    shared: bool,
    ready: Callable[[], None] = _nothing,
) -> None:
    """One server process: the model loaded (then ``ready()``), KServe's server on it (its REST socket
    shared with the other workers' when ``shared``)."""
    import kserve
    from kserve import model_server
    from kserve.protocol.grpc import server as grpc_server
    from kserve.protocol.rest import server as rest_server

    model = ExplainedModel(name, path, config)
    model.load()
    ready()
    max_bytes, max_pending_bytes = int(config.max_body_mb * 2**20), int(config.max_pending_mb * 2**20)
    model_server.app.add_middleware(Disconnects)  # inside the body limits
    model_server.app.add_middleware(
        BodyLimit, max_bytes=max_bytes, max_pending_bytes=max_pending_bytes, timeout_s=config.body_timeout_s
    )
    limit_photos(config.max_pixels, config.max_pending_pixels)
    model_server.RESTServer = _rest_on(
        rest_server.RESTServer, ports.host, ports.http if shared else None, ports.log_latency,
        max_head_bytes=int(config.max_header_kb * 1024), shutdown=Shutdown(model.stop, config.grace_s),
    )  # fmt: skip
    model_server.GRPCServer = _grpc_on(grpc_server.GRPCServer, ports.host, max_bytes, max_pending_bytes)
    server = kserve.ModelServer(
        http_port=ports.http,
        grpc_port=ports.grpc or 0,
        workers=1,
        enable_grpc=ports.grpc is not None,
        enable_docs_url=False,
        enable_latency_logging=ports.log_latency,
        grace_period=max(1, int(config.grace_s) - 1),  # uvicorn's wait; the watchdog's is grace_s
    )
    logging.getLogger("kserve").setLevel(logging.WARNING)  # after KServe configured its logging
    if not ports.log_latency:
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start([model])


def _check_free(host: str, port: int | None) -> None:
    """A port the server cannot bind is said in one line before anything starts."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gRPC bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise XaiError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _rest_on(
    base, host: str, shared_port: int | None, log_latency: bool, max_head_bytes: int, shutdown: Shutdown
):
    """KServe's REST server class, bound to ``host``; on a socket other processes share when
    ``shared_port`` is given; without KServe's timing middleware unless ``log_latency`` (all it does
    is log each request's wall and CPU time; Prometheus's histograms at ``/metrics`` stay); each
    request's head at most ``max_head_bytes`` (:func:`.limits.head_limited`); ``shutdown``'s signal
    handler put in front of uvicorn's once it serves."""

    class Bound(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if hasattr(self, "config"):
                self.config.host = host
                self.config.http = head_limited(max_head_bytes)
                self.config.h11_max_incomplete_event_size = max_head_bytes

        def _add_middlewares(self, app):
            if log_latency:
                super()._add_middlewares(app)

        async def start(self):
            loop = asyncio.get_running_loop()
            loop.call_soon(shutdown.install, loop)  # runs once uvicorn has installed its handlers
            if shared_port is None:
                return await super().start()
            self.create_application()
            await self._server.serve(sockets=[reuse_port_socket(host, shared_port)])

    return Bound


def _grpc_on(base, host: str, max_bytes: int, max_pending_bytes: int):
    """KServe's gRPC server class, listening on ``host`` instead of every interface, its messages
    bounded as REST bodies are: at most ``max_bytes`` each, and as many calls at once as fit in
    ``max_pending_bytes`` at that size (at least one); beyond, gRPC's RESOURCE_EXHAUSTED."""

    class Bound(base):
        async def start(self, max_workers):
            from kserve.protocol.grpc import server as grpc_server

            original = grpc_server.aio.server

            def server(*args, **kwargs):
                options = dict(kwargs.get("options") or [])
                options["grpc.max_receive_message_length"] = max_bytes
                kwargs["options"] = list(options.items())
                kwargs["maximum_concurrent_rpcs"] = max(1, max_pending_bytes // max_bytes)
                made = original(*args, **kwargs)
                add = made.add_insecure_port
                made.add_insecure_port = lambda address: add(address.replace("[::]", _grpc_host(host)))
                return made

            grpc_server.aio.server = server
            try:
                await super().start(max_workers)
            finally:
                grpc_server.aio.server = original

    return Bound


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
