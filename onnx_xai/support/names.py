"""The names of the files ``explain`` writes, which never collide.

Every output of a photo (or a signal file) starts with its file name, extension kept
(``chelsea.jpg.gradcam.png``, ``chelsea.jpg.json``), under the photo's subfolder when it was found
in a folder argument; inputs that would still share a name (the same file name from two arguments)
get ``_2``, ``_3`` ... before the extension, chosen against every name of the run,
case-insensitively. Each photo's set is written through :class:`onnx_xai.support.files.Staging`
(moved in whole, the JSON record last, the previous set's leftovers removed, never through a
symbolic link).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath


def unique_names(wanted: Sequence[str]) -> list[str]:
    """``wanted`` (relative POSIX names), the repeats renamed ``stem_2.ext``, ``stem_3.ext`` ...
    to names no other input of the run has or takes."""
    reserved = {name.casefold() for name in wanted}
    used: set[str] = set()
    names = []
    for name in wanted:
        candidate, k = name, 1
        while candidate.casefold() in used or (candidate != name and candidate.casefold() in reserved):
            k += 1
            path = PurePosixPath(name)
            candidate = str(path.with_name(f"{path.stem}_{k}{path.suffix}"))
        used.add(candidate.casefold())
        names.append(candidate)
    return names
