"""Recurrent models exported from PyTorch, explained end to end: ``Explainer(path).explain(x,
"gradient").raw`` against float64 autograd of each sample's chosen class logit (the module copied
and made ``.double()``), relative L2 at most 1e-4 (the gradient method's standard).

The models: a Conv1d -> LSTM classifier on [N, C, T] (the last step of Y), a 2-layer bidirectional
GRU (Y averaged over time), a tanh ``nn.RNN`` (its final hidden state, Y_h), a GRU encoder whose
final state starts an LSTM decoder (initial_h and initial_c on the path), each with
``batch_first`` True and False, exported by TorchScript (``dynamo=False``, opset 17) and by the
dynamo exporter where it writes the recurrent op (it unrolls ``nn.RNN`` into MatMul and Tanh, which
the other rules differentiate, so that export is not a test of the RNN rule and is left out); the
TorchScript exports with ``batch_first`` also on OpenVINO, which runs the forward's recurrent op and
the rewrite's Scans itself.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import onnx_xai

TOLERANCE = 1e-4


class ConvLSTM(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.conv = nn.Conv1d(3, 8, 3, padding=1)
        self.lstm = nn.LSTM(8, 16, batch_first=batch_first)
        self.head = nn.Linear(16, 4)

    def forward(self, x):  # [N, C, T]
        h = torch.relu(self.conv(x))
        h = h.transpose(1, 2) if self.batch_first else h.permute(2, 0, 1)
        y, _ = self.lstm(h)
        return self.head(y[:, -1] if self.batch_first else y[-1])


class BiGRU(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.gru = nn.GRU(5, 8, num_layers=2, bidirectional=True, batch_first=batch_first)
        self.head = nn.Linear(16, 3)

    def forward(self, x):  # [N, T, F]
        y, _ = self.gru(x if self.batch_first else x.transpose(0, 1))
        return self.head(y.mean(1 if self.batch_first else 0))


class TanhRNN(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.rnn = nn.RNN(5, 8, nonlinearity="tanh", batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # [N, T, F]
        _, h = self.rnn(x if self.batch_first else x.transpose(0, 1))
        return self.head(h[-1])


class EncoderDecoder(nn.Module):
    """A GRU's final state as the initial (h, c) of an LSTM reading the sequence backwards: the
    gradient reaches the input through initial_h and initial_c too."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.encoder = nn.GRU(5, 8, batch_first=batch_first)
        self.decoder = nn.LSTM(5, 8, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # [N, T, F]
        x = x if self.batch_first else x.transpose(0, 1)
        _, h = self.encoder(x)
        _, (h, _) = self.decoder(torch.flip(x, [1 if self.batch_first else 0]), (h, torch.tanh(h)))
        return self.head(h[-1])


SHAPES = {ConvLSTM: (2, 3, 12), BiGRU: (3, 10, 5), TanhRNN: (2, 9, 5), EncoderDecoder: (2, 7, 5)}
OPS = {ConvLSTM: "LSTM", BiGRU: "GRU", TanhRNN: "RNN", EncoderDecoder: "LSTM"}


def export(net: nn.Module, x: torch.Tensor, path, dynamo: bool) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                net, (x,), dynamo=True, verbose=False, dynamic_shapes={"x": {0: torch.export.Dim("N")}}
            )
            program.save(str(path))
        else:
            torch.onnx.export(
                net, x, str(path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            )  # fmt: skip
    return onnx.load(str(path))


def reference_gradient(net: nn.Module, x: np.ndarray, targets) -> np.ndarray:
    """d logit[target] / dx per sample, in float64."""
    exact = copy.deepcopy(net).double()
    xd = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits = exact(xd)
    logits[torch.arange(len(x)), torch.as_tensor(np.asarray(targets))].sum().backward()
    assert xd.grad is not None
    return xd.grad.numpy()


PARAMS = [
    pytest.param(model, batch_first, dynamo, "onnxruntime", id=f"{model.__name__}-{layout}-{export}")
    for model in (ConvLSTM, BiGRU, TanhRNN, EncoderDecoder)
    for batch_first, layout in ((True, "bf"), (False, "tf"))
    for dynamo, export in ((False, "ts"), (True, "dynamo"))
    if not (dynamo and (model in (TanhRNN, EncoderDecoder) or not batch_first))
] + [
    pytest.param(model, True, False, "openvino", id=f"{model.__name__}-bf-ts-openvino")
    for model in (ConvLSTM, BiGRU, TanhRNN)
]


@pytest.mark.parametrize("model, batch_first, dynamo, backend", PARAMS)
def test_gradient_matches_float64_autograd(tmp_path, model, batch_first, dynamo, backend):
    torch.manual_seed(0)
    net = model(batch_first).eval()
    x = np.random.default_rng(1).standard_normal(SHAPES[model]).astype(np.float32)
    onnx_model = export(net, torch.from_numpy(x), tmp_path / "model.onnx", dynamo)
    assert OPS[model] in {n.op_type for n in onnx_model.graph.node}
    result = onnx_xai.Explainer(tmp_path / "model.onnx", backend=backend).explain(x, "gradient")
    expected = reference_gradient(net, x, result.targets)
    error = np.linalg.norm(result.raw - expected) / np.linalg.norm(expected)
    assert result.raw.shape == x.shape and error <= TOLERANCE, f"relative L2 error {error:.2e}"
