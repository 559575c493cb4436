"""``tools/bench.py --quick`` runs end to end on a tiny model, so the benchmark cannot rot (no
timing is asserted: these machines are noisy)."""

import json
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def test_bench_quick_runs(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "bench.py"),
            "--quick",
            "--json",
            str(out),
            "--chart",
            str(tmp_path / "chart.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads(out.read_text())
    configs = {r["config"] for r in table["rows"]}
    assert {"ort forward", "gradient", "smoothgrad-50", "cam", "gradcam", "gradient+cam+gradcam"} <= configs
    assert all(r["median_ms"] > 0 for r in table["rows"])
    assert table["cli"][0]["images_per_s"] > 0
    assert (tmp_path / "chart.png").stat().st_size > 0
