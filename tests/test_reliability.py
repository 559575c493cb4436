"""Bad input gives one line and the right exit status; outputs never collide, never mix, never
clobber; files get the mode the umask allows.

The rows of the reliability issue, re-run: decompression bombs, external data pointing outside the
model's folder, out-of-range CLI numbers (usage errors, exit 2), a ``--size`` that contradicts the
model, the API's thresholds and SmoothGrad options, ``extra_inputs`` that would replace the image,
photos whose names collide, an output folder inside the input folder, reruns with fewer methods,
``inspect`` on a rewritten model and ``--target -1``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import onnx_xai
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS
from onnx_xai.support.errors import InputError

from .graph.test_augment import export, small_cnn
from .runtime import tiny

MODEL = Path(str(DEMO_MODEL))
PHOTO = Path(str(DEMO_PHOTOS)) / "coffee.jpg"


def cli(*args, umask: int | None = None):
    return subprocess.run(
        [sys.executable, "-m", "onnx_xai.cli", *map(str, args)],
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def one_line(done, code: int = 1) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and lines, done.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("onnx-xai: error: "), done.stderr
    return lines[-1]


def bomb_png(path: Path, side: int) -> Path:
    """68 bytes of PNG that declare a side x side RGB image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [20000, 40000])
def test_decompression_bomb_is_one_line(tmp_path, small_model, side):
    line = one_line(
        cli("explain", small_model, bomb_png(tmp_path / "bomb.png", side), "--out", tmp_path / "out")
    )
    assert "too large to decode safely" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_external_data_outside_the_folder_is_one_line(tmp_path):
    model = export(small_cnn(), (1, 3, 8, 8))
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    path = tmp_path / "evil.onnx"
    onnx.save(model, path)
    for args in (
        ("augment", path, tmp_path / "out.onnx"),
        ("inspect", path),
        ("explain", path, PHOTO, "--out", tmp_path / "out"),
    ):
        assert "outside" in one_line(cli(*args)) or "cannot" in one_line(cli(*args))
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--batch-size", "0"],
        ["--batch-size", "-1"],
        ["--size", "0", "0"],
        ["--alpha", "2"],
        ["--threads", "-1"],
        ["--crop", "0"],
        ["--smooth", "0"],
        ["--mean", "nan", "0", "0"],
        ["--noise-seed", "-3"],
        ["--alpha", "x"],
    ],
)
def test_out_of_range_numbers_are_usage_errors(tmp_path, small_model, flags):
    line = one_line(cli("explain", small_model, PHOTO, "--out", tmp_path / "out", *flags), code=2)
    assert line.startswith("onnx-xai explain: error: argument")
    assert not (tmp_path / "out").exists()


def test_size_contradicting_a_fixed_input(tmp_path):
    line = one_line(cli("explain", MODEL, PHOTO, "--size", "100", "100", "--out", tmp_path / "out"))
    assert "--size 100 100 contradicts the model's input size 224 x 224" in line


@pytest.mark.parametrize(
    "options,message",
    [
        ({"box_threshold": 1.5}, "box_threshold"),
        ({"box_threshold": float("nan")}, "box_threshold"),
        ({"box_threshold": -0.5}, "box_threshold"),
        ({"method": "smoothgrad", "noise_level": float("nan")}, "noise_level"),
        ({"method": "smoothgrad", "noise_level": float("inf")}, "noise_level"),
        ({"method": "smoothgrad", "noise_level": 1e40}, "overflow"),
        ({"method": "smoothgrad", "noise": np.full((2, 2, 4, 4), np.nan)}, "finite"),
        ({"method": "smoothgrad", "n_samples": 2.5}, "n_samples"),
        ({"method": "smoothgrad", "n_samples": "10"}, "n_samples"),
        ({"method": "smoothgrad", "noise": np.zeros((0, 2, 4, 4))}, "non-empty"),
        ({"extra_inputs": {"x": np.zeros((1, 2, 4, 4), np.float32)}}, "cannot set 'x'"),
        ({"extra_inputs": {"xai_target": np.zeros(1, np.int64)}}, "cannot set 'xai_target'"),
    ],
)
def test_api_options_are_checked(options, message):
    ex = onnx_xai.Explainer(tiny.model())
    options = {"method": "gradcam", **options}
    with pytest.raises(InputError, match=message):
        ex.explain(np.ones((1, 2, 4, 4), np.float32), options.pop("method"), **options)


