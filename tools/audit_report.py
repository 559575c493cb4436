"""The audit of the bundled model and photos with every method: the README's screenshot and the table.

Runs ``onnx-xai audit`` on the bundled EfficientNet-Lite0 and photos with all fourteen methods and
every metric and sanity check, prints the summary (the closing note's table), and screenshots the top
of ``report.html`` in headless Chromium into ``docs/audit-report.jpg``.

    python tools/audit_report.py [--out /tmp/audit] [--methods gradient gradcam ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from onnx_xai.cli import main as cli  # noqa: E402
from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS  # noqa: E402
from onnx_xai.runtime.methods import METHOD_NAMES  # noqa: E402


def screenshot(report: Path, picture: Path, height: int = 2300, width: int = 1280) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={shot}",
                report.resolve().as_uri(),
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        Image.open(shot).convert("RGB").save(picture, quality=82)
    print(f"wrote {picture}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "onnx-xai-audit"))
    parser.add_argument("--methods", nargs="+", default=list(METHOD_NAMES))
    parser.add_argument("--picture", default=str(ROOT / "docs" / "audit-report.jpg"))
    args = parser.parse_args()
    start = time.perf_counter()
    if cli(["audit", str(DEMO_MODEL), str(DEMO_PHOTOS), "--methods", *args.methods, "--out", args.out]) != 0:
        raise SystemExit("onnx-xai audit failed")
    print(
        f"audit of {len(list(Path(str(DEMO_PHOTOS)).iterdir()))} photos, {len(args.methods)} methods: "
        f"{time.perf_counter() - start:.0f} s"
    )
    screenshot(Path(args.out) / "report.html", Path(args.picture))


if __name__ == "__main__":
    main()
