"""The body limits on their own, driven as an ASGI server drives them: a body sent without a length
is counted as it arrives, against its own limit (400) and the bytes in flight (503, Retry-After);
every charge is returned when its request ends, however it ends."""

from __future__ import annotations

import asyncio
import json

from onnx_xai.serve.limits import BodyLimit


async def _echo(scope, receive, send):
    """An application that reads the whole body and answers its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


class Client:
    """One request, its body sent in chunks when the test says, no length announced."""

    def __init__(self, limit: BodyLimit, length: int | None = None):
        self.limit, self.chunks = limit, asyncio.Queue()
        headers = [] if length is None else [(b"content-length", str(length).encode())]
        self.scope = {"type": "http", "method": "POST", "headers": headers}
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        body, more = await self.chunks.get()
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def start(self) -> asyncio.Task:
        return asyncio.ensure_future(self.limit(self.scope, self.receive, self.send))

    def answer(self) -> tuple[int, dict, bytes]:
        start, body = self.sent
        return start["status"], dict(start["headers"]), body["body"]


def test_bodies_without_a_length_are_charged_as_they_arrive_and_returned_when_they_end():
    async def scenario():
        limit = BodyLimit(_echo, max_bytes=1000, max_pending_bytes=1500)
        first, second, third = Client(limit), Client(limit), Client(limit)
        tasks = [first.start()]
        await first.chunks.put((b"x" * 900, True))
        await asyncio.sleep(0.01)
        held = limit.pending
        tasks.append(second.start())
        await second.chunks.put((b"y" * 500, True))
        await second.chunks.put((b"y" * 200, True))  # 900 + 700 > 1500: refused
        await tasks[1]
        await first.chunks.put((b"x" * 200, False))  # 1100 > 1000: its own limit
        await tasks[0]
        after = limit.pending
        tasks.append(third.start())
        await third.chunks.put((b"z" * 1000, False))
        await tasks[2]
        return held, after, first.answer(), second.answer(), third.answer(), limit.pending

    held, after, first, second, third, end = asyncio.run(scenario())
    assert held == 900 and after == 0 and end == 0
    assert (
        first[0] == 400
        and json.loads(first[2])["error"] == "the body is 1100 bytes or more; at most 0.000953674 MB"
    )
    assert second[0] == 503 and second[1][b"retry-after"] == b"1"
    assert json.loads(second[2])["error"].startswith("the server is busy: 1400 bytes of requests in flight")
    assert third == (200, {}, b"1000")


def test_one_request_is_always_admitted_and_an_announced_length_is_charged_at_once():
    async def scenario():
        limit = BodyLimit(_echo, max_bytes=1000, max_pending_bytes=100)
        big, small = Client(limit, length=800), Client(limit, length=50)
        tasks = [big.start()]
        await asyncio.sleep(0.01)
        held = limit.pending
        await small.start()  # refused at once, unread
        await big.chunks.put((b"b" * 800, False))
        await tasks[0]
        return held, big.answer(), small.answer(), limit.pending

    held, big, small, end = asyncio.run(scenario())
    assert held == 800 and end == 0
    assert big[0] == 200 and big[2] == b"800"
    assert small[0] == 503 and "busy: 800 bytes of requests in flight" in json.loads(small[2])["error"]
