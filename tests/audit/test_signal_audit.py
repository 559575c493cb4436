"""``audit`` on signal models: deletion and insertion over time windows against a hand computation (the
windows ``floor(t W / T)``, each method's attribution summed over channels and window, the seeded tie
order, a float64 torch forward of the same model on the masked copies, the trapezoid) on ``[N, C, T]``,
``[N, T, C]`` and a short waveform (a window per time step); the random baseline reproducible by its
seed; the ranking that finds the one window a class rests on; the command line end to end (records and
report as one set, the report rendered in headless Chromium) and its one-line usage errors."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.io import wavfile

from onnx_xai.audit.features import RANDOM
from onnx_xai.audit.signal_auditor import SignalAuditOptions
from onnx_xai.audit.signal_run import audit_signals
from onnx_xai.cli import main
from onnx_xai.runtime import Explainer
from tests.inputs.test_any_input import Mlp
from tests.inputs.test_any_input import export as export_table
from tests.signals.test_signal_methods import Cnn

from .test_report_browser import browse, console_errors

SEED = 3
SHAPES = {"NCT": (3, 96), "NTC": (96, 3), "NT": (12,)}  # the waveform: 12 steps, fewer than 20 windows


def exported(folder, form: str, net: torch.nn.Module | None = None, shape: tuple | None = None):
    torch.manual_seed(1)
    net = net if net is not None else Cnn(1 if form == "NT" else 3, form).eval()
    path, time = str(folder / f"{form}.onnx"), form.index("T")
    torch.onnx.export(
        net, (torch.randn(1, *(shape or SHAPES[form])),), path, dynamo=False, input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "N", time: "T"}, "y": {0: "N"}},
    )  # fmt: skip
    return net, path


@pytest.fixture(scope="module")
def ecg(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("ecg"), "NCT")


def read_records(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def hand_window_scores(r, form: str, windows: np.ndarray) -> np.ndarray:
    """The attribution per window: the CAM map upsampled linearly, else summed over channels (signed
    methods) or of its magnitude (the others)."""
    raw = np.asarray(r.raw[0], np.float64)
    if r.family == "cam":
        t = torch.tensor(raw)[None, None]
        per_step = F.interpolate(t, size=windows.size, mode="linear", align_corners=False)[0, 0].numpy()
    else:
        values = raw if r.signed is not None else np.abs(raw)
        per_step = values if form == "NT" else values.sum(axis=form.index("C") - 1)
    return np.array([per_step[windows == w].sum() for w in range(windows.max() + 1)])


def hand_curves(net, x: np.ndarray, form: str, order: np.ndarray, fill: np.ndarray, target: int):
    """Deletion and insertion curves and their areas, with a float64 torch forward of ``net``."""
    time = form.index("T") - 1
    length = x.shape[time]
    count = min(20, length)
    windows = np.arange(length) * count // length
    copies = {"deletion": [], "insertion": []}
    for k in range(count + 1):
        removed = np.isin(windows, order[:k])
        removed = removed[None, :] if form == "NCT" else (removed[:, None] if form == "NTC" else removed)
        copies["deletion"].append(np.where(removed, fill, x))
        copies["insertion"].append(np.where(removed, x, fill))
    found = {}
    reference = copy.deepcopy(net).double()
    for metric, stack in copies.items():
        with torch.no_grad():
            curve = torch.softmax(reference(torch.tensor(np.stack(stack), dtype=torch.float64)), -1)
        curve = curve[:, target].numpy()
        found[metric] = (curve, float(np.trapezoid(curve, np.linspace(0, 1, count + 1))))
    return found


@pytest.mark.parametrize("form", list(SHAPES))
def test_deletion_and_insertion_against_a_hand_computation(form, tmp_path):
    net, model = exported(tmp_path, form)
    x = np.random.default_rng(5).standard_normal(SHAPES[form]).astype(np.float32)
    np.save(tmp_path / "s.npy", x)
    methods = ["integrated_gradients", "gradient"] + (["gradcam"] if form != "NT" else [])
    baseline = "mean" if form == "NCT" else (0.25 if form == "NTC" else None)
    opts = SignalAuditOptions(methods=methods, baseline=baseline, noise_seed=SEED)
    records = read_records(
        audit_signals(model, [tmp_path / "s.npy"], tmp_path / "out", opts)["results.jsonl"]
    )
    time = form.index("T") - 1
    fill = {"mean": np.broadcast_to(x.mean(axis=time, keepdims=True), x.shape), 0.25: 0.25, None: 0.0}
    options = {"baseline": baseline} if baseline is not None else {}
    found = Explainer(model).explain_many(x[None], methods, **options)
    length = x.shape[time]
    windows = np.arange(length) * min(20, length) // length
    assert [r["method"] for r in records] == [*methods, RANDOM]
    for r in records:
        if r["method"] == RANDOM:
            scores = np.random.default_rng((SEED, 0)).random(windows.max() + 1)
        else:
            scores = hand_window_scores(found[r["method"]], form, windows)
            np.testing.assert_allclose(r["window_scores"], scores, rtol=1e-5, atol=1e-9)
        jitter = np.random.default_rng(SEED).random(scores.size)
        order = np.lexsort((jitter, -scores))
        assert r["ranking"] == order.tolist() and r["windows"] == min(20, length)
        want = hand_curves(net, x, form, order, fill[baseline], r["target"])
        for metric, (curve, auc) in want.items():
            assert np.abs(np.array(r[f"{metric}_curve"]) - curve).max() < 1e-5, (r["method"], metric)
            assert abs(r[f"{metric}_auc"] - auc) < 1e-5
        assert abs(r["probability"] - want["deletion"][0][0]) < 1e-5
    assert records[0]["signed"] and not records[1]["signed"]
    assert records[0]["window_starts"] == np.flatnonzero(np.diff(windows, prepend=-1)).tolist()


def test_the_random_baseline_is_reproducible_by_its_seed(ecg, tmp_path):
    _, model = ecg
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(tmp_path / f"s{i}.npy", rng.standard_normal(SHAPES["NCT"]).astype(np.float32))
    files = [tmp_path / "s0.npy", tmp_path / "s1.npy"]

    def random_records(seed: int, out: str) -> list[dict]:
        opts = SignalAuditOptions(methods=["gradient"], noise_seed=seed, segments=16)
        records = read_records(audit_signals(model, files, tmp_path / out, opts)["results.jsonl"])
        return [r for r in records if r["method"] == RANDOM]

    first, again, other = random_records(SEED, "a"), random_records(SEED, "b"), random_records(SEED + 1, "c")
    assert [r["ranking"] for r in first] == [r["ranking"] for r in again]
    assert [r["deletion_curve"] for r in first] == [r["deletion_curve"] for r in again]
    for i, r in enumerate(first):  # uniform draws seeded by (seed, index), highest first
        assert r["ranking"] == np.argsort(-np.random.default_rng((SEED, i)).random(16)).tolist()
    assert first[0]["ranking"] != first[1]["ranking"] and first[0]["ranking"] != other[0]["ranking"]


class KeyWindow(torch.nn.Module):
    """Class 1's logit is channel 0 summed over steps 40 to 49, class 0's is 0: the class rests on
    window 4 of 10."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[0.0], [0.0]], [[1.0], [0.0]]]))
        mask = torch.zeros(100)
        mask[40:50] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return (self.conv(x) * self.mask).sum(-1)


