"""Regenerate the README's generated tables (between their markers): the supported ops, from the
rule registry, and the methods, from the method registry.

    python tools/update_readme.py
"""
from __future__ import annotations

import re
from pathlib import Path

from onnx_xai.graph.registry import op_table
from onnx_xai.runtime.methods import method_table

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = {"op-table": op_table, "method-table": method_table}


def render(text: str) -> str:
    for marker, table in TABLES.items():
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: f"{begin}\n{table()}\n{end}", text)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
