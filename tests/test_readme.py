"""The README's generated tables (ops, methods, ops the rewritten graphs use) are up to date."""

import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
sys.path.insert(0, str(README.parent / "tools"))
from update_readme import TABLES  # noqa: E402


@pytest.mark.parametrize("marker", list(TABLES))
def test_tables_are_generated_from_the_registries(marker):
    table = TABLES[marker]
    text = README.read_text()
    assert f"<!-- {marker}:begin -->" in text, f"the README lacks the {marker} markers"
    body = text.split(f"<!-- {marker}:begin -->\n", 1)[1].split(f"\n<!-- {marker}:end -->", 1)[0]
    assert body == table(), "run: python tools/update_readme.py"
