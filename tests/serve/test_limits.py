"""The body limits on their own, driven as an ASGI server drives them: a body is charged as its bytes
arrive, against its own limit (400) and the bytes in flight (503, Retry-After), and timed against its
pace (408); every charge is returned when its request ends, however it ends."""

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


def test_an_announced_length_is_checked_at_once_but_charged_as_its_bytes_arrive():
    async def scenario():
        limit = BodyLimit(_echo, max_bytes=1000, max_pending_bytes=1000)
        big, small, late = Client(limit, length=800), Client(limit, length=300), Client(limit, length=300)
        tasks = [big.start(), small.start()]  # nothing sent yet: nothing held, both admitted
        await asyncio.sleep(0.01)
        held = limit.pending
        await big.chunks.put((b"b" * 750, True))
        await asyncio.sleep(0.01)
        await late.start()  # 750 held + 300 announced > 1000: refused at once, unread
        await small.chunks.put((b"s" * 300, False))  # 750 + 300 arriving > 1000: refused as they arrive
        await tasks[1]
        await big.chunks.put((b"b" * 50, False))
        await tasks[0]
        return held, big.answer(), small.answer(), late.answer(), limit.pending

    held, big, small, late, end = asyncio.run(scenario())
    assert held == 0 and end == 0
    assert big[0] == 200 and big[2] == b"800"
    assert small[0] == 503 and "busy: 750 bytes of requests in flight" in json.loads(small[2])["error"]
    assert late[0] == 503 and late[1][b"retry-after"] == b"1"


def test_a_body_behind_its_pace_gets_408_and_its_charge_back():
    async def scenario():
        limit = BodyLimit(_echo, max_bytes=10**6, max_pending_bytes=10**6, timeout_s=0.2, min_rate=1000)
        slow, steady = Client(limit, length=1000), Client(limit, length=1000)
        tasks = [slow.start(), steady.start()]
        await slow.chunks.put((b"x" * 10, True))  # due at 0.2 s + 10 / 1000 s: then nothing more
        for _ in range(5):  # 200 bytes every 0.1 s: twice the pace
            await steady.chunks.put((b"y" * 200, True))
            await asyncio.sleep(0.1)
        held = limit.pending
        await steady.chunks.put((b"", False))
        await asyncio.gather(*tasks)
        return held, slow.answer(), steady.answer(), limit.pending

    held, slow, steady, end = asyncio.run(scenario())
    assert held == 1000 and end == 0  # the slow body's 10 bytes returned when it was cut
    assert slow[0] == 408 and slow[1][b"connection"] == b"close"
    assert json.loads(slow[2])["error"].startswith("the body came too slowly: 10 bytes in 0.2 s")
    assert steady == (200, {}, b"1000")