def test_the_window_a_class_rests_on_comes_first_and_beats_the_random_ranking(tmp_path):
    _, model = exported(tmp_path, "NCT", KeyWindow().eval(), (2, 100))
    rng = np.random.default_rng(1)
    files = []
    for i in range(4):
        x = np.abs(rng.standard_normal((2, 100))).astype(np.float32) * 0.1
        x[0, 40:50] = 0.5
        np.save(tmp_path / f"k{i}.npy", x)
        files.append(tmp_path / f"k{i}.npy")
    opts = SignalAuditOptions(methods=["integrated_gradients"], segments=10, noise_seed=SEED)
    records = read_records(audit_signals(model, files, tmp_path / "out", opts)["results.jsonl"])
    ig = [r for r in records if r["method"] == "integrated_gradients"]
    random = [r for r in records if r["method"] == RANDOM]
    assert all(r["target"] == 1 and r["probability"] > 0.99 and r["ranking"][0] == 4 for r in ig)
    assert all(abs(r["deletion_curve"][1] - 0.5) < 1e-6 and r["insertion_curve"][1] > 0.99 for r in ig)
    deletion = [np.mean([r["deletion_auc"] for r in rs]) for rs in (ig, random)]
    insertion = [np.mean([r["insertion_auc"] for r in rs]) for rs in (ig, random)]
    assert deletion[0] < 0.53 and deletion[0] < deletion[1] - 0.05, deletion
    assert insertion[0] > 0.96 and insertion[0] > insertion[1] + 0.05, insertion


