"""``onnx-xai serve``: a model and its explanations behind KServe's model server
(:mod:`onnx_xai.serve`)."""

from __future__ import annotations

import argparse

from ..support.errors import XaiError
from .options import BACKENDS, at_least, finite, fraction, positive, preprocessing


def add_parser(sub) -> None:
    from ..runtime.methods import METHOD_NAMES

    p = sub.add_parser(
        "serve",
        help="serve a model's predictions and explanations (KServe V1/V2, REST and gRPC)",
        description="Serve MODEL on KServe's model server: POST /v1/models/NAME:predict and :explain "
        "(photos as {'image_bytes': {'b64': ...}} or arrays), /v2/models/NAME/infer; bound to "
        "127.0.0.1 unless --host says otherwise. Needs: pip install 'onnx_xai[serve]'.",
    )
    p.add_argument("model", help="ONNX model (original or rewritten by 'augment')")
    p.add_argument("--name", default="model", help="the model's name in the URLs (default: model)")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--http-port", type=at_least(0), default=8080, help="REST port (default 8080)")
    p.add_argument("--grpc-port", type=at_least(0), default=8081, help="gRPC port (default 8081; 0: no gRPC)")
    p.add_argument("--workers", type=at_least(1), default=1, help="server processes, supervised (default 1)")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        metavar="METHOD",
        help="methods of :explain when a request names none (default: gradcam for photos; "
        "integrated_gradients for texts; input_x_gradient for language models; for tables tree_shap or "
        "kernel_shap with --background, else gradient)",
    )
    p.add_argument(
        "--background",
        metavar="ROWS",
        help="a table model's background rows (.csv with a header naming the columns, .parquet, .npy)",
    )
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="a text encoder's tokenizer.json, or a folder holding one (default: beside the model)",
    )
    _add_model_flags(p)
    _add_load_flags(p)
    p.set_defaults(run=run)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """How the model is run and its photos prepared, fixed when the server starts."""
    from ..imaging.images import PRESETS

    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="the runtime")
    p.add_argument("--threads", type=at_least(1), help="intra-op threads of the runtime")
    p.add_argument(
        "--labels", help="class names, one per line (default: the model's metadata, or ImageNet's)"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="normalization (default imagenet)")
    p.add_argument("--mean", type=finite, nargs="+", metavar="M")
    p.add_argument("--std", type=finite, nargs="+", metavar="S")
    p.add_argument(
        "--crop",
        type=fraction(closed_low=False),
        default=0.875,
        help="centre-crop fraction for square classifiers (default 0.875)",
    )
    p.add_argument("--fit", choices=("auto", "crop", "letterbox", "stretch"), default="auto")
    p.add_argument(
        "--size", type=at_least(1), nargs=2, metavar=("H", "W"), help="input size of a dynamic model"
    )
    p.add_argument("--target-layer", nargs="+", help="the CAM family's target layer(s)")
    p.add_argument("--output", help="the output to explain, for models with several")


def _add_load_flags(p: argparse.ArgumentParser) -> None:
    """Batching, the bounds on what requests may hold, and per-request logging."""
    p.add_argument("--max-batch", type=at_least(1), default=16, help="instances per batched run (default 16)")
    p.add_argument(
        "--max-latency-ms",
        type=finite,
        default=0.0,
        help="how long a request that finds the model idle waits for others to share its run (default 0; "
        "under load, requests that arrive during a run always share the next)",
    )
    p.add_argument("--max-instances", type=at_least(1), default=64, help="instances per request (default 64)")
    p.add_argument(
        "--max-body-mb", type=positive, default=32.0, help="the largest request body (default 32 MB)"
    )
    p.add_argument(
        "--max-pending-mb",
        type=positive,
        default=64.0,
        help="the bodies of all requests in flight together; beyond it a request gets 503 (default 64 MB)",
    )
    _add_transport_flags(p)
    _add_work_flags(p)
    p.add_argument(
        "--log-latency",
        action="store_true",
        help="log each request's stages and wall and CPU time (KServe's trace lines; off by default: "
        "/metrics has the same latencies as histograms)",
    )


def _add_transport_flags(p: argparse.ArgumentParser) -> None:
    """How long a body may take, how large a request's head and a photo's pixels may be."""
    p.add_argument(
        "--body-timeout-s",
        type=positive,
        default=10.0,
        help="a body gets this long plus 1 s per 64 KB it sends; slower: 408, connection closed (default 10)",
    )
    p.add_argument(
        "--max-header-kb",
        type=positive,
        default=64.0,
        help="a request's line and header fields together; beyond: 431, unread (default 64 KB)",
    )
    p.add_argument(
        "--max-pixels",
        type=at_least(1),
        default=40_000_000,
        help="a photo's pixels, decoded (a large JPEG decodes reduced when the model's input allows); "
        "beyond: 400, undecoded (default 40000000: 40 Mpx)",
    )
    p.add_argument(
        "--max-pending-pixels",
        type=at_least(1),
        default=100_000_000,
        help="the decoded pixels of all photos in flight together; beyond: 503 (default 100000000)",
    )


def _add_work_flags(p: argparse.ArgumentParser) -> None:
    """How much work a request may ask for, how long it may take, how long a stop may take."""
    p.add_argument(
        "--max-runs",
        type=at_least(1),
        help="the model runs a request's methods may take (SmoothGrad copies, RISE masks, patches ...); "
        "beyond: 400 (default: what fits half of --timeout-s at two forwards a run, timed at load; "
        "the bundled model: about 2000)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=at_least(1),
        default=64,
        help="a language model's requests: the most tokens one prompt may generate or explain "
        "(max_new_tokens, targets); beyond: 400 (default 64)",
    )
    p.add_argument(
        "--timeout-s",
        type=positive,
        default=60.0,
        help="a request's deadline from its arrival, checked between runs of the model; a request may "
        "ask for less (timeout_s); beyond: 503 (default 60)",
    )
    p.add_argument(
        "--grace-s",
        type=positive,
        default=30.0,
        help="after SIGTERM, how long requests in flight are given before the process exits (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        from ..serve.model import ServeConfig
        from ..serve.server import serve
    except ImportError as exc:
        raise XaiError(f"onnx-xai serve needs KServe ({exc}): pip install 'onnx_xai[serve]'") from None

    config = ServeConfig(
        methods=tuple(args.methods) if args.methods else (),
        backend=args.backend,
        threads=args.threads,
        preprocessing=preprocessing(args),
        labels=args.labels,
        target_layer=tuple(args.target_layer) if args.target_layer else None,
        output=args.output,
        max_batch=args.max_batch,
        max_latency_ms=args.max_latency_ms,
        max_instances=args.max_instances,
        max_body_mb=args.max_body_mb,
        max_pending_mb=args.max_pending_mb,
        body_timeout_s=args.body_timeout_s,
        max_header_kb=args.max_header_kb,
        max_pixels=args.max_pixels,
        max_pending_pixels=args.max_pending_pixels,
        background=args.background,
        tokenizer=args.tokenizer,
        max_runs=args.max_runs,
        max_new_tokens=args.max_new_tokens,
        timeout_s=args.timeout_s,
        grace_s=args.grace_s,
    )
    serve(
        args.model, args.name, config, args.host, args.http_port, args.grpc_port or None, args.workers,
        log_latency=args.log_latency,
    )  # fmt: skip
    return 0
