"""The linear ops of audio front ends (DFT, STFT, CumSum): each rule against onnxruntime's own kernel.

onnxruntime's CPU kernels of DFT, STFT, CumSum and the window ops take double (MelWeightMatrix gives
float: it is cast), so every case runs in float64 on onnxruntime itself (the reference evaluator only
for the one STFT form onnxruntime cannot run), at the opsets of its form (DFT's ``axis`` attribute at
17 and 18, its ``axis`` input at 20 and 21; STFT at 17 to 21; CumSum from 11): central differences of
the kernel along a random direction (step 1e-6; the ops are linear, so only rounding remains: measured
at most 1.7e-9, and 4.5e-8 for IRFFT, whose double kernel in onnxruntime 1.32 is itself ~3e-8 off the
exact transform that the adjoint's RFFT computes) must meet the rewritten graph's gradient within 1e-6
relative, and the same rewrite in float32 on onnxruntime within 2e-4 of it (measured at most 6.8e-6).
The backward holds standard ai.onnx ops valid at the model's opset; a form a rule does not handle is
refused in one line naming the node, the op and the problem. End to end, a waveform classifier with
its spectrogram inside, exported by both torch exporters, against float64 torch autograd.
"""

from __future__ import annotations

import copy
import warnings
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from torch import nn

import onnx_xai
from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.info import GraphInfo
from onnx_xai.graph.paths import path_nodes
from onnx_xai.support.errors import UnsupportedModelError

from ...reference_runtime import reference
from .harness import Case, build, node

I64 = np.int64
R = np.random.default_rng(11)
WINDOW = R.uniform(0.2, 1.0, 8)
OPSETS = (11, 13, 17, 18, 20, 21)


def case(name, nodes, wrt, consts=None, lo=17, hi=19):
    """A case of one op form: ``lo``/``hi`` bound the opsets it is checked at (DFT's axis attribute
    until 19, its input from 20)."""
    return Case(name, nodes, wrt, consts or {}, min_opset=lo, max_opset=hi)


def scalar(v):
    return np.array(v, I64)


def dft(name, shape, n=None, axis_input=None, form20=False, **attrs):
    """A DFT case; ``n``: dft_length; ``axis_input``: the opset-20 axis input. Opset-20 cases
    (``axis_input`` or ``form20``) are checked at 20 and 21, the others at 17 and 18."""
    inputs, consts = ["x", "n" if n is not None else ""], {} if n is None else {"n": scalar(n)}
    if axis_input is not None:
        inputs.append("a")
        consts["a"] = scalar(axis_input)
    lo, hi = (20, 21) if axis_input is not None or form20 else (17, 19)
    inputs = inputs if inputs[-1] else inputs[:1]
    return case(name, [node("DFT", inputs, **attrs)], {"x": shape}, consts, lo, hi)


def stft(name, shape, hop=3, window=True, frame=None, onesided=1):
    """An STFT case; ``window``: the 8-tap window constant, ``frame``: frame_length. ``onesided`` is
    always written: ONNX 1.23's shape inference reads its default as 0 (the spec, onnxruntime and the
    reference evaluator: 1), so the declared output would not be the one computed."""
    consts = {"hop": scalar(hop)} | ({"w": WINDOW} if window else {})
    consts |= {} if frame is None else {"L": scalar(frame)}
    inputs = ["s", "hop", "w" if window else "", "L" if frame is not None else ""]
    while not inputs[-1]:
        inputs.pop()
    return case(name, [node("STFT", inputs, onesided=onesided)], {"s": shape}, consts, 17, 21)


def cumsum(name, axis, **attrs):
    return case(name, [node("CumSum", ["x", "axis"], **attrs)], {"x": (2, 5, 3)}, {"axis": axis}, 11, 21)


