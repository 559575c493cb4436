"""Our token explanations against Captum on the same text encoder, in one process.

A DistilBERT-size classifier (``--size distilbert``: 6 layers, 768 wide, 12 heads, vocabulary
30,522; ``--size small``: 2 layers, 128 wide, for a quick look), random init, exported by
torch.onnx. Texts of ``--length`` token ids (128 by default) in batches of ``--batch`` (1 and 16 by
default). Ours: ``Explainer.explain(ids, "integrated_gradients", baseline=pad ids, n_steps=50)`` and
``explain(ids, "gradient")``; Captum: ``LayerIntegratedGradients`` on ``word_embeddings`` (50 steps,
gauss-legendre, ``internal_batch_size`` = the batch) and, for the gradient (Captum has no layer
``Saliency``), the gradient at the word embeddings by ``torch.autograd.grad`` through a forward
hook, what ``Saliency`` computes there (no weight gradients); both on torch's CPU build in float32,
torch's and onnxruntime's threads at the machine's cores. Also ours: the gradient's cost against a
forward of the same graph, and with ``--fused`` of the graph onnxruntime's transformer optimizer
fuses (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu: the model is then
exported with eager attention, the pattern the optimizer fuses) with its gradient against the
unfused one's. Rounds interleave ours and Captum's; prints the median of each, the ratio Captum /
ours (above 1: ours is faster) and the largest difference of the attributions relative to their
largest value.

    python tools/bench_text.py [--size distilbert|small] [--batch 1 16] [--length 128] [--rounds 3]
                               [--methods integrated_gradients gradient] [--fused]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
import onnx_xai  # noqa: E402

SIZES = {
    "distilbert": dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072),
    "small": dict(vocab_size=5000, dim=128, n_layers=2, n_heads=4, hidden_dim=512),
}
PAD = 0
METHODS = ("integrated_gradients", "gradient")


def encoder(size: str, folder: Path, eager: bool = False) -> tuple[str, torch.nn.Module]:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(max_position_embeddings=512, num_labels=2, **SIZES[size])
    if eager:
        config._attn_implementation = "eager"
    model = DistilBertForSequenceClassification(config).eval()
    names = ["input_ids", "attention_mask"]
    path = str(folder / f"{size}.onnx")
    torch.onnx.export(
        model, tuple(torch.ones(1, 8, dtype=torch.int64) for _ in names), path, dynamo=False,
        input_names=names, output_names=["logits"], dynamic_axes={n: {0: "N", 1: "T"} for n in names},
    )  # fmt: skip
    return path, model


def timed(fn, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ours_and_captum(
    ex, model, ids: np.ndarray, mask: np.ndarray, rounds: int, methods=METHODS
) -> list[tuple]:
    from captum.attr import LayerIntegratedGradients

    base = np.where(np.arange(ids.shape[1])[None] == 0, ids, PAD)
    extra = {"attention_mask": mask}
    layer = model.distilbert.embeddings.word_embeddings
    t_ids, t_mask, t_base = (torch.as_tensor(v) for v in (ids, mask, base))
    forward = lambda i, m: model(input_ids=i, attention_mask=m).logits  # noqa: E731

    def captum_ig():
        lig = LayerIntegratedGradients(forward, layer)
        return lig.attribute(t_ids, baselines=t_base, target=1, n_steps=50, additional_forward_args=(t_mask,),
                             internal_batch_size=len(ids)).detach().numpy()  # fmt: skip

    def captum_gradient():  # as Saliency: torch.autograd.grad to the embedding only (no weight gradients)
        found = {}
        hook = layer.register_forward_hook(lambda m, i, out: found.__setitem__("e", out))
        score = forward(t_ids, t_mask)[:, 1].sum()
        hook.remove()
        return torch.autograd.grad(score, found["e"])[0].numpy()

    rows = []
    for name, ours, theirs in (
        ("integrated_gradients", lambda: ex.explain(ids, "integrated_gradients", 1, extra_inputs=extra,
                                                    baseline=base, n_steps=50).raw, captum_ig),
        ("gradient", lambda: ex.explain(ids, "gradient", 1, extra_inputs=extra).raw, captum_gradient),
    ):  # fmt: skip
        if name not in methods:
            continue
        ours(), theirs()  # warm: graphs built, sessions and torch's kernels ready
        ours_t, theirs_t = [], []
        for _ in range(rounds):  # interleaved
            t, a = timed(ours, 1)
            ours_t.append(t)
            t, b = timed(theirs, 1)
            theirs_t.append(t)
        gap = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
        rows.append((name, statistics.median(ours_t), statistics.median(theirs_t), gap))
    return rows


def forward_ratio(path: str, ids: np.ndarray, mask: np.ndarray, rounds: int) -> tuple[float, float]:
    """The gradient's time and a forward's, medians (one warm-up each), on a fresh Explainer of the
    model at ``path``, the forward first: once a gradient graph is built, ``predict`` is served from
    it (one copy of the weights fewer) and costs what the gradient costs."""
    ex, extra = onnx_xai.Explainer(path), {"attention_mask": mask}
    forward = lambda: ex.predict(ids, **extra)  # noqa: E731
    gradient = lambda: ex.explain(ids, "gradient", 1, extra_inputs=extra)  # noqa: E731
    forward()
    forward_time = timed(forward, rounds)[0]
    gradient()
    return timed(gradient, rounds)[0], forward_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="distilbert")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fused", action="store_true", help="the optimizer's fused graph's gradient cost")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args()
    if args.fused:
        return fused(args)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        path, model = encoder(args.size, Path(folder))
        ex = onnx_xai.Explainer(path, threads=threads)
        print(f"{args.size}, length {args.length}, {threads} threads, onnxruntime and torch float32 on CPU")
        print("method                batch   ours s   Captum s   Captum/ours   max |diff| / max")
        for batch in args.batch:
            rng = np.random.default_rng(batch)
            ids = rng.integers(1000, SIZES[args.size]["vocab_size"], (batch, args.length))
            ids[:, 0] = 101
            mask = np.ones_like(ids)
            for name, ours, theirs, gap in ours_and_captum(ex, model, ids, mask, args.rounds, args.methods):
                print(f"{name:21} {batch:5} {ours:8.3f} {theirs:10.3f} {theirs / ours:13.2f} {gap:18.1e}")
            gradient, forward = forward_ratio(path, ids, mask, args.rounds)
            ratio = gradient / forward
            print(f"  gradient / forward at batch {batch}: {gradient:.3f} s / {forward:.3f} s = {ratio:.2f}")


def fused(args) -> None:
    """The gradient's cost against a forward on the optimizer's fused graph, and its difference from
    the unfused graph's gradient."""
    from onnxruntime.transformers.optimizer import optimize_model

    size = SIZES[args.size]
    with tempfile.TemporaryDirectory() as folder:
        path, _ = encoder(args.size, Path(folder), eager=True)
        optimized = str(Path(folder) / "fused.onnx")
        optimize_model(
            path, model_type="bert", num_heads=size["n_heads"], hidden_size=size["dim"]
        ).save_model_to_file(optimized)
        plain, ex = onnx_xai.Explainer(path), onnx_xai.Explainer(optimized)
        print(f"{args.size}, length {args.length}, fused graph (onnxruntime's transformer optimizer)")
        for batch in args.batch:
            ids = np.random.default_rng(batch).integers(1000, size["vocab_size"], (batch, args.length))
            mask = np.ones_like(ids)
            gradient, forward = forward_ratio(optimized, ids, mask, args.rounds)
            unfused, _ = forward_ratio(path, ids, mask, args.rounds)
            a = ex.explain(ids, "gradient", 1, extra_inputs={"attention_mask": mask}).raw
            b = plain.explain(ids, "gradient", 1, extra_inputs={"attention_mask": mask}).raw
            gap = float(np.abs(a - b).max() / np.abs(b).max())
            said = f"gradient {gradient:.3f} s, forward {forward:.3f} s, ratio {gradient / forward:.2f}"
            print(f"  batch {batch}: {said}; unfused gradient {unfused:.3f} s; fused vs unfused {gap:.1e}")


if __name__ == "__main__":
    main()
