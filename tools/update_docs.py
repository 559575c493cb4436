"""Regenerate the documentation's generated parts: the tables between their markers (the supported ops,
from the rule registry, ``docs/ops.md``; the methods, from the method registry, ``docs/python.md``;
the ops the rewritten graphs use, per output set and per forward op, ``docs/runtimes.md``, from
``backward_ops.py``) and the site's home page, ``docs/index.md``, which is the README with its links
made relative to ``docs/``.

    python tools/update_docs.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backward_ops import backward_ops_table, output_set_table  # noqa: E402

from onnx_xai.graph.rules import op_table  # noqa: E402
from onnx_xai.runtime.methods import anchor_table, method_table, readme_method_table  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
# marker -> (the page that holds the table, the function that makes it)
TABLES = {
    "op-table": ("ops.md", op_table),
    "method-table": ("python.md", method_table),
    "readme-methods": ("../README.md", readme_method_table),
    "anchor-table": ("../README.md", anchor_table),
    "output-set-ops": ("runtimes.md", output_set_table),
    "backward-ops": ("runtimes.md", backward_ops_table),
}


def home_page(readme: str) -> str:
    """The README as the site's home page: links into ``docs/`` made relative to it."""
    text = readme.replace("[`docs/`](docs/)", "`docs/`")
    return re.sub(r"\]\(docs/([^)]*)\)", r"](\1)", text)


def render(text: str, markers: list[str]) -> str:
    """``text`` with the tables of ``markers`` regenerated between their begin and end comments."""
    for marker in markers:
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        table = TABLES[marker][1]
        text = pattern.sub(lambda _, b=begin, t=table, e=end: f"{b}\n{t()}\n{e}", text)
    return text


if __name__ == "__main__":
    for page in sorted({page for page, _ in TABLES.values()}):
        path = DOCS / page
        path.write_text(render(path.read_text(), [m for m, (p, _) in TABLES.items() if p == page]))
        print(f"updated {path}")
    (DOCS / "index.md").write_text(
        home_page((DOCS.parent / "README.md").read_text())
    )  # after README's tables
    print(f"updated {DOCS / 'index.md'}")
