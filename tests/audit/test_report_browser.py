"""The report in a real browser (headless Chromium, Debian's ``chromium``, installed by ``.ci/run``): no
console errors, every picture decoded, every table row rendered, and a screenshot that shows the
photos' heatmaps and the charts' lines rather than a blank page; a table audit's report (an MLP's rows)
the same way, without pictures."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onnx_xai.cli import main
from tests.inputs.test_any_input import Mlp, export

from .conftest import METHODS, STEPS

BASELINES = ["baseline_random", "baseline_sobel", "baseline_center"]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=4000",
    "--user-data-dir={profile}",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, (
        "Debian's chromium is needed for the report's browser test (apt-get install chromium; .ci/run does)"
    )
    return found


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [f.format(profile=tmp / "profile") for f in FLAGS]
    return subprocess.run(
        [chromium(), *flags, *extra, page.resolve().as_uri()], capture_output=True, text=True, timeout=120
    )


def console_errors(stderr: str) -> list[str]:
    """Chromium's log lines for page console messages that are errors or uncaught exceptions."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line and re.search(r"Uncaught|error|Error|Failed to load", line)
    ]


def test_the_console_check_catches_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert console_errors(browse(page, tmp_path, "--dump-dom").stderr)


def test_report_renders_without_errors(bundled_audit, tmp_path):
    page = bundled_audit / "report.html"
    done = browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not console_errors(done.stderr), console_errors(done.stderr)
    dom = done.stdout
    pictures = 3 * (1 + len(METHODS) + len(BASELINES))
    assert f'data-images="{pictures}/{pictures}"' in dom  # every embedded picture decoded
    for method in METHODS + BASELINES:
        assert f'data-method="{method}"' in dom
    assert dom.count("<polyline") >= 2 * (len(METHODS) + 3) + 2 * len(METHODS)
    assert dom.count('class="photo"') == 3 and len(re.findall(r"<tr><td>\d+</td>", dom)) == STEPS + 1


def test_screenshot_shows_photos_and_charts(bundled_audit, tmp_path):
    shot = tmp_path / "shot.png"
    done = browse(bundled_audit / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,4200")
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert (pixels.sum(axis=2) < 600).mean() > 0.03  # not a blank page
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 120).mean() > 0.01  # heatmaps' colours
    blue = (np.abs(pixels - [0x00, 0x72, 0xB2]).sum(axis=2) < 40).sum()  # the first method's chart line
    assert blue > 200


TABLE_METHODS = ["kernel_shap", "gradient"]
FEATURES = ["age", "income", "height", "weight", "score", "rank"]


@pytest.fixture(scope="module")
def table_audit(tmp_path_factory) -> Path:
    """An MLP's table audit: 6 rows, 12 background rows, randomization in 2 steps."""
    folder = tmp_path_factory.mktemp("table_audit")
    model = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], folder / "mlp.onnx")
    rng = np.random.default_rng(0)
    for name, count in (("rows.csv", 6), ("bg.csv", 12)):
        np.savetxt(
            folder / name, rng.normal(size=(count, 6)), delimiter=",", header=",".join(FEATURES), comments=""
        )
    args = ["audit", model, str(folder / "rows.csv"), "--background", str(folder / "bg.csv")]
    assert (
        main([*args, "--methods", *TABLE_METHODS, "--randomization-steps", "2", "--out", str(folder / "out")])
        == 0
    )
    return folder / "out"


def test_table_report_renders_without_errors(table_audit, tmp_path):
    done = browse(table_audit / "report.html", tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not console_errors(done.stderr), console_errors(done.stderr)
    dom = done.stdout
    assert 'data-images="0/0"' in dom  # the script ran; a table has no pictures
    for method in TABLE_METHODS + ["baseline_random"]:
        assert f'data-method="{method}"' in dom
    assert dom.count("<polyline") >= 2 * (len(TABLE_METHODS) + 1) + 2 * len(TABLE_METHODS)
    assert len(re.findall(r"<tr><td>\d+</td>", dom)) == 3 and dom.count("data-feature=") == len(FEATURES)
    shot = tmp_path / "shot.png"
    browse(table_audit / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,2400")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    blue = (np.abs(pixels - [0x00, 0x72, 0xB2]).sum(axis=2) < 40).sum()  # the first method's chart lines
    assert blue > 200
