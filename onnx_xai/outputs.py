"""The files ``explain`` writes: names that never collide, and each photo's set moved into place whole.

Names: every output of a photo starts with the photo's file name, extension kept
(``chelsea.jpg.gradcam.png``, ``chelsea.jpg.json``), under the photo's subfolder when it was found in
a folder argument; inputs that would still share a name (the same file name from two arguments) get
``_2``, ``_3`` ... before the extension, chosen against every name of the run, case-insensitively.

Sets: a photo's files are written into a hidden staging folder inside the output folder, then moved
into place with SIGINT/SIGTERM held (:func:`onnx_xai.files.critical`), the JSON record last; the
files of that photo's previous set (listed by its old record) that the new set lacks are removed, so
a rerun never leaves a mix. The staging folder is removed whatever happens. Folders are entered,
files moved in, old records read and stale files removed through :class:`onnx_xai.files.OutputFolder`,
so a symbolic link planted inside the output folder is refused, never followed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from .files import OutputFolder, critical, file_mode

STAGING_PREFIX = ".onnx-xai-staging-"


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


class Staging:
    """A hidden folder inside ``out`` where one photo's files are written before they move in."""

    def __init__(self, out: Path):
        self.out = out
        self.folder = OutputFolder(out)
        self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        with critical():  # a signal must not cut the clean-up short
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to write the output ``name`` (relative to ``out``) before the commit."""
        staged = self.dir / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def commit(self, names: Sequence[str], stale: Iterable[str] = ()) -> None:
        """Move the staged ``names`` into ``out`` in order (the one that completes the set last),
        signals held, and remove the ``stale`` names the new set lacks."""
        with critical():
            for name in names:
                os.chmod(self.path(name), file_mode())
                self.folder.move_in(self.path(name), name)
            for name in set(stale) - set(names):
                self.folder.remove(name)

    def previous_set(self, record: str) -> set[str]:
        """The files a photo's previous record lists (only names of that photo, inside ``out``)."""
        text = self.folder.read_text(record)
        try:
            old = json.loads(text) if text is not None else {}
        except ValueError:
            return set()
        listed = old.get("outputs", []) if isinstance(old, dict) else []
        prefix = record[: -len(".json")] + "."
        return {n for n in listed if isinstance(n, str) and n.startswith(prefix) and ".." not in n}
