"""``onnx-xai explain`` on signal models: ``.npy`` (no batch axis, the model's layout), ``.csv`` (a row
per time step, a column per channel, a header kept as the channels' names) and ``.wav`` (16-bit PCM
scaled by 1/32768, resampled only with --sample-rate) explained into a JSON record and a figure per
file and method, the numbers those of the library on the same arrays; a wrong shape or an unreadable
file is one line with exit status 1 and nothing written; ``inspect`` says a signal model and its
layout."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

import onnx_xai
from onnx_xai.cli import main

from .test_signal_methods import Cnn

T = 120


def exported(tmp_path, form: str, shape: tuple) -> str:
    torch.manual_seed(3)
    net = Cnn(1 if form == "NT" else 3, form).eval()
    path = str(tmp_path / f"{form}.onnx")
    torch.onnx.export(
        net, (torch.randn(*shape),), path, dynamo=False, input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "N", len(shape) - (2 if form == "NTC" else 1): "T"}, "y": {0: "N"}},
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def ecg(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("ecg"), "NCT", (1, 3, T))


def test_npy_and_csv_are_explained_as_the_library_explains_them(ecg, tmp_path, capsys):
    rng = np.random.default_rng(0)
    beat = rng.standard_normal((3, T)).astype(np.float32)
    np.save(tmp_path / "beat.npy", beat)
    lines = ["I,II,V1"] + [",".join(f"{v:.6f}" for v in row) for row in beat.T]
    (tmp_path / "beat.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    files = [str(tmp_path / "beat.npy"), str(tmp_path / "beat.csv")]
    args = ["explain", ecg, *files, "--method", "gradcam", "integrated_gradients", "--out", str(out)]
    assert main([*args, "--baseline", "mean", "--steps", "16"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(f"{files[0]}: class ") and said[0].endswith(f"-> {out}/beat.npy.*")
    ex = onnx_xai.Explainer(ecg)
    want = ex.explain_many(beat[None], ["gradcam", "integrated_gradients"], baseline="mean", n_steps=16)
    for name in ("beat.npy", "beat.csv"):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["shape"] == [3, T] and record["layout"] == "CT"
        assert record["target"] == int(want["gradcam"].targets[0])
        for entry in record["explanations"]:
            r = want[entry["method"]]
            np.testing.assert_allclose(entry["raw"], r.raw[0], rtol=1e-4, atol=1e-5 * np.abs(r.raw).max())
            assert len(entry["over_time"]) == T
            picture = Image.open(out / f"{name}.{entry['method']}.png")
            assert picture.size[0] == 1000 and picture.size[1] > 300
    assert json.loads((out / "beat.csv.json").read_text())["channels"] == ["I", "II", "V1"]


def test_a_wav_is_scaled_by_1_over_32768_and_resampled_only_when_asked(tmp_path, capsys):
    model = exported(tmp_path, "NT", (1, 400))
    samples = (np.sin(np.arange(800) / 7) * 16384).astype(np.int16)
    wavfile.write(tmp_path / "clip.wav", 8000, samples)
    out = tmp_path / "out"
    args = ["explain", model, str(tmp_path / "clip.wav"), "--method", "gradient", "--out", str(out)]
    assert main(args) == 0
    record = json.loads((out / "clip.wav.json").read_text())
    assert record["sample_rate"] == 8000 and record["shape"] == [800]
    want = onnx_xai.Explainer(model).explain((samples / 32768.0).astype(np.float32)[None], "gradient")
    np.testing.assert_allclose(record["explanations"][0]["raw"], want.raw[0], rtol=1e-5, atol=1e-9)
    assert main([*args, "--sample-rate", "4000"]) == 0
    record = json.loads((out / "clip.wav.json").read_text())
    assert record["sample_rate"] == 4000 and record["shape"] == [400]
    capsys.readouterr()


@pytest.mark.parametrize(
    "values,message",
    [
        (
            np.zeros((1, 3, T), np.float32),
            "is [1, 3, 120] as read; this model takes one signal [channels, time]",
        ),
        (
            np.zeros((4, T), np.float32),
            "is [4, 120] as read; this model takes one signal [channels, time] of 3 x",
        ),
        (np.array([[np.nan] * T] * 3, np.float32), "holds values that are not finite numbers"),
    ],
)
def test_a_signal_that_does_not_fit_is_one_line(ecg, tmp_path, capsys, values, message):
    np.save(tmp_path / "bad.npy", values)
    out = tmp_path / "out"
    assert main(["explain", ecg, str(tmp_path / "bad.npy"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not out.exists()


def test_inspect_says_a_signal_model_and_its_layout(tmp_path, capsys):
    model = exported(tmp_path, "NTC", (1, T, 3))
    assert main(["inspect", model]) == 0
    said = capsys.readouterr().out
    assert "a signal model" in said and "input layout NTC (read from the graph)" in said
    assert "signal: the last feature map [N, C, T']" in said


def test_the_server_explains_arrays_and_base64_wavs(tmp_path):
    from ..serve.server import Served

    model = exported(tmp_path, "NT", (1, 400))
    samples = (np.sin(np.arange(400) / 5) * 8192).astype(np.int16)
    buffer = tmp_path / "clip.wav"
    wavfile.write(buffer, 8000, samples)
    wav_b64 = base64.b64encode(buffer.read_bytes()).decode()
    wave = (samples / 32768.0).astype(np.float32)
    server = Served("--methods", "gradient", "occlusion", model=model, name="signals")
    try:
        status, body = server.call("explain", [wave.tolist(), {"wav_b64": wav_b64}], raw=True)
        assert status == 200, body
        want = onnx_xai.Explainer(model).explain_many(np.stack([wave, wave]), ["gradient", "occlusion"])
        for i, entries in enumerate(body["explanations"]):
            for entry in entries:
                r = want[entry["method"]]
                assert entry["target"] == int(r.targets[i]) and len(entry["over_time"]) == 400
                np.testing.assert_allclose(entry["raw"], r.raw[i], rtol=1e-4, atol=1e-6 * np.abs(r.raw).max())
        status, body = server.call("explain", [[[1.0, 2.0]]])
        assert status == 400 and body["error"].startswith(
            "instance 0 is [1, 2] as read; this model takes one"
        )
        status, body = server.call("explain", [{"wav_b64": "not base64!"}])
        assert status == 400 and body["error"] == "instance 0: wav_b64 is not base64"
    finally:
        server.stop()


def test_a_csv_is_taken_at_the_rate_given_never_resampled(ecg, tmp_path, capsys):
    beat = np.random.default_rng(5).standard_normal((T, 3))
    (tmp_path / "beat.csv").write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in beat) + "\n")
    out = tmp_path / "out"
    args = ["explain", ecg, str(tmp_path / "beat.csv"), "--method", "gradient", "--sample-rate", "250"]
    assert main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "beat.csv.json").read_text())
    assert record["sample_rate"] == 250 and record["shape"] == [3, T] and record["channels"] is None
    capsys.readouterr()