def front_end(name, window_op, periodic=1):
    """Waveform [2, 40] -> window op -> STFT -> power -> MelWeightMatrix -> log -> ReduceLogSumExp:
    the window and the filterbank depend on no input, so they stay off the path."""
    nodes = [
        node("Unsqueeze", ["x"], "s", axes=[2]),
        node(window_op, ["size"], "w", output_datatype="dtype", periodic=periodic),
        node("STFT", ["s", "hop", "w"], "spec", onesided=1),
        node("Mul", ["spec", "spec"], "sq"),
        node("ReduceSum", ["sq"], "power", axes=[3], keepdims=0),
        node("MelWeightMatrix", ["bins", "size", "rate", "lo", "hi"], "mel_f"),  # float only on onnxruntime
        node("Cast", ["mel_f"], "mel_w", to="dtype"),
        node("MatMul", ["power", "mel_w"], "mel"),
        node("Add", ["mel", "tiny"], "shifted"),
        node("Log", ["shifted"], "log_mel"),
        node("ReduceLogSumExp", ["log_mel"], axes=[1], keepdims=0),
    ]
    consts = {"size": scalar(16), "hop": scalar(4), "bins": scalar(5), "rate": scalar(8000)}
    consts |= {"lo": np.array(50.0, np.float32), "hi": np.array(4000.0, np.float32), "tiny": np.array(1e-6)}
    return case(name, nodes, {"x": (2, 40)}, consts, 17, 21)


CASES = [
    dft("dft_real", (2, 6, 1), axis=1),
    dft("dft_complex", (2, 6, 2), axis=1),
    dft("dft_default_axis", (2, 5, 2)),
    dft("dft_real_onesided", (2, 6, 1), axis=1, onesided=1),
    dft("dft_real_onesided_odd", (2, 7, 1), axis=1, onesided=1),
    dft("dft_inverse_complex", (2, 6, 2), axis=1, inverse=1),
    dft("dft_inverse_real", (2, 5, 1), axis=1, inverse=1),
    dft("dft_irfft", (2, 4, 2), axis=1, inverse=1, onesided=1),
    dft("dft_irfft_odd_length", (2, 4, 2), n=7, axis=1, inverse=1, onesided=1),
    dft("dft_length_pads", (2, 6, 2), n=9, axis=1),
    dft("dft_length_cuts", (2, 6, 1), n=4, axis=1),
    dft("dft_inverse_length_pads", (2, 5, 2), n=8, axis=1, inverse=1),
    dft("dft_onesided_length_pads", (2, 6, 1), n=9, axis=1, onesided=1),
    dft("dft_onesided_length_cuts", (2, 6, 1), n=5, axis=1, onesided=1),
    dft("dft_rank4_axis2", (2, 3, 5, 2), axis=2),
    dft("dft_rank4_axis_minus3", (2, 4, 3, 1), axis=-3, onesided=1),
    dft("dft_axis0", (5, 3, 2), axis=0),
    dft("dft20_default_axis", (2, 3, 6, 2), form20=True),
    dft("dft20_default_axis_onesided", (2, 3, 6, 1), form20=True, onesided=1),
    dft("dft20_axis1_onesided", (2, 5, 3, 1), axis_input=1, onesided=1),
    dft("dft20_axis_minus3_complex", (2, 5, 3, 2), axis_input=-3),
    dft("dft20_inverse_length_cuts", (2, 6, 2), n=4, axis_input=1, inverse=1),
    dft("dft20_irfft_axis0", (4, 3, 2), axis_input=0, inverse=1, onesided=1),
    stft("stft_window_onesided", (2, 23, 1)),
    stft("stft_window_full", (2, 23, 1), onesided=0),
    stft("stft_complex_full", (2, 23, 2), onesided=0),
    stft("stft_complex_onesided_truncates", (2, 23, 2)),  # onnxruntime and the reference: the first bins
    stft("stft_window_and_length", (2, 20, 1), frame=8),
    stft("stft_length_no_window", (2, 23, 1), window=False, frame=7),
    stft("stft_gaps_between_frames", (2, 30, 1), hop=10),
    stft("stft_signal_without_last_axis", (2, 23)),  # TorchScript's export feeds [batch, length]
    cumsum("cumsum", scalar(1)),
    cumsum("cumsum_exclusive", scalar(2), exclusive=1),
    cumsum("cumsum_reverse", scalar(-1), reverse=1),
    cumsum("cumsum_exclusive_reverse", np.array(0, np.int32), exclusive=1, reverse=1),
    front_end("front_end_hann", "HannWindow"),
    front_end("front_end_hamming", "HammingWindow", periodic=0),
    front_end("front_end_blackman", "BlackmanWindow"),
]
# frame_length = the signal's length (no window, no frame_length): onnxruntime 1.32 fails to run it
WHOLE_SIGNAL = stft("stft_whole_signal", (2, 9, 1), window=False)


