"""The transport rows of the hostile-request table, against ``onnx-xai serve`` in a subprocess on
loopback: two bodies announcing 32 MB sent a byte every half second (before: every other request got
503 while they trickled), six 13000 x 13000 PNGs of 189 KB at once (before: RSS +3.6 GB), photos
beyond the pixels in flight, a header section over the limit and one of 16 MB that never ends
(before: read in full), and a restart on the same ports right after SIGTERM (before: "Address
already in use" for a minute). Each row: the status and its one-line body, a ``:predict`` answered
within 2 s while the hostile requests are in flight, the server's RSS sampled (``VmRSS``) and
bounded. Beside them, a large JPEG decoded reduced against the same photo decoded whole: the input,
the prediction, the Grad-CAM map and its box differ by what resampling changes, no more.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import onnx_xai
from onnx_xai.imaging.images import decode_for, decode_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_MODEL

from . import server as helpers
from .server import PHOTOS, Served, photo

pytest.importorskip("kserve")

FLAGS = ("--body-timeout-s", "2", "--max-pixels", "20000000", "--max-pending-pixels", "5000000")


@pytest.fixture(scope="module")
def served():
    server = Served(*FLAGS)
    yield server
    code, output = server.stop()
    assert code == 0 and "Traceback" not in output.split("InvalidInput")[-1], output


class Memory:
    """The server's resident memory (``VmRSS``), sampled every 10 ms while the block runs."""

    def __init__(self, server: Served):
        self.pid, self.peak, self.running = server.process.pid, 0, True

    def rss_mb(self) -> int:
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in lines if line.startswith("VmRSS")) // 1024

    def __enter__(self) -> Memory:
        self.start = self.peak = self.rss_mb()
        self.sampler = threading.Thread(target=self._sample)
        self.sampler.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.rss_mb())
            time.sleep(0.01)

    def __exit__(self, *_exc) -> None:
        self.running = False
        self.sampler.join()

    @property
    def grown_mb(self) -> int:
        return self.peak - self.start


def predicted_within_2_s(server: Served) -> bool:
    start = time.monotonic()
    status, answer = server.call("predict", [photo(PHOTOS[1])])
    return status == 200 and bool(answer["predictions"][0]["top_k"]) and time.monotonic() - start < 2


def predict_meanwhile(served: Served) -> bool:
    """:func:`predicted_within_2_s`, a moment after the requests beside it were sent."""
    time.sleep(0.1)
    return predicted_within_2_s(served)


