"""The documentation's generated tables (ops, methods, ops the rewritten graphs use) are up to date,
and the README stays the one screen a newcomer reads (at most 250 lines, the two commands first)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from update_docs import TABLES, home_page  # noqa: E402


@pytest.mark.parametrize("marker", list(TABLES))
def test_tables_are_generated_from_the_registries(marker):
    page, table = TABLES[marker]
    text = (ROOT / "docs" / page).read_text()
    assert f"<!-- {marker}:begin -->" in text, f"docs/{page} lacks the {marker} markers"
    body = text.split(f"<!-- {marker}:begin -->\n", 1)[1].split(f"\n<!-- {marker}:end -->", 1)[0]
    assert body == table(), "run: python tools/update_docs.py"


def test_the_readme_fits_on_a_screen_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    head = "\n".join(text.splitlines()[:40])
    assert "pip install -e . && onnx-xai demo" in head and "bash .ci/run" in head


def test_the_home_page_is_the_readme():
    assert (ROOT / "docs" / "index.md").read_text() == home_page((ROOT / "README.md").read_text()), (
        "run: python tools/update_docs.py"
    )
