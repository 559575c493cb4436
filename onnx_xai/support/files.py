"""Writing files safely: atomically, with the permissions the umask allows, and through signals.

- :func:`write_atomic` writes into a temporary file in the destination folder, gives it the mode a
  plain ``open()`` would have given (``0o666`` less the umask; ``mkstemp`` makes 0600), and renames it
  into place: a reader sees the old file or the new one, never half of one.
- :class:`OutputFolder` is the folder a run writes into: its subfolders are created and entered one
  component at a time with ``O_NOFOLLOW`` from the folder's own descriptor, files are moved in and
  removed relative to their folder's descriptor, so a symbolic link planted inside it (a subfolder
  pointing elsewhere) is refused in one line instead of followed, whenever it was planted.
- :class:`Staging` is a hidden folder inside the output folder where a set of files (one photo's
  pictures and record, an audit's results and report) is written before it moves in whole, signals
  held (:mod:`onnx_xai.support.signals`); the files of the previous set that the new one lacks are removed, so
  a rerun never leaves a mix.

Only the standard library is used, so the graph layer can share it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path, PurePosixPath

from .errors import InputError, OutputError
from .signals import critical

STAGING_PREFIX = ".onnx-xai-staging-"
_lock = threading.Lock()
_mode: list[int] = []


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file."""
    with _lock:
        if not _mode:
            mask = os.umask(0o022)
            os.umask(mask)
            _mode.append(0o666 & ~mask)
        return _mode[0]


def write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the result to ``path``; nothing half-written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        with critical():
            Path(tmp).unlink(missing_ok=True)


class OutputFolder:
    """A folder a run writes into, never left through a symbolic link (module docstring).

    Names are relative POSIX paths (``sub/photo.jpg.json``); the folder itself is what the user
    named (a link given as ``--out`` is the user's choice) and must exist.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def check(self, folders: Iterable[str]) -> None:
        """Refuse, before anything is written, a subfolder that exists as a link or a file."""
        for folder in sorted(set(folders) - {"", "."}):
            fd = self._open(_parts(folder), create=False)
            if fd is not None:
                os.close(fd)

    def move_in(self, source: Path, name: str) -> None:
        """Rename ``source`` (on the same file system) to ``name``, creating its folders."""
        parts = _parts(name)
        fd = self._open(parts[:-1], create=True)
        assert fd is not None  # with create, a missing folder is made, never None
        try:
            os.replace(source, parts[-1], dst_dir_fd=fd)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        """Delete the file ``name`` if it is there (a link is removed, not followed)."""
        parts = _parts(name)
        fd = self._open(parts[:-1], create=False)
        if fd is None:
            return
        try:
            os.unlink(parts[-1], dir_fd=fd)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass
        finally:
            os.close(fd)

    def read_text(self, name: str) -> str | None:
        """The text of the regular file ``name``, or None when it is missing, a link or unreadable."""
        parts = _parts(name)
        fd = self._open(parts[:-1], create=False)
        if fd is None:
            return None
        try:
            file = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        with os.fdopen(file, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read().decode("utf-8", errors="replace")

    def _open(self, parts: list[str], create: bool) -> int | None:
        """A descriptor of the subfolder ``parts``, entered without following links; None when it is
        missing and ``create`` is false."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for k, part in enumerate(parts):
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if create:
                        raise
                    os.close(fd)
                    return None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    raise OutputError(self._refusal(fd, part, "/".join(parts[: k + 1]))) from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _refusal(self, parent: int, part: str, relative: str) -> str:
        where = self.root / relative
        if stat.S_ISLNK(os.lstat(part, dir_fd=parent).st_mode):
            return (
                f"{where} is a symbolic link (to {os.readlink(part, dir_fd=parent)}); outputs are "
                f"written only into real folders inside {self.root}"
            )
        return f"{where} is in the way: a file where an output folder goes"


def _parts(name: str) -> list[str]:
    parts = list(PurePosixPath(name).parts)
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".") for p in parts):
        raise OutputError(f"{name!r} is not a name inside the output folder")
    return parts


class Staging:
    """A hidden folder inside ``out`` where a set of files is written before it moves in whole."""

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


def commit_set(out: Path, writers: dict[str, Callable], known: Sequence[str]) -> None:
    """Write every file of ``writers`` (name -> function writing a path) into a staging folder,
    then move them into ``out`` together, removing the ``known`` outputs the set lacks; a file that
    cannot be written stops everything."""
    with Staging(out) as staging:
        for name, write in writers.items():
            try:
                write(staging.path(name))
            except OSError as exc:
                raise OutputError(
                    f"cannot write {out / name}: {exc.strerror or exc}; nothing was "
                    "changed in the output folder"
                ) from None
        staging.commit(list(writers), known)


def output_folder(out: Path) -> Path:
    """``out``, created if missing (a file there is refused in one line)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def sha256_of(path: str | os.PathLike) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
