"""A request body over the limit is refused before it is read: memory stays bounded under a flood.

An ASGI middleware in front of KServe's REST application: a ``Content-Length`` above the limit gets
status 400 and one line at once; a body sent without a length (chunked) is counted as it arrives and
refused the same way when it passes the limit. Everything else goes through untouched.
"""

from __future__ import annotations

import json


class BodyLimit:
    """ASGI middleware (see the module docstring); ``max_bytes``: the largest body accepted."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send, int(length))
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            return await self.app(scope, counted, send)
        except _TooLarge:
            return await self._refuse(send, seen)

    async def _refuse(self, send, size: int) -> None:
        limit = self.max_bytes / 2**20
        body = json.dumps({"error": f"the body is {size} bytes or more; at most {limit:g} MB"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
