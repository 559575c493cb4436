"""STFT's output shape (:mod:`onnx_xai.graph.stft_shapes`) where ONNX's inference gives none (a signal
length known at run time only) or a wrong one (``onesided`` left out, which ONNX reads as 0 and the
spec, onnxruntime and the reference evaluator as 1): ``[N, frames, bins, 2]``, the frames counted
where the length is known, and the ops after it keep their ranks."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from onnx_xai.graph.info import GraphInfo

I64 = np.int64


def model(length, onesided=None, frame=None, window=True) -> onnx.ModelProto:
    """Waveform [N, length] -> Unsqueeze -> STFT (hop 4) -> ReduceSum over the real and imaginary."""
    inits = {"hop": np.array(4, I64), "axes": np.array([2], I64), "last": np.array([3], I64)}
    inits |= {"w": np.hanning(16)} if window else {}
    inits |= {"L": np.array(frame, I64)} if frame is not None else {}
    stft = ["s", "hop", "w" if window else "", "L" if frame is not None else ""]
    while not stft[-1]:
        stft.pop()
    attrs = {} if onesided is None else {"onesided": onesided}
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes"], ["s"]),
        helper.make_node("STFT", stft, ["spec"], **attrs),
        helper.make_node("ReduceSum", ["spec", "last"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "stft",
        [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, ["N", length])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize(
    "length, onesided, frame, window, want",
    [
        ("T", 1, None, True, ("N", None, 9, 2)),  # ONNX infers nothing at all here
        ("T", None, None, True, ("N", None, 9, 2)),  # onesided left out: one-sided
        ("T", 0, None, True, ("N", None, 16, 2)),
        ("T", None, 10, False, ("N", None, 6, 2)),  # frame_length without a window
        (40, None, None, True, ("N", 7, 9, 2)),  # ONNX's own inference would give 16 bins
        (40, 0, None, True, ("N", 7, 16, 2)),
    ],
)
def test_stft_output_shape(length, onesided, frame, window, want):
    m = model(length, onesided, frame, window)
    info = GraphInfo(m)
    assert like(info.shape("spec"), want) and like(info.shape("y"), want[:3])
    x = np.random.default_rng(0).standard_normal((2, 40 if length == "T" else length))
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["y"], {"x": x})[0].shape
    assert all(w is None or w == "N" or w == g for w, g in zip(want, got)) and got[2] == want[2]


def like(shape, want) -> bool:
    """``shape`` is ``want``, a dimension ``None`` in ``want`` any that is not static."""
    return (
        shape is not None
        and len(shape) == len(want)
        and all(g == w or (w is None and not isinstance(g, int)) for g, w in zip(shape, want))
    )
