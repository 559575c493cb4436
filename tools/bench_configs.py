"""The configurations ``tools/bench.py`` times: our methods, the PyTorch tools, the CLI, and a chart."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from models import exported, torch_model  # noqa: E402

import onnx_xai  # noqa: E402

THREADS, SAMPLES, NOISE, STEPS = 2, 50, 0.15, 32
# Our configuration -> the configuration it is compared with ("speedup": their time / ours;
# "cost": our time / theirs, for the one-call row against gradient alone).
PAIRS = {
    "gradient": ("captum saliency", "speedup"),
    "smoothgrad-50": ("captum noisetunnel-50", "speedup"),
    "gradcam": ("pytorch-grad-cam", "speedup"),
    "gradient+cam+gradcam": ("gradient", "cost"),
    f"integrated_gradients-{STEPS}": (f"captum integratedgradients-{STEPS}", "speedup"),
}


def tool_versions() -> str:
    from importlib import metadata

    found = []
    for dist in ("captum", "grad-cam", "torchvision"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} missing")
    return ", ".join(found)


@functools.cache
def load(model: str):
    """(torch model, ONNX path, Grad-CAM layer module, input size) of a benchmark model."""
    if model == "tiny":
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 5),
        ).eval()
        path = Path(tempfile.mkdtemp()) / "tiny.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                torch.zeros(1, 3, 32, 32),
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=["x"],
                dynamic_axes={"x": {0: "N"}},
            )
        return net, path, net[3], 32
    net = torch_model(model)
    layer = net.layer4[-1] if model == "resnet50" else net._bn1
    return net, exported(model), layer, 224


def build(model: str, batch: int, quick: bool, only: str | None = None):
    """Callables keyed by configuration name, and which configuration each is compared with."""
    net, path, layer, size = load(model)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = THREADS, 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the Explainer's
    forward = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed_name = forward.get_inputs()[0].name
    targets = forward.run(None, {feed_name: x})[0].argmax(1)
    samples = 4 if quick else SAMPLES
    factories = {
        "ort forward": lambda: lambda: forward.run(None, {feed_name: x}),
        "torch forward": lambda: _torch_forward(net, x),
        **_ours(path, x, samples),
        **_pytorch_tools(net, layer, x, targets, samples),
    }
    names = [only] if only else list(factories)
    runs = {n: factories[n]() for n in names if n in factories}
    runs = {n: fn for n, fn in runs.items() if fn is not None}
    return runs, PAIRS


def _torch_forward(net, x):
    xt = torch.tensor(x)

    def run():
        with torch.no_grad():
            net(xt)

    return run


def _ours(path, x, samples):
    ex = functools.lru_cache(maxsize=1)(lambda: onnx_xai.Explainer(path, threads=THREADS))
    return {
        "gradient": lambda: lambda: ex().explain(x, "gradient"),
        f"smoothgrad-{SAMPLES}": lambda: (
            lambda: ex().explain(x, "smoothgrad", n_samples=samples, noise_level=NOISE, noise_seed=0)
        ),
        "cam": lambda: lambda: ex().explain(x, "cam"),
        "gradcam": lambda: lambda: ex().explain(x, "gradcam"),
        "gradient+cam+gradcam": lambda: lambda: ex().explain_many(x, ["gradient", "cam", "gradcam"]),
        f"integrated_gradients-{STEPS}": lambda: (
            lambda: ex().explain(x, "integrated_gradients", n_steps=4 if samples < SAMPLES else STEPS)
        ),
    }


def _pytorch_tools(net, layer, x, targets, samples):
    def captum(kind):
        try:
            from captum.attr import NoiseTunnel, Saliency
        except ImportError:
            return None
        xt = torch.tensor(x, requires_grad=True)
        target = torch.as_tensor(targets)
        if kind == "saliency":
            return lambda: Saliency(net).attribute(xt, target=target)
        sigma = float(NOISE * (x.max() - x.min()))
        batch = _best_nt_batch(net, xt, target, sigma, samples)
        return lambda: NoiseTunnel(Saliency(net)).attribute(
            xt,
            nt_type="smoothgrad",
            nt_samples=samples,
            nt_samples_batch_size=batch,
            stdevs=sigma,
            target=target,
        )

    def gradcam():
        try:
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        except ImportError:
            return None
        cam = GradCAM(model=net, target_layers=[layer])
        xt = torch.tensor(x)
        return lambda: cam(input_tensor=xt, targets=[ClassifierOutputTarget(int(c)) for c in targets])

    def integrated():
        try:
            from captum.attr import IntegratedGradients
        except ImportError:
            return None
        xt, target = torch.tensor(x), torch.as_tensor(targets)
        steps = 4 if samples < SAMPLES else STEPS
        return lambda: IntegratedGradients(net).attribute(
            xt, target=target, n_steps=steps, internal_batch_size=8
        )

    return {
        "captum saliency": lambda: captum("saliency"),
        f"captum noisetunnel-{SAMPLES}": lambda: captum("noisetunnel"),
        f"captum integratedgradients-{STEPS}": integrated,
        "pytorch-grad-cam": gradcam,
    }


def _best_nt_batch(net, xt, target, sigma, samples) -> int:
    """Captum's fastest nt_samples_batch_size among a few, each timed on a 10-sample run; sizes
    that would put more than 100 images through the network at once are not tried (memory)."""
    from captum.attr import NoiseTunnel, Saliency

    best, best_t = 1, float("inf")
    probe = min(samples, 10)
    for size in sorted(s for s in {1, 5, 10, 25, samples} if s <= samples and s * len(xt) <= 100):
        start = time.perf_counter()
        NoiseTunnel(Saliency(net)).attribute(
            xt,
            nt_type="smoothgrad",
            nt_samples=probe,
            nt_samples_batch_size=min(size, probe),
            stdevs=sigma,
            target=target,
        )
        elapsed = time.perf_counter() - start
        if elapsed < best_t:
            best, best_t = size, elapsed
    print(f"  captum nt_samples_batch_size={best} was fastest", file=sys.stderr)
    return best


def cli_throughput(model: str, photos: int) -> dict:
    """Photos per second through ``onnx-xai explain --method gradcam``, decoding and writing included."""
    _, path, _, _ = load(model)
    source = Path(onnx_xai.__file__).parent / "data" / "photos"
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        originals = [Image.open(p).convert("RGB") for p in sorted(source.glob("*.jpg"))]
        for i in range(photos):
            im = originals[i % len(originals)]
            w, h = im.size
            x0, y0 = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
            im.crop((x0, y0, x0 + 3 * w // 4, y0 + 3 * h // 4)).save(folder / f"p{i:03d}.jpg", quality=90)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "onnx_xai.cli",
                "explain",
                str(path),
                str(folder),
                "--method",
                "gradcam",
                "--threads",
                str(THREADS),
                "--out",
                str(Path(tmp) / "out"),
            ],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
    return {"model": model, "photos": photos, "seconds": seconds, "images_per_s": photos / seconds}


def chart(rows: list[dict], path: str) -> None:
    """Horizontal bars of each configuration's median time relative to the ORT forward."""
    font = ImageFont.load_default()
    groups = sorted({(r["model"], r["batch"]) for r in rows})
    line, width, label_w = 16, 900, 330
    height = sum(len([r for r in rows if (r["model"], r["batch"]) == g]) + 2 for g in groups) * line + 20
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    top = max(r["vs_ort_forward"] for r in rows)
    scale = (width - label_w - 80) / np.log10(top * 1.2)
    y = 10
    for g in groups:
        draw.text(
            (10, y), f"{g[0]}, batch {g[1]}  (x = time / ORT forward, log scale)", fill="black", font=font
        )
        y += line
        for r in (r for r in rows if (r["model"], r["batch"]) == g):
            ours = not any(t in r["config"] for t in ("captum", "pytorch", "torch", "ort"))
            length = max(2, scale * np.log10(max(r["vs_ort_forward"], 1.0) * 1.0) + 2)
            draw.text((20, y), r["config"], fill="black", font=font)
            draw.rectangle(
                [label_w, y + 2, label_w + length, y + line - 3],
                fill=(40, 110, 200) if ours else (200, 110, 40),
            )
            draw.text((label_w + length + 6, y), f"{r['vs_ort_forward']:.2f}x", fill="black", font=font)
            y += line
        y += line
    canvas.save(path)
