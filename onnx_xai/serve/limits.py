"""Transport limits: what a request may hold of the server, and for how long, before it is read.

:class:`BodyLimit`, an ASGI middleware in front of KServe's REST application, bounds bodies. A
``Content-Length`` above ``max_bytes`` gets status 400 and one line at once; a body sent without one
(chunked) is counted as it arrives and refused the same way when it passes the limit. The bodies of
the requests in flight (admitted, not yet answered) share ``max_pending_bytes``, charged as their
bytes arrive (an announced length is a promise, not memory: charged on it, two bodies that announced
32 MB and sent a byte every half second kept every other request out): a request whose length would
take them past it gets status 503, one line and ``Retry-After: 1``, unread, and one whose bytes do
so gets it as they arrive, while the server goes on with what it holds (the bytes of one request are
always admitted, up to ``max_bytes``). A body must also keep pace: it gets ``timeout_s`` (10 s by
default: a slow client's first round trips and a small photo's whole upload on a poor mobile link)
plus one second per :data:`MIN_RATE` bytes it has sent (64 KB/s, 512 kbit/s, a poor mobile
uplink: the largest default body, 32 MB, may take 8.5 minutes); a body behind that pace is answered
408, one line, its connection closed and its charge returned, so a trickle of a few bytes a second
is cut ``timeout_s`` after it began. Requests without a body (health, metadata, metrics) go through
untouched.

Photos are bounded after their bodies: the pixels they decode to are charged to a
:class:`PixelBudget` before decoding (:mod:`.requests`), and a photo it cannot take raises
:class:`Busy`, which :class:`BodyLimit` answers 503 like a full body budget. Before any of this, the
request's head (its request line and header fields) is bounded by :func:`head_limited`, in
uvicorn's HTTP protocol, which otherwise reads a header that never ends for as long as it comes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
import weakref

MIN_RATE = 64 * 1024  # bytes a second a body must keep up, on average, after its first timeout_s


class Busy(Exception):
    """The server holds as much as it may: the request is answered 503 with ``Retry-After`` by
    :class:`BodyLimit`. Not an :class:`~onnx_xai.support.errors.XaiError`: it is no fault of the request
    (the model turns those into 400s), and it must reach the middleware as it is."""


class BodyLimit:
    """ASGI middleware (see the module docstring)."""

    def __init__(
        self, app, max_bytes: int, max_pending_bytes: int, timeout_s: float = 10.0, min_rate: int = MIN_RATE
    ):
        self.app, self.max_bytes, self.max_pending_bytes = app, max_bytes, max_pending_bytes
        self.timeout_s, self.min_rate = timeout_s, min_rate
        self.pending = 0  # bytes received of the requests in flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        announced = int(length) if length is not None and length.isdigit() else 0
        if announced > self.max_bytes:
            return await _refuse(send, 400, f"the body is {announced} bytes; at most {_mb(self.max_bytes)}")
        if self.pending and self.pending + announced > self.max_pending_bytes:
            return await _refuse(send, 503, self.busy())
        body = _Body(self)
        try:
            return await self.app(scope, body.receiver(receive), send)
        except _Refused as refused:
            return await _refuse(send, refused.status, refused.message)
        except Busy as busy:
            return await _refuse(send, 503, str(busy))
        finally:
            self.pending -= body.charged

    def busy(self) -> str:
        return (
            f"the server is busy: {self.pending} bytes of requests in flight, at most "
            f"{_mb(self.max_pending_bytes)} (--max-pending-mb); retry later"
        )


class _Body:
    """One request's body as it arrives: counted against its limit and the bytes in flight, and
    timed against its pace (:class:`BodyLimit`)."""

    def __init__(self, limit: BodyLimit):
        self.limit, self.start = limit, asyncio.get_running_loop().time()
        self.charged = 0  # its bytes received, charged to the budget
        self.complete = False

    def receiver(self, receive):
        async def counted():
            if self.complete:  # after the body: a disconnect, whenever it comes
                return await receive()
            try:
                message = await _by(self.due(), receive())
            except asyncio.TimeoutError:
                raise _Refused(408, self.too_slow()) from None
            if message["type"] == "http.request":
                self.arrived(len(message.get("body", b"")), message.get("more_body", False))
            return message

        return counted

    def due(self) -> float:
        """When the body's next bytes are due: its grace plus one second per ``min_rate`` bytes sent."""
        return self.start + self.limit.timeout_s + self.charged / self.limit.min_rate

    def arrived(self, size: int, more: bool) -> None:
        limit, self.complete = self.limit, not more
        if self.charged + size > limit.max_bytes:
            raise _Refused(
                400, f"the body is {self.charged + size} bytes or more; at most {_mb(limit.max_bytes)}"
            )
        if limit.pending > self.charged and limit.pending + size > limit.max_pending_bytes:
            raise _Refused(503, limit.busy())  # others hold bytes: this one waits its turn
        limit.pending += size
        self.charged += size

    def too_slow(self) -> str:
        waited = asyncio.get_running_loop().time() - self.start
        return (
            f"the body came too slowly: {self.charged} bytes in {waited:.1f} s; a body gets "
            f"{self.limit.timeout_s:g} s (--body-timeout-s) and 1 s more per {self.limit.min_rate // 1024} KB"
        )


