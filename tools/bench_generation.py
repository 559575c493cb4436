"""Our attribution of a generation against Captum's on the same torch model, each side in its own
process (so that each one's peak memory is its own).

A GPT-2-small-size causal language model (12 layers, 768 wide, 12 heads, vocabulary 50,257; ``--size
tiny`` for a quick look), random init, exported by torch.onnx without a cache. A prompt of
``--prompt`` random token ids (64 by default) and ``--new`` generated tokens (16): ours runs
``explain_generation``'s attribution of every step (one batch of K copies, the probability of each
generated token); Captum's side runs what its ``LLMGradientAttribution`` runs, step by step: for each
generated token, its layer method on ``transformer.wte`` for that token's probability at the end of
its prefix (``LayerGradientXActivation`` for input x gradient, ``LayerIntegratedGradients`` with 50
steps, 50 points per batch, from the embedding of id 0 as Captum does without a baseline; ours
starts from zero embeddings). Both in float32 on CPU at the machine's cores. Prints each side's median time,
the ratio Captum / ours (above 1: ours is faster), each side's peak resident memory, and the largest
difference of the two matrices relative to their largest value (input x gradient; integrated
gradients' baselines differ, so its rows are compared only by time).

    python tools/bench_generation.py [--size small|tiny] [--prompt 64] [--new 16] [--rounds 2]
                                     [--methods input_x_gradient integrated_gradients]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))

SIZES = {
    "small": dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257),
    "tiny": dict(n_embd=64, n_layer=2, n_head=2, vocab_size=1000),
}
METHODS = ("input_x_gradient", "integrated_gradients")


def model(size: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_positions=256, **SIZES[size])).eval()


def export(net, path: Path) -> None:
    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, ids, mask):
            return self.net(input_ids=ids, attention_mask=mask, use_cache=False).logits

    names = ["input_ids", "attention_mask"]
    example = (torch.ones(1, 8, dtype=torch.int64), torch.ones(1, 8, dtype=torch.int64))
    torch.onnx.export(
        Logits(), example, str(path), dynamo=False, input_names=names, output_names=["logits"],
        opset_version=17, dynamic_axes={n: {0: "N", 1: "T"} for n in names} | {"logits": {0: "N", 1: "T"}},
    )  # fmt: skip


def ours(path: str, prompt: list[int], generated: list[int], method: str, rounds: int) -> tuple:
    import onnx_xai
    from onnx_xai.generation.explain import _attribute

    ex = onnx_xai.Explainer(path)
    run = lambda: _attribute(ex, None, prompt, generated, method, "probability", None, {})[0]  # noqa: E731
    return timed(run, rounds)


def captum(size: str, prompt: list[int], generated: list[int], method: str, rounds: int) -> tuple:
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    net = model(size)
    layer = net.get_input_embeddings()

    def probability(ids):
        return torch.softmax(net(input_ids=ids).logits[:, -1], -1)

    def run():
        rows = np.full((len(generated), len(prompt) + len(generated) - 1), np.nan)
        for k, token in enumerate(generated):
            ids = torch.as_tensor([prompt + generated[:k]])
            if method == "input_x_gradient":
                found = LayerGradientXActivation(probability, layer).attribute(ids, target=token)
            else:
                found = LayerIntegratedGradients(probability, layer).attribute(
                    ids, target=token, n_steps=50, internal_batch_size=50
                )
            rows[k, : ids.shape[1]] = found[0].sum(-1).detach().numpy()
        return rows

    return timed(run, rounds)


def timed(run, rounds: int) -> tuple:
    found = run()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        found = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), found


def side(args) -> None:
    """One side's measurement, printed as JSON (peak RSS in MiB)."""
    prompt, generated = json.loads(args.tokens)
    if args.side == "ours":
        seconds, matrix = ours(args.model, prompt, generated, args.method, args.rounds)
    else:
        seconds, matrix = captum(args.size, prompt, generated, args.method, args.rounds)
    np.save(args.matrix, matrix)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def measure(args, path: Path, tokens: str, method: str, which: str, folder: Path) -> tuple[dict, np.ndarray]:
    matrix = folder / f"{which}.npy"
    command = [sys.executable, __file__, "--side", which, "--model", str(path), "--tokens", tokens]
    command += [
        "--method",
        method,
        "--size",
        args.size,
        "--rounds",
        str(args.rounds),
        "--matrix",
        str(matrix),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(matrix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--side", choices=("ours", "captum"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--matrix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return side(args)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, SIZES[args.size]["vocab_size"], args.prompt).tolist()
    generated = rng.integers(0, SIZES[args.size]["vocab_size"], args.new).tolist()
    tokens = json.dumps([prompt, generated])
    print(
        f"GPT-2 {args.size}, prompt {args.prompt}, {args.new} new tokens, {torch.get_num_threads()} threads"
    )
    print(
        "method                  ours s   Captum s   Captum/ours   ours MiB   Captum MiB   max |diff| / max"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export(model(args.size), path)
        for method in args.methods:
            (a, ma), (b, mb) = (
                measure(args, path, tokens, method, w, Path(folder)) for w in ("ours", "captum")
            )
            gap = (
                float(np.nanmax(np.abs(ma - mb)) / np.nanmax(np.abs(mb)))
                if method == "input_x_gradient"
                else float("nan")
            )
            print(f"{method:22} {a['seconds']:7.2f} {b['seconds']:10.2f} {b['seconds'] / a['seconds']:13.2f} "
                  f"{a['peak_mib']:10.0f} {b['peak_mib']:12.0f} {gap:18.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
