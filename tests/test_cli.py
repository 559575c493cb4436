"""The ``onnx-xai`` CLI end to end through subprocesses, on the bundled model and photos."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import onnx_xai
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS
from onnx_xai.photos.demo import DEMO_METHODS

MODEL = Path(str(DEMO_MODEL))
PHOTOS = Path(str(DEMO_PHOTOS))
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CAT_BOX = (30, 0, 400, 300)  # the cat in chelsea.jpg (451 x 300), read off the photo
CAT_FACE = (100, 50, 360, 290)  # eyes to chin: a box's centre must fall here


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "onnx_xai.cli", *map(str, args)], capture_output=True, text=True
    )


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = cli("demo", "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_demo_writes_valid_sheets_and_records(demo):
    out, stdout = demo
    for stem in ("chelsea", "coffee", "rocket"):
        assert str(out / f"{stem}.jpg.sheet.png") in stdout
        with Image.open(out / f"{stem}.jpg.sheet.png") as im:
            im.verify()
        record = json.loads((out / f"{stem}.jpg.json").read_text())
        assert [e["method"] for e in record["explanations"]] == list(DEMO_METHODS)
        for e in record["explanations"]:
            with Image.open(out / e["overlay"]) as im:
                assert im.size == tuple(record["size"])


def test_demo_finds_the_cat(demo):
    out, _ = demo
    record = json.loads((out / "chelsea.jpg.json").read_text())
    by_method = {e["method"]: e for e in record["explanations"]}
    assert by_method["gradcam"]["target"] in CAT_CLASSES
    assert "cat" in by_method["gradcam"]["label"]
    for method in ("cam", "gradcam", "gradcam_pp", "layercam"):
        box = by_method[method]["box"]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert iou(box, CAT_BOX) >= 0.4, (method, box)
        assert CAT_FACE[0] <= cx <= CAT_FACE[2] and CAT_FACE[1] <= cy <= CAT_FACE[3], (method, box)


def test_explain_a_folder_with_a_named_target(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(PHOTOS / name, photos / name)
    out = tmp_path / "out"
    done = cli(
        "explain",
        MODEL,
        photos,
        "--method",
        "cam",
        "gradcam",
        "--target",
        "tabby",
        "--out",
        out,
        "--cmap",
        "viridis",
        "--sheet",
    )
    assert done.returncode == 0, done.stderr
    for stem in ("chelsea", "coffee"):
        record = json.loads((out / f"{stem}.jpg.json").read_text())
        assert record["file"].endswith(f"{stem}.jpg") and len(record["model_sha256"]) == 64
        for e in record["explanations"]:
            assert e["target"] == 281 and e["label"] == "tabby"
            w, h = record["size"]
            assert 0 <= e["box"][0] < e["box"][2] <= w and 0 <= e["box"][1] < e["box"][3] <= h
        assert (out / f"{stem}.jpg.cam.png").exists() and (out / f"{stem}.jpg.sheet.png").exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_smooth_flag_and_index_target(tmp_path):
    done = cli(
        "explain",
        MODEL,
        PHOTOS / "coffee.jpg",
        "--method",
        "gradient",
        "--smooth",
        "4",
        "--target",
        "967",
        "--out",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads((tmp_path / "coffee.jpg.json").read_text())["explanations"][0]
    assert entry["smoothgrad_samples"] == 4 and entry["label"] == "espresso"


def _truncated_png(path: Path) -> Path:
    shutil.copy(PHOTOS / "coffee.jpg", path.with_suffix(".tmp.jpg"))
    Image.open(path.with_suffix(".tmp.jpg")).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize(
    "problem",
    [
        "missing",
        "text_as_jpg",
        "truncated_png",
        "not_onnx",
        "target_out_of_range",
        "unknown_label",
        "out_is_a_file",
    ],
)
def test_bad_inputs_fail_cleanly(tmp_path, problem):
    out = tmp_path / "out"
    photo = PHOTOS / "chelsea.jpg"
    (tmp_path / "fake.jpg").write_text("this is not a jpeg")
    (tmp_path / "fake.onnx").write_text("this is not a model")
    (tmp_path / "file").write_text("occupied")
    args = {
        "missing": (MODEL, tmp_path / "nope.jpg", "--out", out),
        "text_as_jpg": (MODEL, photo, tmp_path / "fake.jpg", "--out", out),
        "truncated_png": (MODEL, photo, _truncated_png(tmp_path / "cut.png"), "--out", out),
        "not_onnx": (tmp_path / "fake.onnx", photo, "--out", out),
        "target_out_of_range": (MODEL, photo, "--target", "1000", "--out", out),
        "unknown_label": (MODEL, photo, "--target", "unicorn", "--out", out),
        "out_is_a_file": (MODEL, photo, "--out", tmp_path / "file"),
    }[problem]
    done = cli("explain", *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnx-xai: error: "), done.stderr
    assert not out.exists() or not any(out.iterdir())
    assert (tmp_path / "file").read_text() == "occupied"


def test_inspect(tmp_path):
    done = cli("inspect", MODEL)
    assert done.returncode == 0, done.stderr
    assert "  * " in done.stdout and "GlobalAveragePool -> Reshape -> Gemm (" in done.stdout
    assert (
        "methods: gradient, input_x_gradient, integrated_gradients" in done.stdout
        and "scorecam" in done.stdout
    )
    assert "nodes without a gradient rule: none" in done.stdout
    report = json.loads(cli("inspect", MODEL, "--json").stdout)
    assert report["cam"] and report["layout"] == "NCHW" and report["image_input"] == "image"
    assert report["candidates"][0]["name"] == report["target_layer"]


@pytest.mark.parametrize(
    "command,flags",
    [
        ("augment", ["--outputs", "--target-layer"]),
        ("inspect", ["--json"]),
        (
            "explain",
            ["--method", "--target", "--labels", "--preset", "--smooth", "--out", "--mean", "--size"],
        ),
        ("demo", ["--out"]),
    ],
)
def test_help_is_complete(command, flags):
    done = cli(command, "--help")
    assert done.returncode == 0
    for flag in flags:
        assert flag in done.stdout


def test_explain_a_channels_last_model(tmp_path):
    import onnx

    from .graph.test_augment import ChannelsLast, export

    model = tmp_path / "nhwc.onnx"
    onnx.save(export(ChannelsLast().eval(), (1, 8, 8, 3)), model)
    done = cli(
        "explain",
        model,
        PHOTOS / "coffee.jpg",
        "--method",
        "cam",
        "gradcam",
        "--preset",
        "raw",
        "--crop",
        "1",
        "--out",
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "coffee.jpg.json").read_text())
    assert [e["label"] for e in record["explanations"]] == [None, None]  # 4 classes: no ImageNet names
    for e in record["explanations"]:
        w, h = record["size"]
        assert e["box"] is None or (
            0 <= e["box"][0] < e["box"][2] <= w and 0 <= e["box"][1] < e["box"][3] <= h
        )


def test_every_method_from_the_command_line(tmp_path):
    import onnx

    from .graph.test_augment import export, small_cnn

    model = tmp_path / "small.onnx"
    onnx.save(export(small_cnn(), (1, 3, 8, 8)), model)
    methods = [
        m for m in onnx_xai.METHOD_NAMES if m != "tree_shap"
    ]  # deeplift_shap with each photo's own references
    done = cli(
        "explain",
        model,
        PHOTOS / "coffee.jpg",
        "--method",
        *methods,
        "--steps",
        "4",
        "--sheet",
        "--out",
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "coffee.jpg.json").read_text())
    assert [e["method"] for e in record["explanations"]] == methods
    for name in record["outputs"]:
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size[1] in (record["size"][1], 320 + 22 + 6)  # overlays at photo size; the sheet
