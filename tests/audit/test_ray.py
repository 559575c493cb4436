"""The audit on Ray Data in local mode (``ray.init(num_cpus=2)``) against the local engine on 64
photos: the same records, the same maps, a report built from them, a failing photo reported without
stopping the run, and a rerun that skips the batches already written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image, ImageOps

from onnx_xai.audit import AuditOptions, Protocol
from onnx_xai.audit.run import audit
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS

PHOTOS = 64
OPTS = dict(
    methods=("gradcam",),
    metrics=("deletion", "insertion"),
    protocol=Protocol(steps=4),
    sanity=("random_target", "randomization"),
    randomization_steps=2,
    sanity_photos=4,
    report_photos=4,
    batch_size=8,
)
ARGS = {"threads": 1}


def photos(folder: Path, count: int = PHOTOS) -> list[tuple[Path, str]]:
    """``count`` photos cut from the bundled three (crops, flips, small rotations), then a broken file."""
    folder.mkdir()
    sources = [Image.open(p).convert("RGB") for p in sorted(Path(str(DEMO_PHOTOS)).iterdir())]
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        photo = sources[i % 3]
        w, h = photo.size
        x0, y0 = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
        picture = photo.crop((x0, y0, x0 + 3 * w // 4, y0 + 3 * h // 4)).rotate(float(rng.uniform(-10, 10)))
        picture = ImageOps.mirror(picture) if i % 2 else picture
        path = folder / f"p{i:02d}.jpg"
        picture.resize((160, 120)).save(path, quality=90)
        out.append((path, path.name))
    broken = folder / "zz_broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    return out + [(broken, broken.name)]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    files = photos(root / "photos")
    local = audit(str(DEMO_MODEL), files[:PHOTOS], root / "local", AuditOptions(**OPTS), ARGS)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        options = {"actors": 2, "cpus_per_actor": 1}
        on_ray = audit(
            str(DEMO_MODEL),
            files,
            root / "ray",
            AuditOptions(**OPTS),
            ARGS,
            engine="ray",
            ray_options=options,
        )
        parts = sorted((root / "ray" / "parts").glob("*.parquet"))
        again = audit(
            str(DEMO_MODEL),
            files,
            root / "ray",
            AuditOptions(**OPTS),
            ARGS,
            engine="ray",
            ray_options=options,
        )
        parts_after = sorted((root / "ray" / "parts").glob("*.parquet"))
    finally:
        ray.shutdown()
    return local, on_ray, again, parts, parts_after


def lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_ray_records_equal_the_local_engines(engines):
    local, on_ray = engines[0], engines[1]
    a, b = lines(local["results.jsonl"]), lines(on_ray["results.jsonl"])
    assert len(a) == PHOTOS * 4 and a == b  # gradcam + 3 baselines per photo, every value equal
    assert any("randomization_spearman" in r for r in b) and any("random_target_spearman" in r for r in b)


def test_ray_maps_equal_the_local_engines(engines):
    a, b = np.load(engines[0]["maps.npz"]), np.load(engines[1]["maps.npz"])
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key


def test_the_broken_photo_is_reported_and_the_rest_audited(engines):
    on_ray = engines[1]
    ((name, reason),) = on_ray["failures"]
    assert name == "zz_broken.jpg" and reason
    html = Path(on_ray["report.html"]).read_text()
    assert "could not be audited" in html and "zz_broken.jpg" in html
    assert html.count('<section class="photo">') == 4


def test_parquet_table_has_one_row_per_record(engines):
    import pyarrow.parquet as pq

    table = pq.read_table(engines[1]["results.parquet"]).to_pylist()
    records = lines(engines[1]["results.jsonl"])
    assert len(table) == len(records)
    assert [json.loads(row["record"]) for row in table] == records
    assert [row["deletion_auc"] for row in table] == [r["deletion_auc"] for r in records]


def test_a_rerun_skips_what_is_written(engines):
    _, on_ray, again, parts, parts_after = engines
    # only the batch holding the broken photo runs again: one new part
    assert len(parts_after) == len(parts) + 1
    assert lines(again["results.jsonl"]) == lines(on_ray["results.jsonl"])
