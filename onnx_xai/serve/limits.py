"""Request bodies bounded, each and all together: memory stays bounded under a flood.

An ASGI middleware in front of KServe's REST application. A ``Content-Length`` above ``max_bytes``
gets status 400 and one line at once; a body sent without a length (chunked) is counted as it
arrives and refused the same way when it passes the limit. The bodies of the requests in flight
(admitted, not yet answered) share ``max_pending_bytes``, charged by their announced length as they
arrive (or, without one, by what they have sent): a request that would pass it gets status 503, one
line and ``Retry-After: 1``, unread, while the server goes on with what it holds (one request is
always admitted, however large, up to ``max_bytes``). A photo decodes to several times its file's
size and is held until its answer is drawn, so this bounds the memory the queue holds. Requests
without a body (health, metadata, metrics) go through untouched.
"""

from __future__ import annotations

import json


class BodyLimit:
    """ASGI middleware (see the module docstring)."""

    def __init__(self, app, max_bytes: int, max_pending_bytes: int):
        self.app, self.max_bytes, self.max_pending_bytes = app, max_bytes, max_pending_bytes
        self.pending = 0  # bytes charged to the requests in flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        announced = int(length) if length is not None and length.isdigit() else 0
        if announced > self.max_bytes:
            return await _refuse(send, 400, f"the body is {announced} bytes; at most {_mb(self.max_bytes)}")
        if self.pending and self.pending + announced > self.max_pending_bytes:
            return await _refuse(send, 503, self._busy())
        charged = announced
        self.pending += charged
        seen = 0

        async def counted():
            nonlocal seen, charged
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _Refused(400, f"the body is {seen} bytes or more; at most {_mb(self.max_bytes)}")
                if seen > charged:  # sent without a length: charged as it arrives
                    if self.pending - charged + seen > self.max_pending_bytes and self.pending > charged:
                        raise _Refused(503, self._busy())
                    self.pending += seen - charged
                    charged = seen
            return message

        try:
            return await self.app(scope, counted, send)
        except _Refused as refused:
            return await _refuse(send, refused.status, refused.message)
        finally:
            self.pending -= charged

    def _busy(self) -> str:
        return (
            f"the server is busy: {self.pending} bytes of requests in flight, at most "
            f"{_mb(self.max_pending_bytes)} (--max-pending-mb); retry later"
        )


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _mb(size: int) -> str:
    return f"{size / 2**20:g} MB"


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
