"""``audit``: which engine runs the photos (this process, or Ray Data); both finish alike (:mod:`.finish`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..support.errors import InputError
from .auditor import AuditOptions

ENGINES = ("local", "ray")


def audit(
    model: str,
    photos: Sequence[tuple[Path, str]],
    out: Path,
    opts: AuditOptions,
    explainer_args: dict | None = None,
    progress: Callable | None = None,
    engine: str = "local",
    ray_options: dict | None = None,
    explainer=None,
) -> dict:
    """Audit ``photos`` (``(path, shown name)`` pairs) on ``model``; returns the paths written.

    ``explainer_args`` go to every :class:`~onnx_xai.Explainer` made (target layer, threads, backend,
    input and output names); ``progress(total)`` returns a progress bar (``update``, ``close``).
    ``engine="ray"`` runs the photos on Ray Data (:mod:`.ray_engine`; ``ray_options``: ``address``,
    ``actors``, ``cpus_per_actor``), which also returns ``failures``: (photo, reason) pairs.
    ``explainer``: the local engine's Explainer, already made on ``model`` with ``explainer_args``.
    A table model's rows are audited by :func:`.table_run.audit_table`.
    """
    if engine == "ray":
        from .ray_engine import audit_on_ray

        return audit_on_ray(model, photos, out, opts, explainer_args, **(ray_options or {}))
    if engine != "local":
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    from .local import audit_locally

    return audit_locally(model, photos, out, opts, explainer_args, progress, explainer)
