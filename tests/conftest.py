"""Fixtures shared across test modules."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from .graph.test_augment import export, small_cnn
from .text.conftest import bert, distilbert, roberta  # noqa: F401 - the text models, for the audits' tests too
from .torch_fixes import exact_batch_norm


@pytest.fixture(scope="session", autouse=True)
def torch_references_are_derivatives():
    """Every torch reference in the suite gets exact BatchNorm gradients (see tests/torch_fixes.py)."""
    with exact_batch_norm():
        yield


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A small CNN classifier (3 x 8 x 8 input, 3 classes) saved as an ONNX file."""
    path = tmp_path_factory.mktemp("model") / "small.onnx"
    onnx.save(export(small_cnn(), (1, 3, 8, 8)), path)
    return path