def opsets(c: Case) -> list[int]:
    return [o for o in OPSETS if c.min_opset <= o <= c.max_opset]


def session(model: onnx.ModelProto):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def standard_backward(model: onnx.ModelProto, opset: int) -> set[str]:
    """The backward's op types, each a standard op at ``opset`` (get_schema raises otherwise)."""
    ops = {n.op_type for n in model.graph.node if n.name.startswith("xai/")}
    for n in model.graph.node:
        if n.name.startswith("xai/"):
            assert n.domain in ("", "ai.onnx"), f"the backward uses {n.domain} {n.op_type}"
            assert onnx.defs.get_schema(n.op_type, opset, "").since_version <= opset
    return ops


def measure(c: Case, opset: int, runner=session, model=None, sizes=None, checked=True) -> dict:
    """Check the case at ``opset`` (the model as built, or ``model``; inputs of ``sizes``): float64
    central differences of the forward kernel against the rule, and the float32 rewrite against the
    float64 one (on onnxruntime); returns both errors. ``checked``: pass the rewrite to ONNX's full
    checker (not where ONNX infers no STFT output shape, which leaves the seed input without one)."""
    rng = np.random.default_rng(zlib.crc32(f"{c.name}{opset}".encode()))
    m64 = model or build(c, opset, np.float64)
    g64 = vjp_model(m64, "y", list(c.wrt))
    if checked:
        onnx.checker.check_model(g64, full_check=True)
    standard_backward(g64, opset)
    xs = {n: rng.uniform(-2, 2, size=s) for n, s in (sizes or c.wrt).items()}
    forward, names = runner(m64), [f"xai_grad/{n}" for n in c.wrt]
    y = forward.run(["y"], xs)[0]
    ybar = rng.standard_normal(y.shape)
    grads = runner(g64).run(names, {**xs, "xai_seed": ybar})
    assert all(g.shape == xs[n].shape for n, g in zip(c.wrt, grads)), c.name
    t, step = {n: rng.standard_normal(x.shape) for n, x in xs.items()}, 1e-6
    plus, minus = (forward.run(["y"], {n: x + s * step * t[n] for n, x in xs.items()})[0] for s in (1, -1))
    numeric = float(np.sum(ybar * (plus - minus)) / (2 * step))
    analytic = sum(float(np.sum(g * t[n])) for n, g in zip(c.wrt, grads))
    fd64 = abs(numeric - analytic) / max(1.0, abs(numeric))
    assert fd64 <= 1e-6, f"{c.name} @ {opset}: differences {numeric:.12g}, rule {analytic:.12g}"
    if runner is not session:
        return {"fd64": fd64}
    m32 = model_as_float32(m64) if model is not None else build(c, opset, np.float32)
    feeds = {n: x.astype(np.float32) for n, x in xs.items()} | {"xai_seed": ybar.astype(np.float32)}
    got = session(vjp_model(m32, "y", list(c.wrt))).run(names, feeds)
    vs64 = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-6) for a, b in zip(got, grads))
    assert vs64 < 2e-4, f"{c.name} @ {opset}: float32 gradient off by {vs64:.2e}"
    return {"fd64": fd64, "vs64": vs64}


def model_as_float32(m64: onnx.ModelProto) -> onnx.ModelProto:
    """A float64 model of the tests' builds, in float32 (inputs, output, float constants)."""
    m = onnx.ModelProto()
    m.CopyFrom(m64)
    for v in list(m.graph.input) + list(m.graph.output):
        if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            v.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for init in m.graph.initializer:
        if init.data_type == onnx.TensorProto.DOUBLE:
            array = onnx.numpy_helper.to_array(init).astype(np.float32)
            init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    return m


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_rule(c):
    for opset in opsets(c):
        measure(c, opset)


