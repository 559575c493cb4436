"""Audio classifiers on a raw waveform ``[N, T]``, exported by torch.onnx (TorchScript's exporter, and
dynamo's for one spectrogram model) with a dynamic time axis, explained from the ONNX file alone: the
gradient of the top class against float64 torch autograd of the same module, at two lengths from
one Explainer (measured at most 6.4e-7 of the largest gradient).

A spectrogram model (torch.stft with a Hann window, ``center=True`` and torch's default reflect
padding, exported as a reflect Pad, or ``center=False``; power, a numpy mel filterbank MatMul,
``log(x + 1e-6)``, Conv1d, mean over time, Linear): ONNX infers no STFT output over a symbolic length,
so this needs :mod:`onnx_xai.graph.stft_shapes`, and the reflect Pad the rule of
:mod:`onnx_xai.graph.rules.pad`. A tiny random-init wav2vec2 classifier from transformers (its conv
feature extractor with group or layer norm, the convolutional positional embedding, two transformer
layers, mean pooling without an attention mask, the projector and the classifier): the gradient, and
Grad-CAM on the default target layer, the projector's output ``[N, T', 8]`` before the mean over time,
against a hand computation in float64 torch, its maps ``[N, T]``.
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

from ..graph.rules.test_spectral import mel_filterbank

transformers = pytest.importorskip("transformers")

LENGTHS = (1600, 2437)


class Spectrogram(nn.Module):
    """Waveform [N, T] -> |STFT|^2 (Hann) -> mel MatMul -> log(x + 1e-6) -> Conv1d -> mean -> Linear."""

    def __init__(self, center: bool, n_fft=256, hop=64, n_mels=16):
        super().__init__()
        torch.manual_seed(5)
        self.n_fft, self.hop, self.center = n_fft, hop, center
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("mel", torch.tensor(mel_filterbank(n_fft, n_mels, 8000), dtype=torch.float32))
        self.conv, self.fc = nn.Conv1d(n_mels, 8, 3, padding=1), nn.Linear(8, 4)

    def forward(self, x):
        spec = torch.stft(
            x, self.n_fft, self.hop, window=self.window, center=self.center, return_complex=False
        )  # [N, bins, frames, 2]; center=True pads by reflection, torch's default
        mel = torch.matmul(spec.pow(2).sum(-1).transpose(1, 2), self.mel)
        return self.fc(self.conv(torch.log(mel + 1e-6).transpose(1, 2)).mean(-1))


class Logits(nn.Module):
    """A transformers classifier's logits as the output."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).logits


def wav2vec2(norm: str) -> nn.Module:
    """A tiny random-init Wav2Vec2ForSequenceClassification (no download), in eval mode."""
    torch.manual_seed(7)
    config = transformers.Wav2Vec2Config(
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=3, classifier_proj_size=8,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
    )  # fmt: skip
    return Logits(transformers.Wav2Vec2ForSequenceClassification(config)).eval()


def export(net: nn.Module, path, dynamo: bool = False) -> onnx.ModelProto:
    """torch.onnx.export with the batch and the time axis dynamic (TorchScript's, or dynamo's)."""
    example = (torch.randn(2, LENGTHS[0]),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = {"x": {0: torch.export.Dim("N"), 1: torch.export.Dim("T", min=300)}}
            program = torch.onnx.export(net, example, dynamo=True, dynamic_shapes=shapes, input_names=["x"])
            program.save(str(path), external_data=False)
        else:
            torch.onnx.export(
                net, example, str(path), dynamo=False, opset_version=17, input_names=["x"],
                dynamic_axes={"x": {0: "N", 1: "T"}},
            )  # fmt: skip
    return onnx.load(str(path))


def waveform(length: int) -> np.ndarray:
    return np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)


def gradient_error(ex: onnx_xai.Explainer, net: nn.Module, x: np.ndarray) -> float:
    """The explained gradient's largest deviation from float64 autograd, relative to its largest
    entry (the same classes explained)."""
    result = ex.explain(x, "gradient")
    xd = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits = copy.deepcopy(net).double()(xd)
    assert list(result.targets) == logits.argmax(1).tolist()
    logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
    want = xd.grad.numpy()
    assert result.raw.shape == x.shape and result.maps.shape == x.shape
    return float(np.abs(result.raw - want).max() / np.abs(want).max())


@pytest.mark.parametrize(
    "center, dynamo", [(True, False), (False, False), (True, True)], ids=["center", "no_center", "dynamo"]
)
def test_a_spectrogram_classifier_with_a_dynamic_time_axis(tmp_path, center, dynamo):
    net = Spectrogram(center).eval()
    model = export(net, tmp_path / "spectrogram.onnx", dynamo)
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_param
    modes = {
        onnx.helper.get_attribute_value(a)
        for n in model.graph.node
        if n.op_type == "Pad"
        for a in n.attribute
    }
    assert "STFT" in {n.op_type for n in model.graph.node} and modes == ({b"reflect"} if center else set())
    ex = onnx_xai.Explainer(str(tmp_path / "spectrogram.onnx"))
    assert (ex.kind, ex.layout) == ("signal", "NT")
    for length in LENGTHS:
        error = gradient_error(ex, net, waveform(length))
        assert error < 1e-5, f"{length} samples: off float64 autograd by {error:.2e}"


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_a_tiny_wav2vec2_classifier(tmp_path, norm):
    net = wav2vec2(norm)
    export(net, tmp_path / "wav2vec2.onnx")
    ex = onnx_xai.Explainer(str(tmp_path / "wav2vec2.onnx"))
    assert (ex.kind, ex.layout) == ("signal", "NT")
    for length in LENGTHS:
        x = waveform(length)
        error = gradient_error(ex, net, x)
        assert error < 1e-5, f"{length} samples: off float64 autograd by {error:.2e}"
        cam = ex.explain(x, "gradcam")
        want = hand_gradcam(net, x, cam.targets)
        assert cam.raw.shape == want.shape and cam.maps.shape == x.shape
        assert np.abs(cam.raw - want).max() <= 1e-5 * want.max()


def hand_gradcam(net: Logits, x: np.ndarray, targets) -> np.ndarray:
    """Grad-CAM on the projector's output A [N, T', C] in float64 torch: ReLU(sum_c mean_t(dA) A)."""
    reference = copy.deepcopy(net).double()
    kept = []

    def keep(module, args, out):
        out.retain_grad()
        kept.append(out)

    reference.net.projector.register_forward_hook(keep)
    logits = reference(torch.tensor(x, dtype=torch.float64))
    logits[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    a = kept[0]
    return torch.relu((a.grad.mean(1, keepdim=True) * a).sum(-1)).detach().numpy()
