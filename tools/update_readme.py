"""Regenerate the supported-op table in README.md from the rule registry (between the markers).

    python tools/update_readme.py
"""
from __future__ import annotations

import re
from pathlib import Path

from onnx_xai.graph.registry import op_table

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- op-table:begin -->", "<!-- op-table:end -->"


def render(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    return pattern.sub(f"{BEGIN}\n{op_table()}\n{END}", text)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
