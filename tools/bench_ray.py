"""Photos per second of the audit: the local engine against Ray Data in local mode, on the same cores.

Both engines audit the same N photos (cut from the bundled three) with the same methods, metrics and
batch size; Ray runs ``--actors`` actors of ``--threads`` threads each (``ray.init(num_cpus=...)``),
the local engine one Explainer of ``--actors x --threads`` threads. Prints each engine's wall time
(start-up included) and photos/s, Ray's start-up alone, and the ratio. Sanity checks are off: they run
on the driver in both engines and cost the same.

    python tools/bench_ray.py [--photos 96] [--actors 2] [--threads 1] [--methods gradcam]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from onnx_xai.audit import AuditOptions, Protocol  # noqa: E402
from onnx_xai.audit.run import audit  # noqa: E402
from onnx_xai.photos import DEMO_MODEL  # noqa: E402
from tests.audit.test_ray import photos as make_photos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["gradcam"])
    parser.add_argument("--curve-steps", type=int, default=16)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_photos(root / "photos", args.photos)[: args.photos]
        opts = AuditOptions(
            methods=tuple(args.methods),
            metrics=("deletion", "insertion"),
            sanity=(),
            protocol=Protocol(steps=args.curve_steps),
            report_photos=8,
        )
        start = time.perf_counter()
        audit(str(DEMO_MODEL), files, root / "local", opts, {"threads": args.actors * args.threads})
        local = time.perf_counter() - start
        start = time.perf_counter()
        ray.init(num_cpus=args.actors * args.threads, include_dashboard=False, logging_level="ERROR")
        started = time.perf_counter() - start
        audit(
            str(DEMO_MODEL),
            files,
            root / "ray",
            opts,
            {"threads": args.threads},
            engine="ray",
            ray_options={"actors": args.actors, "cpus_per_actor": args.threads},
        )
        on_ray = time.perf_counter() - start
        ray.shutdown()
    n = len(files)
    print(
        f"{n} photos, methods {' '.join(args.methods)}, deletion + insertion ({args.curve_steps} steps), "
        f"{args.actors * args.threads} cores"
    )
    print(f"local engine: {local:6.1f} s  {n / local:5.2f} photos/s")
    print(
        f"ray (local mode, {args.actors} actors x {args.threads} thread): {on_ray:6.1f} s  {n / on_ray:5.2f} "
        f"photos/s  (ray.init {started:.1f} s)"
    )
    print(f"ray / local throughput: {local / on_ray:.2f}x")


if __name__ == "__main__":
    main()
