"""Interrupting ``onnx-xai explain`` leaves complete photo sets and no temporary files.

A folder of photos is explained one photo per run (``--batch-size 1``, three files per set) in a
subprocess that gets SIGINT or SIGTERM while it starts (imports, model loading: from 0.3 s, once
the interpreter runs the command, which handles signals from its first line) or at moments after
its first photo set appeared, spread over the rest of the run; afterwards the output folder may only
hold complete sets: every JSON record's files exist, every other file belongs to a record, and
nothing hidden (staging folders, temporary files) is left. 10 trials.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS

# (signal, "start": seconds after the process starts | "folder": seconds after the first photo set)
TRIALS = [
    (signal.SIGINT, "start", 0.3),
    (signal.SIGTERM, "start", 0.5),
    (signal.SIGINT, "start", 0.8),
    (signal.SIGTERM, "start", 1.2),
] + [
    (s, "folder", d)
    for s, d in (
        (signal.SIGINT, 0.0),
        (signal.SIGTERM, 0.05),
        (signal.SIGINT, 0.3),
        (signal.SIGTERM, 0.45),
        (signal.SIGINT, 0.8),
        (signal.SIGTERM, 1.1),
    )
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted(Path(str(DEMO_PHOTOS)).glob("*.jpg"))
    for i in range(12):
        with Image.open(sources[i % len(sources)]) as photo:
            photo.resize((160, 120)).save(folder / f"p{i:02d}.jpg")
    return folder


def complete_sets(out: Path) -> int:
    """The number of complete sets; fails on anything else in the folder."""
    hidden = [p for p in out.rglob(".*")]
    assert not hidden, f"left behind: {hidden}"
    records = list(out.glob("*.json"))
    listed = set()
    for record in records:
        names = json.loads(record.read_text())["outputs"]
        assert all((out / n).is_file() for n in names), record
        listed.update(names)
    strays = {p.name for p in out.iterdir() if p.suffix != ".json"} - listed
    assert not strays, f"files of no complete set: {strays}"
    return len(records)


def wait_for_first_set(out: Path, process, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not list(out.glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize(
    "signum,phase,delay", TRIALS, ids=[f"{signal.Signals(s).name}-{p}+{d}s" for s, p, d in TRIALS]
)
def test_interrupted_run_leaves_only_complete_sets(tmp_path, photos, signum, phase, delay):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onnx_xai.cli",
            "explain",
            str(DEMO_MODEL),
            str(photos),
            "--method",
            "gradient",
            "gradcam",
            "--sheet",
            "--batch-size",
            "1",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if phase == "folder":
        wait_for_first_set(out, process)
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    done = complete_sets(out) if out.exists() else 0
    finished = process.returncode == 0 or (
        process.returncode == -signum and done == 12
    )  # signal after the end
    assert finished or process.returncode == 128 + signum, (process.returncode, stderr)
    assert done == 12 if process.returncode == 0 else done <= 12
    print(
        f"{signal.Signals(signum).name} at {phase}+{delay}s: exit {process.returncode}, {done} complete sets"
    )
