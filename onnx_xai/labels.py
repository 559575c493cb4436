"""Class names: from a file (one per line), the bundled ImageNet names for 1000-class models, and a
class asked for by index or by name.

A name is matched case-insensitively; a name that several classes share is refused with their
indices, never resolved to the first silently.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import InputError

IMAGENET_LABELS = resources.files("onnx_xai") / "data" / "imagenet_classes.txt"


def read_labels(path: str | os.PathLike | None, classes: int | None) -> list[str]:
    """Class names from a file (one per line); the bundled ImageNet names for 1000-class models.
    ``classes`` None (a model whose output does not declare its size) skips the count check."""
    if path is None:
        if classes != 1000:
            return []
        path = IMAGENET_LABELS
    try:
        names = [line.strip() for line in Path(str(path)).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}") from None
    names = [n for n in names if n]
    if classes is not None and len(names) != classes:
        raise InputError(f"labels file {path} has {len(names)} names, the model has {classes} classes")
    return names


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
