"""The command line's cheaper outputs and its overlapped pipeline give the same records.

Decoding, inference and encoding overlap in worker threads; the records must not depend on that
(nor on the batch size): scores and boxes of a run in batches of 8 equal those of a run one photo at a
time, photo for photo, in input order. ``--format jpg`` writes JPEG pictures and sheets;
``--no-overlays`` writes only the records; a rerun in another format replaces the previous set.
"""

from __future__ import annotations

import json
import shutil

from PIL import Image

from onnx_xai.cli import main
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS

PHOTOS = sorted(__import__("pathlib").Path(str(DEMO_PHOTOS)).glob("*.jpg"))


def photos(tmp_path, count: int = 11):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(count):
        shutil.copy(PHOTOS[k % len(PHOTOS)], folder / f"p{k:02d}.jpg")
    return folder


def records(out, count: int) -> list[dict]:
    return [json.loads((out / f"p{k:02d}.jpg.json").read_text()) for k in range(count)]


def test_batches_and_threads_change_no_record(tmp_path):
    folder = photos(tmp_path)
    for batch in ("8", "1"):
        assert (
            main(
                [
                    "explain",
                    str(DEMO_MODEL),
                    str(folder),
                    "--method",
                    "gradcam",
                    "gradient",
                    "--no-overlays",
                    "--batch-size",
                    batch,
                    "--out",
                    str(tmp_path / batch),
                ]
            )
            == 0
        )
    for a, b in zip(records(tmp_path / "8", 11), records(tmp_path / "1", 11)):
        assert a["file"] == b["file"]
        for x, y in zip(a["explanations"], b["explanations"]):
            assert (x["target"], x["box"]) == (y["target"], y["box"]) and abs(x["score"] - y["score"]) < 1e-4


def test_jpeg_pictures_and_json_only(tmp_path):
    folder, out = photos(tmp_path, 3), tmp_path / "out"
    assert (
        main(
            [
                "explain",
                str(DEMO_MODEL),
                str(folder),
                "--method",
                "gradcam",
                "gradient",
                "--format",
                "jpg",
                "--sheet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = records(out, 1)[0]
    assert record["outputs"] == ["p00.jpg.gradcam.jpg", "p00.jpg.gradient.jpg", "p00.jpg.sheet.jpg"]
    for name in record["outputs"]:
        with Image.open(out / name) as picture:
            assert picture.format == "JPEG"
    assert (
        main(
            [
                "explain",
                str(DEMO_MODEL),
                str(folder),
                "--method",
                "gradcam",
                "--no-overlays",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = records(out, 1)[0]
    assert record["outputs"] == [] and record["explanations"][0]["overlay"] is None
    assert sorted(p.name for p in out.iterdir()) == [f"p{k:02d}.jpg.json" for k in range(3)]  # the JPEGs went