def test_stft_of_the_whole_signal_on_the_reference():
    """No window and no frame_length: one frame of the whole signal; onnxruntime 1.32 cannot run
    that STFT (it fails sizing its output), so the float64 check runs on the ONNX reference."""
    with pytest.raises(Exception, match="STFT"):
        session(build(WHOLE_SIGNAL, 17, np.float64)).run(None, {"s": np.zeros((2, 9, 1))})
    for opset in opsets(WHOLE_SIGNAL):
        measure(WHOLE_SIGNAL, opset, runner=reference, checked=False)


def dynamic(c: Case, opset: int, axis: int) -> onnx.ModelProto:
    """The case's float64 model with input dimension ``axis`` and the output's dimensions symbolic."""
    m = build(c, opset, np.float64)
    m.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = "T"
    for i, dim in enumerate(m.graph.output[0].type.tensor_type.shape.dim):
        dim.dim_param = f"y{i}"
    return m


@pytest.mark.parametrize(
    "c, axis",
    [
        (dft("dft_onesided_dynamic", (2, 6, 1), axis=1, onesided=1), 1),
        (dft("dft_complex_dynamic", (2, 6, 2), axis=1), 1),
        (stft("stft_dynamic", (2, 23, 1)), 1),
        (stft("stft_dynamic_no_last_axis", (2, 23)), 1),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_a_length_known_at_run_time_only(c, axis):
    """A DFT or STFT over a size known at run time only: one rewrite serves several lengths (the
    one-sided adjoint pads to the size read at run time; the frames counted at run time). ONNX 1.23
    infers no STFT output at all over a symbolic length (not even its rank)."""
    for opset in (opsets(c)[0], opsets(c)[-1]):
        model = dynamic(c, opset, axis)
        for length in (c.wrt[next(iter(c.wrt))][axis], 29):
            shape = list(c.wrt[next(iter(c.wrt))])
            shape[axis] = length
            sizes = {n: tuple(shape) for n in c.wrt}
            measure(c, opset, model=model, sizes=sizes, checked=c.nodes[0][0] != "STFT")


def test_windows_and_filterbanks_stay_off_the_path():
    """HannWindow, HammingWindow, BlackmanWindow and MelWeightMatrix depend on no input: no rule is
    asked of them, and the rewrite refers to the window by name, never a copy."""
    for c in CASES[-3:]:
        model = build(c, 18, np.float32)
        on_path = {n.op_type for n in path_nodes(GraphInfo(model), ["x"], "y")}
        assert on_path == {"Unsqueeze", "STFT", "Mul", "ReduceSum", "MatMul", "Add", "Log", "ReduceLogSumExp"}
    windowed = next(c for c in CASES if c.name == "stft_window_onesided")
    rewritten = vjp_model(build(windowed, 18, np.float32), "y", ["s"])
    assert any("w" in n.input for n in rewritten.graph.node if n.name.startswith("xai/"))
    assert [i.name for i in rewritten.graph.initializer].count("w") == 1
    for init in rewritten.graph.initializer:
        assert init.name == "w" or onnx.numpy_helper.to_array(init).shape != WINDOW.shape


def as_input(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The model with the int64 constant ``name`` made a graph input (known at run time only)."""
    kept = [i for i in model.graph.initializer if i.name != name]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, []))
    return model


REFUSED = [
    (stft("window_input", (2, 23, 1)), {"w": (8,)}, "", 17, "window depends on the input"),
    (stft("hop_input", (2, 23, 1)), {}, "hop", 17, "frame_step not known before run time"),
    (stft("length_input", (2, 23, 1), frame=8), {}, "L", 17, "frame_length not known before run time"),
    (dft("n_input", (2, 6, 2), n=6, axis=1), {}, "n", 17, "dft_length not known before run time"),
    (dft("axis_input", (2, 6, 2), axis_input=1), {}, "a", 20, "axis not known before run time"),
    (
        dft("irfft_bins", (2, 6, 2), n=6, axis=1, inverse=1, onesided=1),
        {},
        "",
        17,
        "inverse one-sided DFT of 6 bins, not dft_length // 2 + 1 = 4",
    ),
]


@pytest.mark.parametrize("c, more, runtime, opset, problem", REFUSED, ids=[r[0].name for r in REFUSED])
def test_refused(c, more, runtime, opset, problem):
    c = Case(c.name, c.nodes, {**c.wrt, **more}, {k: v for k, v in c.consts.items() if k not in more})
    model = build(c, opset, np.float32)
    if runtime:
        model = as_input(model, runtime)
    with pytest.raises(UnsupportedModelError) as raised:
        vjp_model(model, "y", list(c.wrt))
    op_type = c.nodes[0][0]
    assert f"'{op_type}_0' ({op_type}): {problem}" in str(raised.value) and "\n" not in str(raised.value)


# -- end to end: a waveform classifier with its spectrogram inside, as torch exports it ---------------
def mel_filterbank(n_fft: int, n_mels: int, rate: int) -> np.ndarray:
    """HTK triangular mel filters, [n_fft // 2 + 1, n_mels]."""
    hz = np.linspace(0, rate / 2, n_fft // 2 + 1)
    mel = 2595 * np.log10(1 + np.array([0, rate / 2]) / 700)
    edges = 700 * (10 ** (np.linspace(mel[0], mel[1], n_mels + 2) / 2595) - 1)
    rise = (hz - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    fall = (edges[2:, None] - hz) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0, np.minimum(rise, fall)).T


class Audio(nn.Module):
    """Waveform [N, T] -> STFT (Hann) -> power -> mel MatMul -> log(x + 1e-6) -> Conv1d -> mean and
    logsumexp over time -> Linear."""

    def __init__(self, center: bool, n_fft=256, hop=64, n_mels=16):
        super().__init__()
        torch.manual_seed(3)
        self.n_fft, self.hop, self.center = n_fft, hop, center
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("mel", torch.tensor(mel_filterbank(n_fft, n_mels, 8000), dtype=torch.float32))
        self.conv, self.fc = nn.Conv1d(n_mels, 8, 3, padding=1), nn.Linear(8, 4)

    def forward(self, x):
        spec = torch.stft(
            x, self.n_fft, self.hop, window=self.window, center=self.center, pad_mode="constant",
            return_complex=False,
        )  # fmt: skip
        mel = torch.matmul(spec.pow(2).sum(-1).transpose(1, 2), self.mel)
        h = self.conv(torch.log(mel + 1e-6).transpose(1, 2))
        return self.fc(h.mean(-1) + 0.1 * torch.logsumexp(h, -1))


def export_audio(net: nn.Module, x: torch.Tensor, dynamo: bool, path) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = {"x": {0: torch.export.Dim("N")}}
            program = torch.onnx.export(net, (x,), dynamo=True, dynamic_shapes=shapes, input_names=["x"])
            program.save(str(path), external_data=False)
        else:
            axes = {"x": {0: "N"}}
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                              dynamic_axes=axes)  # fmt: skip
    return onnx.load(str(path))


@pytest.mark.parametrize("dynamo, center", [(False, True), (False, False), (True, True)])
def test_a_waveform_classifier_against_float64_autograd(tmp_path, dynamo, center):
    """The gradient of the top class's logit with respect to the waveform (STFT, the mel MatMul and
    ReduceLogSumExp on the path), against float64 torch autograd of the same module. Both exporters
    emit STFT (TorchScript's on the [N, T] signal itself), center=True a constant Pad before it."""
    net = Audio(center).eval()
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(4))
    model = export_audio(net, x, dynamo, tmp_path / "audio.onnx")
    assert {"STFT", "MatMul", "ReduceLogSumExp"} <= {n.op_type for n in model.graph.node}
    result = onnx_xai.Explainer(str(tmp_path / "audio.onnx")).explain(x.numpy(), "gradient")
    reference = copy.deepcopy(net).double()
    xd = x.double().requires_grad_(True)
    logits = reference(xd)
    assert list(result.targets) == logits.argmax(1).tolist()
    logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
    want = xd.grad.numpy()
    error = float(np.abs(result.raw - want).max() / np.abs(want).max())
    assert error < 1e-5, f"off float64 autograd by {error:.2e} of the largest gradient"  # measured 3.8e-7