def in_parallel(calls: list) -> list:
    """Each call in its own thread, released together; their results in order."""
    results: list = [None] * len(calls)
    gate = threading.Barrier(len(calls))

    def run(k: int) -> None:
        gate.wait()
        results[k] = calls[k]()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def post(server: Served, verb: str, instance: dict) -> tuple[int, str | None, dict]:
    """One request: its status, its Retry-After and its JSON body."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.http, timeout=60)
    body = json.dumps({"instances": [instance]})
    connection.request("POST", f"/v1/models/{server.name}:{verb}", body, {"content-type": "application/json"})
    answer = connection.getresponse()
    found = (answer.status, answer.getheader("retry-after"), json.loads(answer.read()))
    connection.close()
    return found


def encoded(data: bytes) -> dict:
    return {"image_bytes": {"b64": base64.b64encode(data).decode()}}


def gray_png(side: int) -> bytes:
    """An honest side x side 8-bit grayscale PNG of one grey (13000: 189 KB), written row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * side
    pixels = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg(size: tuple[int, int], grain: int = 0, **options) -> bytes:
    """A demo photo enlarged to ``size`` (with fine grain: detail at the photo's own scale)."""
    big = Image.open(PHOTOS[1]).convert("RGB").resize(size, Image.BICUBIC)
    if grain:
        noise = np.random.default_rng(0).integers(-grain, grain + 1, (size[1], size[0], 1))
        big = Image.fromarray(np.clip(np.asarray(big) + noise, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def test_trickling_bodies_are_cut_at_their_timeout_and_lock_no_one_out(served):
    """Before: the budget was charged on the announced 2 x 32 MB, so every other request got 503."""

    def trickle() -> tuple[float, bytes]:
        sock = socket.create_connection(("127.0.0.1", served.http), timeout=0.5)
        head = (
            f"POST /v1/models/{served.name}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {32 * 2**20}\r\n"
        )
        sock.sendall(head.encode() + b"\r\n")
        start, answer = time.monotonic(), b""
        while time.monotonic() - start < 10:
            try:
                sock.sendall(b" ")
                if not (got := sock.recv(4096)):
                    break
                answer += got
            except TimeoutError:
                continue  # a byte every half second
            except OSError:
                break
        sock.close()
        return time.monotonic() - start, answer

    with Memory(served) as memory:
        trickles = [threading.Thread(target=lambda k=k: found.__setitem__(k, trickle())) for k in range(2)]
        found: list = [None, None]
        for t in trickles:
            t.start()
        time.sleep(0.7)
        answered = [predicted_within_2_s(served) for _ in range(2)]
        for t in trickles:
            t.join()
    assert answered == [True, True]
    for waited, answer in found:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower(), answer
        error = json.loads(body)["error"]
        assert error.startswith("the body came too slowly: ") and "(--body-timeout-s)" in error
        assert "\n" not in error and 1.9 < waited < 4, (waited, error)
    assert memory.grown_mb < 50, memory.grown_mb
    assert predicted_within_2_s(served)  # their charge returned


def test_six_13000_pixel_pngs_at_once_are_refused_from_their_headers(served):
    """Before: each decoded (169 Mpx, gray to RGB), RSS +3.6 GB."""
    png = encoded(gray_png(13000))
    assert 180_000 < len(png["image_bytes"]["b64"]) * 3 / 4 < 200_000
    with Memory(served) as memory:
        *answers, answered = in_parallel(
            [lambda: post(served, "explain", png)] * 6 + [lambda: predict_meanwhile(served)]
        )
    assert answered
    for status, _, body in answers:
        assert (
            status == 400 and body["error"] == "instance 0 is 13000 x 13000 pixels (169 Mpx); at most 20 Mpx"
        )
    assert memory.grown_mb < 60, memory.grown_mb


def test_the_photos_in_flight_share_the_pixel_budget(served):
    """Six 4 Mpx photos at once, 5 Mpx in flight: one decoded at a time, the others 503."""
    png = encoded(gray_png(2000))
    with Memory(served) as memory:
        *answers, answered = in_parallel(
            [lambda: post(served, "explain", png)] * 6 + [lambda: predict_meanwhile(served)]
        )
    statuses = sorted(status for status, _, _ in answers)
    assert answered and statuses[0] == 200 and statuses[-1] == 503, statuses
    assert set(statuses) == {200, 503}
    for status, retry, body in answers:
        if status == 503:
            assert retry == "1" and body["error"].startswith("the server is busy: 4000000 pixels of photos")
            assert body["error"].endswith("at most 5000000 (--max-pending-pixels); retry later")
    # ~100 MB: one 4 Mpx photo and its overlay at a time (all six at once: 225)
    assert memory.grown_mb < 160, memory.grown_mb
    assert post(served, "predict", png)[0] == 200  # every charge returned
    status, answer = served.call("predict", [png, png])  # more than the budget alone: retrying cannot help
    assert status == 400 and answer["error"].startswith(
        "instance 1: this request's photos decode to more than 5000000 pixels together"
    )


def test_a_large_jpeg_decodes_reduced_within_the_pixel_limit(served):
    """24 Mpx over the 20 Mpx limit, but a baseline JPEG decodes at 1/8 for a 224 x 224 input:
    answered, its box in the photo's own pixels, its overlay at the reduced size; progressive, it
    holds every coefficient however it decodes: refused."""
    data = jpeg((6000, 4000))
    status, _, answer = post(served, "explain", encoded(data))
    assert status == 200
    ex = onnx_xai.Explainer(str(DEMO_MODEL))
    p = decode_for(data, preprocessing_for(ex))
    assert p.photo.size == (750, 500) and p.full_size == (6000, 4000)
    entry = answer["explanations"][0][0]
    want = ex.explain_many(p.array, ["gradcam"], objective=entry["target"])["gradcam"]
    assert entry["box"] == list(p.box_to_photo(want.boxes[0])) and entry["box"][2] > 3000
    assert Image.open(io.BytesIO(base64.b64decode(entry["overlay_png"]))).size == (750, 500)
    status, _, answer = post(served, "predict", encoded(jpeg((6000, 4000), progressive=True)))
    assert (status, answer["error"]) == (400, "instance 0 is 6000 x 4000 pixels (24 Mpx); at most 20 Mpx")


def test_a_jpeg_decoded_reduced_changes_the_explanation_only_as_resampling_does():
    """Against the photo decoded whole: the same photo averaged down by the same factor with Pillow's
    box filter differs from it as much as the reduced decode does."""
    ex = onnx_xai.Explainer(str(DEMO_MODEL))
    settings = preprocessing_for(ex)
    data = jpeg((4800, 3200), grain=24)
    whole = prepare(decode_image(data), **settings)
    reduced = decode_for(data, settings)
    assert reduced.photo.size == (600, 400)  # 1/8: still over the 384 x 256 the crop resizes to
    boxed = prepare(decode_image(data).reduce(8), **settings)
    scale = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * 255
    by_decode, by_box = (np.abs(x.array - whole.array) * scale for x in (reduced, boxed))
    assert by_decode.mean() < 1.0 and by_decode.max() < 12
    assert by_decode.mean() < 2 * by_box.mean() and by_decode.max() < 2 * by_box.max()
    maps = {k: ex.explain_many(x.array, ["gradcam"], objective=967)["gradcam"] for k, x in
            (("whole", whole), ("reduced", reduced), ("boxed", boxed))}  # fmt: skip
    assert np.abs(maps["reduced"].maps - maps["whole"].maps).max() < 0.06
    assert ex.predict(reduced.array).argmax() == ex.predict(whole.array).argmax() == 967
    cell = 3200 / 256 * 224 / 7  # one Grad-CAM cell, in photo pixels
    box, want = reduced.box_to_photo(maps["reduced"].boxes[0]), whole.box_to_photo(maps["whole"].boxes[0])
    assert np.abs(np.subtract(box, want)).max() <= cell, (box, want)


def _head_of(size: int, name: str = "lite") -> bytes:
    """A request line and headers of ``size`` bytes, unended."""
    start = f"GET /v1/models/{name} HTTP/1.1\r\nHost: x\r\nX-Pad: ".encode()
    return start + b"a" * (size - len(start))


def test_a_header_section_over_the_limit_gets_431_unread(served):
    """Before: httptools gathered a header that never ends for as long as it came."""
    limit = 64 * 1024
    with socket.create_connection(("127.0.0.1", served.http), timeout=10) as sock:
        sock.sendall(_head_of(limit - 100) + b"\r\nConnection: close\r\n\r\n")  # just under: answered
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", served.http), timeout=10) as sock:
        sock.sendall(_head_of(limit + 1))  # one byte over, never ended
        answer = sock.recv(65536)
        assert sock.recv(65536) == b""  # closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431") and json.loads(body) == {
        "error": "the request's header section is over 64 KB (--max-header-kb)"
    }
    with Memory(served) as memory, socket.create_connection(("127.0.0.1", served.http), timeout=10) as sock:
        sock.sendall(_head_of(32 * 1024))  # held, under the limit, while a photo is answered
        answered = predicted_within_2_s(served)
        sent, cut = 32 * 1024, False
        try:
            while sent < 16 * 2**20:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            cut = True
    assert answered and cut and sent < 8 * 2**20, sent
    assert memory.grown_mb < 30, memory.grown_mb


def _time_wait_on(port: int) -> bool:
    """Whether a connection to this port waits in TIME_WAIT (state 06 in /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(int(r.split()[1].split(":")[1], 16) == port and r.split()[3] == "06" for r in rows)


def _closed_by_the_server_at_sigterm(server: Served) -> None:
    """SIGTERM with a kept-alive connection open: the server closes it first, so the TIME_WAIT is
    on the server's port (a client that closes first leaves the TIME_WAIT on its own port)."""
    with socket.create_connection(("127.0.0.1", server.http), timeout=30) as sock:
        sock.sendall(f"GET /v1/models/{server.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        server.process.send_signal(signal.SIGTERM)
        while sock.recv(65536):  # until the server's FIN
            pass
    assert server.process.wait(timeout=60) == 0


def test_a_restart_on_the_same_ports_right_after_sigterm(monkeypatch):
    """Before: the port check bound without SO_REUSEADDR: "Address already in use" for ~60 s."""
    first = Served("--grpc-port", "0")
    assert predicted_within_2_s(first)
    _closed_by_the_server_at_sigterm(first)
    assert _time_wait_on(first.http)  # the server closed the connection: its port's TIME_WAIT
    ports = iter([first.http, first.grpc])
    monkeypatch.setattr(helpers, "free_port", lambda: next(ports))
    second = Served("--grpc-port", "0")
    try:
        assert second.http == first.http and predicted_within_2_s(second)
    finally:
        code, output = second.stop()
    assert code == 0, output
