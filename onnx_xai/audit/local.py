"""The local engine: every batch of photos through one :class:`~.auditor.Auditor` in this process, a
progress bar over the photos and the sanity checks, then the finishing steps (:mod:`.finish`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .auditor import AuditOptions, Auditor, PhotoAudit, audit_batch
from .finish import attach_sanity, run_sanity, sanity_steps, write_outputs


def audit_locally(
    model: str,
    photos: Sequence[tuple[Path, str]],
    out: Path,
    opts: AuditOptions,
    explainer_args: dict | None = None,
    progress: Callable | None = None,
    explainer=None,
) -> dict:
    """Audit ``photos`` in this process; returns the paths written (:func:`.run.audit`)."""
    from ..runtime import Explainer

    explainer_args = dict(explainer_args or {})
    auditor = Auditor(explainer or Explainer(model, **explainer_args), model, opts)
    bar = progress(len(photos) + sanity_steps(auditor)) if progress else None
    try:
        done = audit_photos(auditor, list(photos), bar)
        sanity = run_sanity(auditor, done, explainer_args, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    attach_sanity(done, sanity)
    return write_outputs(out, auditor, done, sanity)


def audit_photos(
    auditor: Auditor, photos: list[tuple[Path, str]], bar: Callable | None = None
) -> list[PhotoAudit]:
    """Every photo, in batches (one photo per batch when the model takes any size)."""
    step = auditor.opts.batch_size if auditor.preprocessing["size"] is not None else 1
    done = []
    for k in range(0, len(photos), step):
        done += audit_batch(auditor, photos[k : k + step], k)
        if bar is not None:
            bar.update(len(photos[k : k + step]))
    return done
