"""``onnx-xai serve`` under load against the in-process Explainer, on the bundled EfficientNet-Lite0.

Baseline, in this process: one forward of one photo (median), and the Explainer's batched throughput
(photos decoded and prepared, then ``explain_many`` on batches of 16) for Grad-CAM and for the
gradient. Then the server (a subprocess on loopback, default flags) answers ``:predict`` and
``:explain`` (Grad-CAM; gradient) from 1, 4 and 16 concurrent clients, each sending one photo per
request over its own keep-alive connection (base64 JPEG bodies encoded once; the answer with its PNG
overlay, the default; Grad-CAM also with the map drawn
on the photo as a JPEG beside it, and without any picture, to show what encoding costs);
prints requests/s, p50 and p99 latency, and the ratios the issue asks for:
``:explain`` throughput at concurrency 16 over the Explainer's batched throughput, ``:predict``'s p50
at concurrency 1 minus one forward.

    python tools/bench_serve.py [--requests 64]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import onnx_xai  # noqa: E402
from onnx_xai.images import decode_image, prepare  # noqa: E402
from onnx_xai.photos import DEMO_MODEL  # noqa: E402
from onnx_xai.preprocessing import preprocessing_for  # noqa: E402
from tests.serve.server import PHOTOS, Served, photo  # noqa: E402


def baseline(rounds: int = 5) -> dict:
    ex = onnx_xai.Explainer(str(DEMO_MODEL))
    settings = preprocessing_for(ex)
    data = [p.read_bytes() for p in PHOTOS]
    x = prepare(decode_image(data[0]), **settings).array
    ex.predict(x)
    forward = statistics.median(_timed(lambda: ex.predict(x)) for _ in range(20))
    found = {"forward_ms": forward * 1000}
    for method in ("gradcam", "gradient"):
        ex.explain_many(x, [method])

        def batch(method=method) -> None:
            arrays = [prepare(decode_image(data[k % len(data)]), **settings).array for k in range(16)]
            ex.explain_many(np.concatenate(arrays), [method])

        found[f"{method}_per_s"] = 16 / statistics.median(_timed(batch) for _ in range(rounds))
    return found


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load(server: Served, verb: str, parameters: dict, clients: int, requests: int) -> dict:
    """Each client a keep-alive connection sending bodies encoded once, as a load generator does (the
    client shares the 2 cores with the server: its own JSON work would be counted against it)."""
    path = f"/v1/models/{server.name}:{verb}"
    extra = {"parameters": parameters} if parameters else {}
    bodies = [json.dumps({"instances": [photo(p)]} | extra).encode() for p in PHOTOS]
    latencies: list[float] = []
    failures: list = []

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.http, timeout=120)
        for n in range(requests // clients):
            start = time.perf_counter()
            connection.request(
                "POST", path, bodies[(k + n) % len(bodies)], {"content-type": "application/json"}
            )
            answer = connection.getresponse()
            answer.read()
            latencies.append(time.perf_counter() - start)
            if answer.status != 200:
                failures.append(answer.status)
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "per_s": len(latencies) / wall,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "failures": len(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64, help="requests per verb and concurrency")
    args = parser.parse_args()
    base = baseline()
    print(f"in process: forward {base['forward_ms']:.1f} ms; batched Grad-CAM {base['gradcam_per_s']:.1f}/s, "
          f"gradient {base['gradient_per_s']:.1f}/s")  # fmt: skip
    server = Served()
    rows = []
    try:
        for verb, parameters, label in (
            ("predict", {}, ":predict"),
            ("explain", {"methods": ["gradcam"]}, ":explain Grad-CAM"),
            ("explain", {"methods": ["gradcam"], "picture": "jpg"}, ":explain Grad-CAM, + JPEG picture"),
            ("explain", {"methods": ["gradcam"], "overlay": False}, ":explain Grad-CAM, no overlay"),
            ("explain", {"methods": ["gradient"]}, ":explain gradient"),
        ):
            server.call(verb, [photo(PHOTOS[0])], **parameters)  # warm
            for clients in (1, 4, 16):
                found = load(server, verb, parameters, clients, max(args.requests, clients))
                rows.append((label, clients, found))
    finally:
        server.stop()
    print("| request | clients | requests/s | p50 ms | p99 ms | failures |")
    print("|---|---|---|---|---|---|")
    for label, clients, f in rows:
        numbers = f"{f['per_s']:.1f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['failures']}"
        print(f"| {label} | {clients} | {numbers} |")
    by = {(label, clients): f for label, clients, f in rows}
    print(
        f"\n:explain Grad-CAM at 16 clients / batched Explainer: "
        f"{by[(':explain Grad-CAM', 16)]['per_s'] / base['gradcam_per_s']:.2f}; "
        f"gradient: {by[(':explain gradient', 16)]['per_s'] / base['gradient_per_s']:.2f}; "
        f":predict p50 at 1 client - forward: {by[(':predict', 1)]['p50_ms'] - base['forward_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
