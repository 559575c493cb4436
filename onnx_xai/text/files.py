"""A text encoder's files, found beside its ONNX file: the model in an export folder, its
``tokenizer.json`` and the class names of its ``config.json``.

An Optimum export folder holds ``model.onnx``, ``tokenizer.json``, ``tokenizer_config.json`` and
``config.json``; a model may be named by the folder or by the ``.onnx`` file inside it, and a tokenizer
by its ``tokenizer.json``, the folder holding one, or the model file beside which one lies. Only the
standard library is used (``inspect`` describes a tokenizer from its JSON without importing
``tokenizers``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..support.errors import InputError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


PREFERRED_FILES = ("model.onnx", "decoder_model_merged.onnx")  # a folder's model, in this order


def model_file(path: str | os.PathLike) -> str:
    """``path`` itself, or for a folder the one ONNX model inside it (``model.onnx`` first, then
    Optimum's ``decoder_model_merged.onnx`` beside its two halves)."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    for name in PREFERRED_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    found = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if len(found) != 1:
        what = (
            "no .onnx file" if not found else f"{len(found)} .onnx files ({', '.join(p.name for p in found)})"
        )
        raise InputError(f"{folder} holds {what}: name the model file")
    return str(found[0])


def tokenizer_file(path: str | os.PathLike) -> Path | None:
    """The ``tokenizer.json`` that ``path`` names: itself, the one in a folder, or the one beside a
    model file; None when there is none."""
    given = Path(path)
    if given.is_dir():
        found = given / TOKENIZER_FILE
    elif given.suffix == ".json":
        found = given
    else:
        found = given.parent / TOKENIZER_FILE
    return found if found.is_file() else None


def read_json(path: Path) -> dict:
    """A JSON object from a file of the model's folder ({} when it is missing)."""
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return found if isinstance(found, dict) else {}


def config_labels(folder: Path) -> list[str] | None:
    """The class names of ``config.json``'s ``id2label`` in index order, where it holds 0..K-1."""
    mapping = read_json(folder / CONFIG_FILE).get("id2label")
    if not isinstance(mapping, dict) or not mapping:
        return None
    try:
        by_index = {int(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))):
        return None
    return [by_index[k] for k in range(len(by_index))]


def describe_tokenizer(path: Path) -> dict:
    """What a ``tokenizer.json`` is, read as JSON: its model type, vocabulary size and special tokens."""
    found = read_json(path)
    model = found["model"] if isinstance(found.get("model"), dict) else {}
    vocab = model.get("vocab")
    added = [t for t in found.get("added_tokens") or [] if isinstance(t, dict)]
    return {
        "path": str(path),
        "model": model.get("type"),
        "vocabulary": len(vocab) if isinstance(vocab, (dict, list)) else None,
        "special": [t.get("content") for t in added if t.get("special")],
    }


def describe_text_model(model: str | os.PathLike) -> dict:
    """For ``inspect``: the tokenizer found beside a text encoder's file (or None) and its labels."""
    path = Path(model_file(model))
    tokenizer = tokenizer_file(path)
    return {
        "tokenizer": describe_tokenizer(tokenizer) if tokenizer is not None else None,
        "labels": config_labels(path.parent),
    }