def test_colliding_names_get_their_own_sets(tmp_path, small_model):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("x.jpg", "x_2.jpg", "sub/x.jpg"):
        shutil.copy(PHOTO, photos / name)
    shutil.copy(Path(str(DEMO_PHOTOS)) / "rocket.jpg", tmp_path / "x.png")
    (tmp_path / "x.jpg").write_bytes((photos / "x.jpg").read_bytes())
    out = tmp_path / "out"
    done = cli("explain", small_model, photos, tmp_path / "x.png", tmp_path / "x.jpg", "--out", out)
    assert done.returncode == 0, done.stderr
    records = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert records == ["sub/x.jpg.json", "x.jpg.json", "x.png.json", "x_2.jpg.json", "x_3.jpg.json"]
    files = {json.loads((out / r).read_text())["file"] for r in records}
    assert len(files) == 5 and all(str(f) in done.stdout for f in files)


def test_output_folder_inside_the_inputs_is_never_an_input(tmp_path, small_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO, photos / "cat.jpg")
    for _ in range(2):
        done = cli("explain", small_model, photos, "--out", photos / "out")
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("->") == 1
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["cat.jpg.gradcam.png", "cat.jpg.json"]


def test_a_rerun_replaces_the_whole_set(tmp_path, small_model):
    out = tmp_path / "out"
    assert (
        cli(
            "explain", small_model, PHOTO, "--method", "gradient", "gradcam", "--sheet", "--out", out
        ).returncode
        == 0
    )
    assert cli("explain", small_model, PHOTO, "--method", "gradcam", "--out", out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["coffee.jpg.gradcam.png", "coffee.jpg.json"]
    assert json.loads((out / "coffee.jpg.json").read_text())["outputs"] == ["coffee.jpg.gradcam.png"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path, small_model, umask, mode):
    out = tmp_path / "out"
    assert cli("explain", small_model, PHOTO, "--sheet", "--out", out, umask=umask).returncode == 0
    assert cli("augment", small_model, tmp_path / "m.xai.onnx", umask=umask).returncode == 0
    for path in [*out.iterdir(), tmp_path / "m.xai.onnx"]:
        assert path.stat().st_mode & 0o777 == mode, path


def test_inspect_describes_a_rewritten_model(tmp_path, small_model):
    rewritten = tmp_path / "m.xai.onnx"
    assert cli("augment", small_model, rewritten).returncode == 0
    done = cli("inspect", rewritten)
    assert done.returncode == 0, done.stderr
    assert (
        "rewritten by onnx_xai (format 2)" in done.stdout
        and "output sets: cam, gradcam, input_grad" in done.stdout
    )


def test_target_minus_one_is_each_photos_top_class(tmp_path, small_model):
    done = cli("explain", small_model, PHOTO, "--target", "-1", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert one_line(cli("explain", small_model, PHOTO, "--target", "-2", "--out", tmp_path / "o")).endswith(
        "class -2 is out of range for a model with 3 classes"
    )


def test_keep_going_explains_the_rest_and_fails_at_the_end(tmp_path, small_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO, photos / "a.jpg")
    (photos / "b.jpg").write_text("not a photo")
    out = tmp_path / "out"
    done = cli("explain", small_model, photos, "--keep-going", "--out", out)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()  # with the progress bar's lines (a folder was given)
    assert [line for line in lines if line.startswith("onnx-xai: warning: skipped")] == [
        f"onnx-xai: warning: skipped {photos / 'b.jpg'}: {photos / 'b.jpg'} is not an image Pillow can read"
    ]
    assert lines[-1] == "onnx-xai: error: 1 of 2 photos could not be read; the others were explained"
    assert (out / "a.jpg.json").exists() and not (out / "b.jpg.json").exists()
    one_line(cli("explain", small_model, photos, "--out", tmp_path / "strict"))
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())
