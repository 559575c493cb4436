"""Which lowering of a strided depthwise Conv's input gradient is fastest on onnxruntime CPU?

Three exact lowerings of dx = ConvTranspose(dy, W, stride s, group C), checked against each other and
timed on the strided depthwise shapes of EfficientNet-Lite0 (TF-style asymmetric padding):
- ``convtranspose``: the op itself (what the Conv rule emits for strides > 1);
- ``zero-insert``: dy upsampled with s-1 zeros between samples, then a stride-1 depthwise Conv with
  the flipped kernel (the stride-1 lowering, on a 4x larger input);
- ``polyphase``: one depthwise Conv with s*s phase sub-kernels per channel on the small dy, then
  DepthToSpace to interleave the phases, then a crop.

    python tools/bench_depthwise.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SHAPES = [(96, 112, 3), (144, 56, 5), (240, 28, 3), (672, 14, 5)]  # channels, input size, kernel
STRIDE = 2


def _session(nodes, inits, shape):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("dy", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("dx", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 2, 3
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def lowerings(c: int, size: int, k: int, s: int = STRIDE):
    w = np.random.default_rng(0).standard_normal((c, 1, k, k)).astype(np.float32)
    pb, pe = (k - 2) // 2, k - 1 - (k - 2) // 2 - 1
    out = (size + pb + pe - k) // s + 1
    surplus = (out - 1) * s + k - pb - size
    shape = [1, c, out, out]
    crop = {"st": np.array([pb, pb]), "en": np.array([pb + size] * 2), "ax": np.array([2, 3])}
    convt = _session(
        [
            helper.make_node(
                "ConvTranspose",
                ["dy", "w"],
                ["dx"],
                group=c,
                strides=[s, s],
                kernel_shape=[k, k],
                pads=[pb, pb, max(surplus, 0), max(surplus, 0)],
                output_padding=[-surplus] * 2 if surplus < 0 else None,
            )
        ],
        {"w": w},
        shape,
    )
    length = out * s
    begin, end = k - 1 - pb, size + k - 1 - length - (k - 1 - pb)
    zero = _session(
        [
            helper.make_node("Unsqueeze", ["dy", "ax35"], ["u"]),
            helper.make_node("Pad", ["u", "pz"], ["p"]),
            helper.make_node("Reshape", ["p", "sh"], ["z"]),
            helper.make_node("Slice", ["z", "zs", "ze", "ax"], ["zc"]),
            helper.make_node(
                "Conv",
                ["zc", "wf"],
                ["dx"],
                group=c,
                kernel_shape=[k, k],
                pads=[begin, begin, max(end, 0), max(end, 0)],
            ),
        ],
        {
            "wf": w[:, :, ::-1, ::-1],
            "ax35": np.array([3, 5]),
            "pz": np.array([0] * 9 + [s - 1, 0, s - 1]),
            "sh": np.array([0, c, length, length]),
            "zs": np.array([0, 0]),
            "ze": np.array([length + min(end, 0)] * 2),
            "ax": np.array([2, 3]),
        },
        shape,
    )
    m = -(-k // s)
    padded = np.zeros((c, 1, m * s, m * s), np.float32)
    padded[:, :, :k, :k] = w
    phases = padded.reshape(c, 1, m, s, m, s).transpose(0, 3, 5, 1, 2, 4)[..., ::-1, ::-1]
    q = -(-(pb + size) // s)
    poly = _session(
        [
            helper.make_node(
                "Conv",
                ["dy", "wp"],
                ["z"],
                group=c,
                kernel_shape=[m, m],
                pads=[m - 1, m - 1, q - out, q - out],
            ),
            helper.make_node("DepthToSpace", ["z"], ["zz"], blocksize=s, mode="CRD"),
            helper.make_node("Slice", ["zz", "st", "en", "ax"], ["dx"]),
        ],
        {"wp": phases.reshape(c * s * s, 1, m, m), **crop},
        shape,
    )
    return shape, {"convtranspose": convt, "zero-insert": zero, "polyphase": poly}


def main(rounds: int = 30) -> None:
    print("\nstrided depthwise input gradient (median ms, 2 threads)")
    totals: dict[str, float] = {}
    for c, size, k in SHAPES:
        shape, sessions = lowerings(c, size, k)
        dy = {"dy": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
        results = {name: s.run(None, dy)[0] for name, s in sessions.items()}
        ref = results["convtranspose"]
        assert all(np.allclose(r, ref, atol=1e-4) for r in results.values()), "lowerings disagree"
        row = []
        for name, s in sessions.items():
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                s.run(None, dy)
                times.append((time.perf_counter() - start) * 1000)
            med = float(np.median(times))
            totals[name] = totals.get(name, 0.0) + med
            row.append(f"{name} {med:6.2f}")
        print(f"  C={c:4d} {size:3d}x{size:<3d} k={k}: " + "  ".join(row))
    print("  total: " + "  ".join(f"{k} {v:.2f}" for k, v in totals.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    main(parser.parse_args().rounds)
