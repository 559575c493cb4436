"""The README's op and method tables are the ones generated from the registries."""
from pathlib import Path

import pytest

from onnx_xai.graph.registry import op_table
from onnx_xai.runtime.methods import method_table

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("marker,table", [("op-table", op_table), ("method-table", method_table)])
def test_tables_are_generated_from_the_registries(marker, table):
    text = README.read_text()
    assert f"<!-- {marker}:begin -->" in text, f"the README lacks the {marker} markers"
    body = text.split(f"<!-- {marker}:begin -->\n", 1)[1].split(f"\n<!-- {marker}:end -->", 1)[0]
    assert body == table(), "run: python tools/update_readme.py"
