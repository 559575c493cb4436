"""A client that leaves cancels its work: an ASGI middleware that watches each request's connection.

For every HTTP request it makes a :class:`~onnx_xai.runtime.work.Work` (current in the request's
context, :data:`REQUEST_WORK`, where the model gives it its deadline and limit); once the body has
been read, it keeps listening to the connection, and the client's leaving (``http.disconnect``)
cancels the work: a request still waiting is dropped when its turn comes, one running stops at its
next run of the model. The listener ends with the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar

from ..runtime.work import Work

LEFT = "the client closed the connection"
REQUEST_WORK: ContextVar[Work | None] = ContextVar("onnx_xai_request_work", default=None)


class Disconnects:
    """ASGI middleware (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        work = Work()
        token = REQUEST_WORK.set(work)
        listener: asyncio.Task | None = None

        async def received():
            nonlocal listener
            message = await receive()
            if message["type"] == "http.disconnect":
                work.cancel(LEFT)
            elif not message.get("more_body") and listener is None:
                listener = asyncio.ensure_future(_listen(receive, work))
            return message

        try:
            return await self.app(scope, received, send)
        finally:
            REQUEST_WORK.reset(token)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener


async def _listen(receive, work: Work) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            work.cancel(LEFT)
            return