def test_the_command_line_writes_records_and_a_report(ecg, tmp_path, capsys):
    _, model = ecg
    rng = np.random.default_rng(2)
    beat = rng.standard_normal(SHAPES["NCT"]).astype(np.float32)
    np.save(tmp_path / "a.npy", beat)
    rows = ["I,II,V1"] + [",".join(f"{v:.6f}" for v in row) for row in beat.T[::-1]]
    (tmp_path / "b.csv").write_text("\n".join(rows) + "\n")
    wavfile.write(tmp_path / "c.wav", 8000, (beat.T[:10] * 8000).astype(np.int16))  # 10 steps: 10 windows
    files = [str(tmp_path / n) for n in ("a.npy", "b.csv", "c.wav")]
    out = tmp_path / "out"
    args = ["audit", model, *files, "--methods", "gradient", "integrated_gradients", "--segments", "12"]
    assert main([*args, "--baseline", "mean", "--noise-seed", str(SEED), "--out", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"gradient: deletion_auc \d\.\d{3}, insertion_auc \d\.\d{3}", said[0])
    assert (
        said[2].startswith("baseline_random: ")
        and said[-1] == f"wrote {out / 'results.jsonl'}, {out / 'report.html'}"
    )
    records = read_records(out / "results.jsonl")
    assert [(r["file"], r["method"]) for r in records][:3] == [
        (files[0], "gradient"), (files[0], "integrated_gradients"), (files[0], RANDOM)
    ]  # fmt: skip
    assert len(records) == 9 and [r["windows"] for r in records[::3]] == [12, 12, 10]
    assert len(records[-1]["deletion_curve"]) == 11 and records[-1]["length"] == 10
    assert records[0]["protocol"]["removed_to"] == "each channel's mean over time, per signal"
    report = (out / "report.html").read_text()
    assert "Deletion AUC ↓" in report and "Insertion AUC ↑" in report and report.count("<polyline") == 6
    assert "These are signals" in report and report.count('class="signal"') == 3
    assert "Model randomization not run: the sanity checks are not run for signals in this version." in report
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.jsonl"]
    done = browse(out / "report.html", tmp_path, "--dump-dom")
    assert done.returncode == 0 and not console_errors(done.stderr), done.stderr[-2000:]
    assert done.stdout.count('class="win"') == 2 * (12 + 12 + 10) and done.stdout.count("<polyline") == 6
    assert (
        main(["audit", model, files[0], "--metrics", "deletion", "--sanity", "none", "--out", str(out)]) == 0
    )
    assert capsys.readouterr().out.startswith("methods: integrated_gradients gradient gradcam (a signal's")
    records = read_records(out / "results.jsonl")
    assert [r["method"] for r in records][-1] == RANDOM and not any("insertion_auc" in r for r in records)


def test_flags_for_other_kinds_and_bad_files_are_one_line(ecg, tmp_path, capsys):
    _, model = ecg
    np.save(tmp_path / "s.npy", np.zeros(SHAPES["NCT"], np.float32))
    np.save(tmp_path / "short.npy", np.zeros((2, 96), np.float32))
    signal = str(tmp_path / "s.npy")
    mlp = export_table(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    cases = [
        ([model, signal, "--boxes", "b.json"], 2, "--boxes is for photos and tables, not signals"),
        ([model, signal, "--background", "b.csv"], 2, "--background is for photos and tables, not signals"),
        ([model, signal, "--curve-steps", "8"], 2, "--curve-steps is for photos and tables, not signals"),
        ([model, signal, "--metrics", "road"], 2, "--metrics road is for photos; a signal is audited with"),
        ([model, signal, "--sanity", "randomization"], 2, "--sanity is for photos and tables"),
        ([model, signal, "--bins", "5"], 2, "--bins is for texts; this model's input is a signal"),
        ([model, "--text", "hi"], 2, "--text and --text-file are for text encoders; this model's input"),
        ([model], 2, "a signal model audits files: give .npy, .csv or .wav files"),
        (
            [mlp, "rows.csv", "--segments", "4"],
            2,
            "--segments is for signal models; this model takes a table",
        ),
        ([mlp, "rows.csv", "--baseline", "mean"], 2, "--baseline is for signal models; this model takes a"),
        (
            [model, str(tmp_path / "short.npy")],
            1,
            "short.npy is [2, 96] as read; this model takes one signal",
        ),
        ([model, signal, "--baseline", "b.txt"], 2, "--baseline is zero, mean or a .npy file, not 'b.txt'"),
    ]
    for args, status, message in cases:
        assert main(["audit", *args, "--out", str(tmp_path / "o")]) == status, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
