"""One audit of the bundled model and photos (CLI, every metric, boxes, both sanity checks), shared by
the tests that read its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS

METHODS = ["gradient", "gradcam"]
STEPS = 4


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onnx_xai.cli", *args], capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="session")
def bundled_audit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audit")
    photos = sorted(Path(str(DEMO_PHOTOS)).iterdir())
    # one whole-photo box each, in photo pixels
    boxes = {p.name: [[0, 0, *Image.open(p).size]] for p in photos}
    (out / "boxes.json").write_text(json.dumps(boxes))
    done = run_cli(
        "audit",
        str(DEMO_MODEL),
        str(DEMO_PHOTOS),
        "--methods",
        *METHODS,
        "--boxes",
        str(out / "boxes.json"),
        "--randomization-steps",
        str(STEPS),
        "--road-fractions",
        "0.2",
        "0.5",
        "0.8",
        "--threads",
        "2",
        "--out",
        str(out / "report"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "report"


@pytest.fixture(scope="session")
def records(bundled_audit) -> list[dict]:
    return [json.loads(line) for line in (bundled_audit / "results.jsonl").read_text().splitlines()]
