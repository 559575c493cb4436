"""The staged photo pipeline: photos read ahead (:mod:`onnx_xai.photos.reading`), batches of one input
shape (:func:`onnx_xai.photos.run._batches`), and the command line reading photos while the model loads
without changing what is said or written when the model, or a photo, is bad."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from onnx_xai.cli import main
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS
from onnx_xai.photos.reading import PhotoReads
from onnx_xai.photos.run import BATCH_PIXELS, _batches
from onnx_xai.support.errors import InputError


@pytest.fixture
def photos(tmp_path):
    paths = []
    for k, size in enumerate([(64, 48), (48, 64), (64, 48), (32, 32)]):
        paths.append(tmp_path / f"p{k}.png")
        Image.new("RGB", size, (40 * k, 90, 200)).save(paths[-1])
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    return paths, tmp_path / "bad.png"


def test_reads_check_in_order_and_hand_each_photo_out_once(photos):
    paths, bad = photos
    pairs = [(p, p.name) for p in [paths[0], bad, *paths[1:]]]
    with PhotoReads([p for p, _ in pairs]) as reads:
        with pytest.raises(InputError, match="bad.png is not an image"):
            reads.readable(pairs, keep_going=False)
        skipped = []
        kept = reads.readable(pairs, keep_going=True, on_skip=lambda p, why: skipped.append(p))
        assert kept == [pairs[0], *pairs[2:]] and skipped == [bad]
        assert [reads.size(p) for p in paths] == [(64, 48), (48, 64), (64, 48), (32, 32)]
        settings = {"size": (16, 16), "layout": "NCHW"}
        first = reads.prepared(paths, settings)
        assert [p.array.shape for p in first] == [(1, 3, 16, 16)] * 4
        again = reads.prepared(paths[:1], settings)[0]  # handed out once: decoded again
        assert again.photo is not first[0].photo and np.array_equal(again.array, first[0].array)


def test_photos_decoded_once_the_preprocessing_is_known_are_prepared_at_once(photos):
    paths, _ = photos
    settings = {"size": (16, 16), "layout": "NCHW"}
    with PhotoReads([]) as reads:
        reads.settle(settings)
        reads.add(paths)
        reads.readable([(p, p.name) for p in paths], keep_going=False)
        kept = [reads._kept[p] for p in paths]
        assert all(held.array.shape == (1, 3, 16, 16) and made is settings for held, made, _ in kept)
        assert reads.prepared(paths[:1], settings)[0] is kept[0][0]
        other = {"size": (8, 8), "layout": "NCHW"}
        assert reads.prepared(paths[1:2], other)[0].array.shape == (1, 3, 8, 8)


def test_a_stage_ends_whole_before_its_error_is_raised():
    finished, lock = [], threading.Lock()

    def work(k: int) -> int:
        if k == 1:
            raise OSError("disk full")
        with lock:
            finished.append(k)
        return k

    with PhotoReads([]) as reads:
        assert reads.stage(lambda k: 2 * k, range(5)) == [0, 2, 4, 6, 8]
        with pytest.raises(OSError, match="disk full"):
            reads.stage(work, range(6))
        done = set(finished)
    assert 0 in done and done <= {0, 2, 3, 4, 5}


def test_batches_hold_photos_of_one_input_shape():
    fixed = {"size": (224, 224)}
    assert _batches([(640, 480)] * 5, fixed, 2) == [[0, 1], [2, 3], [4]]
    sizes = [(64, 48), (48, 64), (64, 48), (64, 48), (48, 64)]
    assert _batches(sizes, {"size": None}, 2) == [[0, 2], [1, 4], [3]]
    large = int(np.sqrt(4 * BATCH_PIXELS))  # a photo of 4 batch slots' pixels: 2 per batch of 8
    assert _batches([(large, large)] * 3, {"size": None}, 8) == [[0, 1], [2]]


def test_a_bad_model_is_said_before_the_photos_read_ahead(tmp_path, capsys):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not a model")
    out = tmp_path / "out"
    assert main(["explain", str(model), str(DEMO_PHOTOS), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an ONNX model" in err[0] and not out.exists()


def test_photos_read_ahead_give_the_records_of_photos_read_in_the_run(tmp_path, capsys):
    photos = sorted(DEMO_PHOTOS.glob("*.jpg"))[:2]
    (tmp_path / "empty.jpg").write_bytes(b"")
    flags = ["--method", "gradcam", "--no-overlays", "--keep-going", "--batch-size", "1"]
    argv = ["explain", str(DEMO_MODEL), *map(str, photos), str(tmp_path / "empty.jpg"), *flags]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "empty.jpg" in err and "1 of 3 photos could not be read" in err
    for photo in photos:
        record = json.loads((tmp_path / "a" / f"{photo.name}.json").read_text())
        assert record["file"] == str(photo) and record["explanations"][0]["overlay"] is None
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(f"{p.name}.json" for p in photos)


def test_a_model_of_any_size_batches_photos_of_one_size_as_it_explains_them_alone(tmp_path):
    pytest.importorskip("torch")
    from tests.objectives.test_seeds import export

    rng = np.random.default_rng(0)
    for k, (width, height) in enumerate([(96, 64), (64, 96), (96, 64), (96, 64)]):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"p{k}.png")
    model = str(export("segnet", "torchscript"))
    common = [
        "--method",
        "gradcam",
        "gradient",
        "--objective",
        "dense",
        "--channel",
        "1",
        "--region",
        "8",
        "8",
        "40",
        "40",
        "--format",
        "jpg",
    ]
    for out, batch in (("alone", "1"), ("batched", "8")):
        argv = ["explain", model, *(str(tmp_path / f"p{k}.png") for k in range(4)), *common]
        assert main([*argv, "--batch-size", batch, "--out", str(tmp_path / out)]) == 0
    for k in range(4):
        alone, batched = (
            json.loads((tmp_path / o / f"p{k}.png.json").read_text()) for o in ("alone", "batched")
        )
        for a, b in zip(alone.pop("explanations"), batched.pop("explanations")):
            assert a.pop("score") == pytest.approx(b.pop("score"), rel=1e-4, abs=1e-5) and a == b
        assert alone == batched
