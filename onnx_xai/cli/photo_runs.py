"""``onnx-xai explain`` on photos: their reading started before the model loads, and the run with its
progress bars (:func:`onnx_xai.photos.run.explain_files`).

Loading a model (parsing, analysing and rewriting its graph, compiling sessions) keeps one core busy
for a few tenths of a second; when the arguments name photos (image files, or folders holding some),
:func:`reads_ahead` starts decoding them meanwhile, on the core that loading leaves idle
(:class:`~onnx_xai.photos.reading.PhotoReads`). Nothing is decided from them before the model is
known: a model that turns out to take tables, texts or signals, or that cannot be loaded, drops them
unread, and every photo's problem is still said when the run checks them, in order, before anything
is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def reads_ahead(args: argparse.Namespace):
    """The photos named and their decoding, started (``(files, reads)``; the caller closes the
    reads), or None when the arguments do not name image files only."""
    from ..imaging.images import IMAGE_SUFFIXES, image_files
    from ..photos.reading import PhotoReads
    from ..support.errors import XaiError

    if not args.images or args.background:
        return None
    try:
        files = image_files(args.images, exclude=args.out)
    except (XaiError, OSError):
        return None  # said where the photos are listed for the run
    if any(path.suffix.lower() not in IMAGE_SUFFIXES for path, _ in files):
        return None
    return files, PhotoReads([path for path, _ in files])


def run_with_progress(ex, files, out: Path, opts, sha256: str, show: bool, on_skip, reads=None):
    """:func:`~onnx_xai.photos.run.explain_files` with a bar of photos (and of perturbed copies, for
    the sampling methods) on standard error when ``show``."""
    from tqdm import tqdm

    from ..photos.run import explain_files
    from ..runtime.methods import get
    from ..support.progress import CopiesListener

    def bar(total: int):
        return tqdm(total=total, unit="image", disable=not show, file=sys.stderr)

    sampled = any(get(m).forward_only for m in opts.methods)
    with tqdm(
        unit="copy", desc="perturbed copies", position=1, disable=not (show and sampled), file=sys.stderr
    ) as copies:
        with CopiesListener(copies.update):
            return explain_files(ex, files, out, opts, sha256, progress=bar, on_skip=on_skip, reads=reads)
