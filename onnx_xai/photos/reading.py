"""Photo files read ahead of the runs, and the stages that share its worker threads.

A :class:`PhotoReads` starts decoding its photos as soon as it is made, in worker threads (Pillow
releases the GIL while it decodes); the command line makes it before the model is loaded, so that
decoding takes the core that loading leaves idle (loading is mostly Python: measured, two decoding
threads beside it do not slow it, and finish sooner than one). Once the model's preprocessing is known
(:meth:`~PhotoReads.settle`), each photo is made into its input right after it is decoded, while it is
still in the processor's caches. Photos and inputs are kept, up to :data:`CACHE_BYTES`, for the run;
each photo's size and, for one that does not decode, why, are kept for every photo.
:meth:`~PhotoReads.readable` checks them all in order before anything is written (a bad photo stops
the run, or with ``keep_going`` is left out); :meth:`~PhotoReads.prepared` is a read stage (the inputs
not made yet made, photos not kept decoded again) and :meth:`~PhotoReads.stage` runs any other stage (a
batch's pictures and records) in the same threads. Each stage is waited for whole, so that nothing
runs beside the model, as in the server (:mod:`onnx_xai.serve.batching`: on a few cores a thread
beside a run can slow every thread of the run to the pace of the one it preempts; for the command
line's photos, staged and overlapped gave the same throughput, docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from PIL import Image

from ..imaging.images import Prepared, load_image, prepare
from ..support.errors import InputError
from ..support.signals import critical

WORKERS = 2  # decoding and encoding threads, between runs (measured on 2 cores: docs/benchmarks.md)
CACHE_BYTES = 256 * 2**20  # photos (RGB) and their inputs kept from the check for the run, at most


class PhotoReads:
    """Photos decoded ahead in worker threads (the module docstring)."""

    def __init__(self, paths: Iterable[Path], workers: int = WORKERS):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx-xai-read")
        self._lock = threading.Lock()
        self._kept: dict[Path, tuple[Image.Image | Prepared, dict | None, int]] = {}
        self._bytes = 0
        self._settings: dict | None = None
        self._found: dict[Path, Future] = {}
        self.add(paths)

    def add(self, paths: Iterable[Path]) -> None:
        """Start decoding the ``paths`` not asked for yet."""
        for path in paths:
            if path not in self._found:
                self._found[path] = self._pool.submit(self._decode, path)

    def settle(self, settings: dict) -> None:
        """The photos decoded from now on are made into inputs (:func:`prepare`'s ``settings``) at
        once, while they are still in the processor's caches."""
        self._settings = settings

    def _decode(self, path: Path) -> tuple[tuple[int, int] | None, str | None]:
        try:
            photo = load_image(path)
        except InputError as exc:
            return None, str(exc)
        held: Image.Image | Prepared = photo
        settings = self._settings
        if settings is not None and self._bytes + 6 * photo.width * photo.height <= CACHE_BYTES:
            try:
                held = prepare(photo, **settings)
            except InputError:
                settings = None  # said where the run prepares it
        cost = 3 * photo.width * photo.height + (held.array.nbytes if isinstance(held, Prepared) else 0)
        with self._lock:
            if self._bytes + cost <= CACHE_BYTES:
                self._kept[path] = (held, settings, cost)
                self._bytes += cost
        return photo.size, None

    def readable(self, pairs: Sequence[tuple[Path, str]], keep_going: bool, on_skip=None) -> list:
        """The (path, name) pairs whose photos decode, in order; without ``keep_going`` the first that
        does not raises, else ``on_skip(path, reason)`` is called for each left out."""
        self.add(path for path, _ in pairs)
        kept = []
        for path, name in pairs:
            reason = self._found[path].result()[1]
            if reason is None:
                kept.append((path, name))
                continue
            if not keep_going:
                raise InputError(reason)
            if on_skip is not None:
                on_skip(path, reason)
        if not kept:
            raise InputError("none of the photos could be read")
        return kept

    def size(self, path: Path) -> tuple[int, int]:
        """The photo's upright (width, height), once :meth:`readable` has passed it."""
        found = self._found[path].result()[0]
        assert found is not None  # readable() left out the photos that do not decode
        return found

    def prepared(self, paths: Sequence[Path], settings: dict) -> list[Prepared]:
        """A read stage: the photos made into the model's inputs (:func:`prepare`'s ``settings``),
        each handed out once (those not kept from the check decoded again)."""
        return self.stage(lambda path: self._ready(path, settings), paths)

    def _ready(self, path: Path, settings: dict) -> Prepared:
        with self._lock:
            held, made_with, cost = self._kept.pop(path, (None, None, 0))
            self._bytes -= cost
        if isinstance(held, Prepared):
            if made_with is settings:
                return held
            held = held.photo
        return prepare(held if held is not None else load_image(path), **settings)

    def stage(self, work: Callable[[Any], Any], items: Sequence) -> list:
        """``work`` on every item in the worker threads, all finished before this returns (the first
        error raised once every item is done or failed), the results in order."""
        futures = [self._pool.submit(work, item) for item in items]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # on an error or a signal, the items not started are dropped, the others finish
            for future in futures:
                future.cancel()
            with critical():
                wait(futures)
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop: the decodings not started are dropped, the ones running finish."""
        with critical():
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._kept.clear()
            self._bytes = 0

    def __enter__(self) -> PhotoReads:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
