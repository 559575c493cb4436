"""``onnx-xai serve`` under load against the in-process Explainer, on the bundled EfficientNet-Lite0.

Baseline, in this process: one forward of one photo (median), reading one photo as the server does
(base64, JPEG decoding, preparing the input; median), and the Explainer's batched throughput
(photos decoded and prepared, then ``explain_many`` on batches of 16) for Grad-CAM and for the
gradient. Then the server (a subprocess on loopback, default flags) answers ``:predict`` and
``:explain`` (Grad-CAM; gradient) from 1, 4 and 16 concurrent clients, each sending one photo per
request over its own keep-alive connection (base64 JPEG bodies encoded once; the answer with its PNG
overlay, the default; Grad-CAM also with the map drawn on the photo as a JPEG beside it, and without
any picture, to show what encoding costs): a table of requests/s, p50 and p99 latency. Last, the
issue's targets in ``--rounds`` rounds, each measuring the baseline right before the server (the
machine's speed drifts over seconds): ``:explain`` throughput at 16 clients over the Explainer's
batched throughput, ``:predict``'s p50 at 1 client minus one forward (and the in-process read of a
photo, which that includes), and V2 infer's over gRPC with the input tensor (no photo to decode: the
serving layer's own cost); medians and each round.

    python tools/bench_serve.py [--requests 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from onnx_xai.imaging.images import decode_image, prepare  # noqa: E402
from onnx_xai.imaging.preprocessing import preprocessing_for  # noqa: E402
from onnx_xai.photos import DEMO_MODEL  # noqa: E402
from tests.serve.server import PHOTOS, Served, photo  # noqa: E402


class Baseline:
    """The in-process Explainer on the same model and photos: one forward, reading one photo as the
    server does (base64, JPEG decoding, preparing the input), and batched throughput (photos decoded
    and prepared, then ``explain_many`` on 16 at a time)."""

    def __init__(self):
        self.ex = onnx_xai.Explainer(str(DEMO_MODEL))
        self.settings = preprocessing_for(self.ex)
        self.data = [p.read_bytes() for p in PHOTOS]
        self.bodies = [base64.b64encode(d).decode() for d in self.data]
        self.x = prepare(decode_image(self.data[0]), **self.settings).array
        for method in ("gradcam", "gradient"):
            self.ex.explain_many(self.x, [method])

    def forward_ms(self, rounds: int = 40) -> float:
        self.ex.predict(self.x)
        return 1000 * statistics.median(_timed(lambda: self.ex.predict(self.x)) for _ in range(rounds))

    def read_ms(self, rounds: int = 60) -> float:
        def read(k: int) -> None:
            prepare(decode_image(base64.b64decode(self.bodies[k % len(self.bodies)])), **self.settings)

        return 1000 * statistics.median(_timed(lambda k=k: read(k)) for k in range(rounds))

    def per_s(self, method: str, rounds: int = 3) -> float:
        def batch() -> None:
            arrays = [
                prepare(decode_image(self.data[k % len(self.data)]), **self.settings).array for k in range(16)
            ]
            self.ex.explain_many(np.concatenate(arrays), [method])

        return 16 / statistics.median(_timed(batch) for _ in range(rounds))


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


def table(server: Served, requests: int) -> list[tuple[str, int, dict]]:
    rows = []
    for verb, parameters, label in (
        ("predict", {}, ":predict"),
        ("explain", {"methods": ["gradcam"]}, ":explain Grad-CAM"),
        ("explain", {"methods": ["gradcam"], "picture": "jpg"}, ":explain Grad-CAM, + JPEG picture"),
        ("explain", {"methods": ["gradcam"], "overlay": False}, ":explain Grad-CAM, no overlay"),
        ("explain", {"methods": ["gradient"]}, ":explain gradient"),
    ):
        server.call(verb, [photo(PHOTOS[0])], **parameters)  # warm
        for clients in (1, 4, 16):
            rows.append((label, clients, load(server, verb, parameters, clients, max(requests, clients))))
    return rows


def grpc_p50_ms(server: Served, x: np.ndarray, requests: int) -> float:
    """p50 latency of V2 infer over gRPC (KServe's client), one client, the input tensor itself: the
    serving layer's own cost, with no photo to decode."""
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def run() -> list[float]:
        tensor = InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc}")
        latencies = []
        for n in range(requests + 5):
            start = time.perf_counter()
            await client.infer(InferRequest(model_name=server.name, infer_inputs=[tensor], request_id=str(n)))
            latencies.append(time.perf_counter() - start)
        return latencies[5:]

    return 1000 * statistics.median(asyncio.run(run()))


def targets(server: Served, base: Baseline, rounds: int, requests: int) -> dict[str, list[float]]:
    """The issue's two targets, each round measuring the baseline right before the server (the
    machine's speed drifts over seconds): :explain at 16 clients over the batched Explainer (Grad-CAM,
    gradient), :predict's p50 at 1 client minus one forward, and the in-process read."""
    keys = ("gradcam", "gradient", "predict_gap_ms", "read_ms", "grpc_gap_ms")
    found: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(rounds):
        forward = base.forward_ms()
        found["predict_gap_ms"].append(load(server, "predict", {}, 1, requests)["p50_ms"] - forward)
        found["read_ms"].append(base.read_ms())
        found["grpc_gap_ms"].append(grpc_p50_ms(server, base.x, requests) - base.forward_ms())
        for method in ("gradcam", "gradient"):
            alone = base.per_s(method)
            served = load(server, "explain", {"methods": [method]}, 16, requests)["per_s"]
            found[method].append(served / alone)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64, help="requests per verb and concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the interleaved target measurement")
    args = parser.parse_args()
    base = Baseline()
    print(f"in process: forward {base.forward_ms():.1f} ms, reading a photo (base64, JPEG, prepare) "
          f"{base.read_ms():.1f} ms; batched Grad-CAM {base.per_s('gradcam'):.1f}/s, "
          f"gradient {base.per_s('gradient'):.1f}/s")  # fmt: skip
    server = Served()
    try:
        rows = table(server, args.requests)
        found = targets(server, base, args.rounds, args.requests)
    finally:
        server.stop()
    print("| request | clients | requests/s | p50 ms | p99 ms | failures |")
    print("|---|---|---|---|---|---|")
    for label, clients, f in rows:
        numbers = f"{f['per_s']:.1f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['failures']}"
        print(f"| {label} | {clients} | {numbers} |")
    print(f"\nthe targets, {args.rounds} rounds, each against the in-process baseline measured right before:")
    for key, what in (
        ("gradcam", ":explain Grad-CAM at 16 clients / batched Explainer"),
        ("gradient", ":explain gradient at 16 clients / batched Explainer"),
        ("predict_gap_ms", ":predict p50 at 1 client - forward, ms"),
        ("read_ms", "of which reading the photo (in process), ms"),
        ("grpc_gap_ms", "V2 infer over gRPC (KServe's client, the input tensor: no photo) p50 - forward, ms"),
    ):
        values = found[key]
        print(f"  {what}: median {statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
