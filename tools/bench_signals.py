"""Our explanations of signal models against Captum on the same torch models, in one process.

Two random-init classifiers on ``[N, C, T]`` signals (12 channels, ``--length`` 1,000 steps by
default), exported by torch.onnx: a 1-D CNN (four Conv1d-BatchNorm-ReLU blocks, global average pool,
linear) and a Conv1d -> LSTM (``batch_first``, hidden 64) -> linear on the last step. For batches of
``--batch`` (1 and 32 by default): ``Explainer.explain(x, "gradient")`` against Captum's ``Saliency``
(``abs=False``) and ``explain(x, "integrated_gradients", n_steps=50)`` against Captum's
``IntegratedGradients`` (50 steps, gauss-legendre, ``internal_batch_size`` the batch x 50, capped at
512 copies), both float32 on CPU, torch's and onnxruntime's threads at the machine's cores. Rounds
interleave ours and Captum's; prints the median of each, the ratio Captum / ours (above 1: ours is
faster) and the largest difference of the attributions relative to their largest value.

    python tools/bench_signals.py [--batch 1 32] [--length 1000] [--rounds 3] [--models cnn lstm]
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

CHANNELS, CLASSES = 12, 5


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        widths = [CHANNELS, 32, 64, 64, 128]
        self.blocks = torch.nn.Sequential(
            *[
                torch.nn.Sequential(
                    torch.nn.Conv1d(a, b, 7, stride=2 if k else 1, padding=3),
                    torch.nn.BatchNorm1d(b),
                    torch.nn.ReLU(),
                )
                for k, (a, b) in enumerate(zip(widths, widths[1:]))
            ]
        )
        self.head = torch.nn.Linear(widths[-1], CLASSES)

    def forward(self, x):
        return self.head(self.blocks(x).mean(-1))


class ConvLstm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(CHANNELS, 32, 5, padding=2)
        self.lstm = torch.nn.LSTM(32, 64, batch_first=True)
        self.head = torch.nn.Linear(64, CLASSES)

    def forward(self, x):
        states, _ = self.lstm(torch.relu(self.conv(x)).transpose(1, 2))
        return self.head(states[:, -1])


def exported(name: str, length: int, folder: Path) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    net = {"cnn": Cnn, "lstm": ConvLstm}[name]().eval()
    path = str(folder / f"{name}.onnx")
    torch.onnx.export(
        net, (torch.randn(1, CHANNELS, length),), path, dynamo=False, input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )  # fmt: skip
    return path, net


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def compare(ex, net, x: np.ndarray, rounds: int) -> list[tuple]:
    from captum.attr import IntegratedGradients, Saliency

    tx, target = torch.as_tensor(x), 1
    internal = min(len(x) * 50, 512)
    pairs = (
        ("gradient", lambda: ex.explain(x, "gradient", target).raw,
         lambda: Saliency(net).attribute(tx, target=target, abs=False).numpy()),
        ("integrated_gradients", lambda: ex.explain(x, "integrated_gradients", target, n_steps=50).raw,
         lambda: IntegratedGradients(net).attribute(tx, target=target, n_steps=50,
                                                    internal_batch_size=internal).detach().numpy()),
    )  # fmt: skip
    rows = []
    for name, ours, theirs in pairs:
        ours(), theirs()  # warm: graphs built, sessions and torch's kernels ready
        ours_t, theirs_t = [], []
        for _ in range(rounds):
            t, a = timed(ours)
            ours_t.append(t)
            t, b = timed(theirs)
            theirs_t.append(t)
        gap = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
        rows.append((name, statistics.median(ours_t), statistics.median(theirs_t), gap))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=("cnn", "lstm"), default=["cnn", "lstm"])
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"T = {args.length}, {CHANNELS} channels, {threads} threads, onnxruntime and torch float32 on CPU")
    print("model  method                batch   ours s   Captum s   Captum/ours   max |diff| / max")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            path, net = exported(name, args.length, Path(folder))
            ex = onnx_xai.Explainer(path, threads=threads)
            for batch in args.batch:
                x = (
                    np.random.default_rng(batch)
                    .standard_normal((batch, CHANNELS, args.length))
                    .astype(np.float32)
                )
                for method, ours, theirs, gap in compare(ex, net, x, args.rounds):
                    ratio = theirs / ours
                    print(
                        f"{name:6} {method:21} {batch:5} {ours:8.3f} {theirs:10.3f} {ratio:13.2f} {gap:18.1e}"
                    )


if __name__ == "__main__":
    main()
