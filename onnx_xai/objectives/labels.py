"""Class names: from a file (one per line), from the model's own metadata (``names``, ``classes``,
``labels``, ``class_names`` or ``character``: a JSON or Python list, an index -> name mapping as
ultralytics writes it, or names one per line or comma-separated), the bundled ImageNet names for
1000-class models, and a class asked for by index or by name.

A name is matched case-insensitively; a name that several classes share is refused with their
indices, never resolved to the first silently.
"""

from __future__ import annotations

import ast
import json
import os
from importlib import resources
from pathlib import Path

from ..support.errors import InputError

IMAGENET_LABELS = resources.files("onnx_xai") / "data" / "imagenet_classes.txt"


METADATA_KEYS = ("names", "classes", "labels", "class_names", "character")


def read_labels(
    path: str | os.PathLike | None, classes: int | None, metadata: dict | None = None
) -> list[str]:
    """Class names from a file (one per line); else from the model's metadata; else the bundled
    ImageNet names for 1000-class models. ``classes`` None (a model whose output does not declare its
    size) skips the count check."""
    source: object = path
    if path is None:
        found = labels_from_metadata(metadata or {}, classes)
        if found is not None:
            return found[0]
        if classes != 1000:
            return []
        source = IMAGENET_LABELS
    path = str(source)
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}") from None
    names = [n for n in names if n]
    if classes is not None and len(names) != classes:
        raise InputError(f"labels file {path} has {len(names)} names, the model has {classes} classes")
    return names


def labels_from_metadata(metadata: dict, classes: int | None) -> tuple[list[str], str] | None:
    """The class names a model's metadata holds, with the key they came from; None when no key holds
    a list of names (of the model's class count, when known)."""
    for key in METADATA_KEYS:
        names = _names(metadata.get(key))
        if names and (classes is None or len(names) == classes):
            return names, key
    return None


def _names(text: str | None) -> list[str] | None:
    """Names from a JSON or Python list or index -> name mapping, else one per line or comma-separated."""
    if not text or not text.strip():
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict) and all(str(k).lstrip("-").isdigit() for k in value):
            ordered = sorted((int(k), str(v)) for k, v in value.items())
            return (
                [name for _, name in ordered]
                if [k for k, _ in ordered] == list(range(len(ordered)))
                else None
            )
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
        return None
    separator = "\n" if "\n" in text.strip() else ","
    names = [n.strip() for n in text.strip().split(separator)]
    return names if len(names) > 1 and all(names) else None


def parse_target(text: str | None, labels: list[str], classes: int | None) -> int | None:
    """A class index from a number or a label name (case-insensitive), or None for -1 (each photo's
    top-1 class, as the API's -1); the range is checked when the class count is known (the Explainer
    checks it again at run time). A name that several classes share is refused with their indices."""
    if text is None or text.strip() == "-1":
        return None
    if text.lstrip("-").isdigit():
        index = int(text)
    else:
        matches = [k for k, name in enumerate(labels) if name.lower() == text.lower()]
        if not matches:
            raise InputError(f"unknown class {text!r}" + ("" if labels else " (no labels: give --labels)"))
        if len(matches) > 1:
            raise InputError(
                f"the label {text!r} names {len(matches)} classes ({', '.join(map(str, matches))}); "
                "give the class index instead"
            )
        index = matches[0]
    if index < 0 or classes is not None and index >= classes:
        size = f" for a model with {classes} classes" if classes is not None else ""
        raise InputError(f"class {index} is out of range{size}")
    return index