async def _by(deadline: float, awaitable):
    """``await awaitable`` by the event loop's ``deadline``, else :class:`asyncio.TimeoutError`
    (Python 3.11's ``timeout_at`` starts no task: the middleware took 6 us a request with it, 14 with
    ``wait_for``, 1.5 without a deadline)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout_at(deadline):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(0.0, deadline - asyncio.get_running_loop().time()))


class PixelBudget:
    """The decoded pixels of the photos in flight, together at most ``limit`` (those of one request
    admitted alone, up to the limit; one photo whatever its size: the server never refuses what
    it would hold nothing beside). A photo is
    charged before it is decoded (:meth:`charge`, :class:`Busy` beyond the limit) and keeps its
    charge for as long as the image lives (:meth:`hold`): every reference to it gone, answered or
    failed, it is returned. Thread-safe: photos are decoded in the server's reading threads."""

    def __init__(self, limit: int):
        self.limit, self.pending = limit, 0
        self._lock = threading.RLock()  # a photo freed, its charge returned, whatever the thread holds
        self._collected = 0.0  # when garbage was last collected for a refusal

    def charge(self, pixels: int, own: int = 0) -> None:
        """Charge ``pixels``, or raise :class:`Busy` when the photos of other requests (beyond the
        ``own`` pixels of this one's) leave no room for them, after collecting the young garbage
        once a second at most (an image that only a reference cycle of a request just ended holds is
        no longer in flight; the young generations take well under a millisecond, where a full
        collection stops every thread of a server for 40 ms)."""
        if self._take(pixels, own):
            return
        if time.monotonic() - self._collected > 1.0:
            self._collected = time.monotonic()
            gc.collect(1)
            if self._take(pixels, own):
                return
        raise Busy(
            f"the server is busy: {self.pending} pixels of photos in flight, at most {self.limit} "
            "(--max-pending-pixels); retry later"
        )

    def _take(self, pixels: int, own: int) -> bool:
        with self._lock:
            if self.pending > own and self.pending + pixels > self.limit:
                return False
            self.pending += pixels
            return True

    def hold(self, charged: int, image) -> None:
        """The ``charged`` pixels become ``image``'s (its own size when smaller, once decoding's
        transient buffers are gone), returned when it is freed."""
        kept = min(charged, image.width * image.height)
        self.release(charged - kept)
        weakref.finalize(image, self.release, kept).atexit = False

    def release(self, pixels: int) -> None:
        with self._lock:
            self.pending -= pixels


def head_limited(max_bytes: int) -> type | str:
    """uvicorn's httptools HTTP protocol with each request's head (request line and header fields)
    bounded to ``max_bytes``: beyond, status 431 and one line, the connection closed, without
    reading the rest (httptools gathers a header field in memory for as long as it comes). A read
    that ends one head may carry the next request's head unbounded for that read (pipelining): the
    count restarts at the next read. The count costs 0.9 us a request (7.7 us to parse one, against
    6.8); a request's p50 through the server was the same (9.8 ms, ``:predict`` at one client; h11,
    which bounds its own, took 10.4). Without httptools (uvicorn installed without its extras):
    ``"h11"``, bounded by ``h11_max_incomplete_event_size`` set beside it, which answers 400."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class HeadLimited(HttpToolsProtocol):
        _head: int | None = 0  # bytes of the head being read; None inside a body
        _ended_head = False  # a head ended during this read

        def data_received(self, data: bytes) -> None:
            head, self._ended_head = self._head, False
            super().data_received(data)
            if head is None or self._ended_head or self.transport.is_closing():
                return
            self._head = head + len(data)
            if self._head > max_bytes:
                self._refuse_head()

        def on_headers_complete(self) -> None:
            self._head, self._ended_head = None, True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._head = 0
            super().on_message_complete()

        def _refuse_head(self) -> None:
            self._head = None
            self.logger.warning("Request header section over %d bytes: refused.", max_bytes)
            if self.cycle is None or self.cycle.response_complete:  # else a response is on its way
                message = f"the request's header section is over {max_bytes / 1024:g} KB (--max-header-kb)"
                self.transport.write(_head_refusal(message))
            self.transport.close()

    return HeadLimited


def _head_refusal(message: str) -> bytes:
    """A whole HTTP/1.1 431 response that closes its connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _refuse(send, status: int, message: str) -> None:
    """``status`` with ``{"error": message}``: 503 with ``Retry-After: 1``; 408 closes the connection
    (the rest of a slow body is not waited for; any other refusal's unread body is drained, unheld,
    so that its client reads the answer rather than a reset)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    if status == 408:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _mb(size: int) -> str:
    return f"{size / 2**20:g} MB"


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
