"""The README's supported-op table is the one generated from the registry."""
from pathlib import Path

from onnx_xai.graph.registry import op_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_op_table_is_generated_from_registry():
    text = README.read_text()
    body = text.split("<!-- op-table:begin -->\n", 1)[1].split("\n<!-- op-table:end -->", 1)[0]
    assert body == op_table(), "run: python tools/update_readme.py"
