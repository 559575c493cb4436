"""Regenerate the README's generated tables (between their markers): the supported ops, from the
rule registry; the methods, from the method registry; the ops the rewritten graphs use, per output
set and per forward op (``backward_ops.py``).

    python tools/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backward_ops import backward_ops_table, output_set_table  # noqa: E402

from onnx_xai.graph.rules import op_table  # noqa: E402
from onnx_xai.runtime.methods import method_table  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = {
    "op-table": op_table,
    "method-table": method_table,
    "output-set-ops": output_set_table,
    "backward-ops": backward_ops_table,
}


def render(text: str) -> str:
    for marker, table in TABLES.items():
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _, b=begin, t=table, e=end: f"{b}\n{t()}\n{e}", text)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
