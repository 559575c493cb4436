"""The audit on Ray Data: the local engine's per-batch work spread over a pool of actors.

The photos are cut into the same batches as the local engine's (``batch_size`` photos each, in order),
one dataset row per batch; ``map_batches`` sends each row to an actor of :class:`BatchAuditor`, which
builds one Explainer when it starts (sessions once per actor, never per batch) and runs
:func:`~onnx_xai.audit.auditor.audit_batch` on it, so every photo meets the same arithmetic as on one
machine. Each photo comes back as a row (its records, maps and report pictures serialized, or the
error that stopped it) written as Parquet parts into ``out/parts``: a rerun reads them and skips the
batches whose photos are all done. The driver then reads the parts back, runs the sanity checks on the
first photos and writes the same ``results.jsonl``, ``maps.npz`` and ``report.html`` as the local
engine, plus ``results.parquet`` (one row per photo and method).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..support.errors import InputError, XaiError
from .auditor import AuditOptions, PhotoAudit

PARTS = "parts"
SCALARS = (
    "file",
    "method",
    "target",
    "label",
    "score",
    "probability",
    "deletion_auc",
    "insertion_auc",
    "road",
    "road_morf",
    "road_lerf",
    "pointing_hit",
    "box_iou",
    "random_target",
    "random_target_spearman",
    "random_target_ssim",
)


class BatchAuditor:
    """A Ray actor: one Auditor for its lifetime, one batch of photos per call."""

    def __init__(self, model: str, opts: AuditOptions, explainer_args: dict):
        from ..runtime import Explainer
        from .auditor import Auditor

        self.auditor = Auditor(Explainer(model, **explainer_args), model, opts)

    def __call__(self, batch: dict) -> dict:
        from .auditor import audit_batch

        start, paths, shown = (
            int(batch["start"][0]),
            json.loads(batch["paths"][0]),
            json.loads(batch["shown"][0]),
        )
        photos = [(Path(p), s) for p, s in zip(paths, shown)]
        try:
            results = [(r, "") for r in audit_batch(self.auditor, photos, start)]
        except (XaiError, OSError):  # one bad photo must not take its batch with it: each on its own
            results = [_alone(self.auditor, photo, start + i) for i, photo in enumerate(photos)]
        rows = [
            to_row(start + i, name, audit, error)
            for i, ((_, name), (audit, error)) in enumerate(zip(photos, results))
        ]
        return {k: [row[k] for row in rows] for k in rows[0]}


def _alone(auditor, photo: tuple[Path, str], index: int) -> tuple[PhotoAudit | None, str]:
    from .auditor import audit_batch

    try:
        return audit_batch(auditor, [photo], index)[0], ""
    except (XaiError, OSError) as exc:
        return None, " ".join(str(exc).split()) or type(exc).__name__


def to_row(index: int, name: str, audit: PhotoAudit | None, error: str) -> dict:
    """One photo as a Parquet row: records as JSON, maps and raws as npz bytes, pictures as base64."""
    if audit is None:
        return {"index": index, "file": name, "records": "[]", "maps": b"", "pictures": "{}", "error": error}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **{f"map/{k}": v for k, v in audit.maps.items()},
        **{f"raw/{k}": v for k, v in audit.raws.items()},
    )
    pictures = {k: base64.b64encode(v).decode("ascii") for k, v in audit.pictures.items()}
    from .finish import finite_json, plain_json

    return {
        "index": index,
        "file": name,
        "records": json.dumps(finite_json(audit.records), default=plain_json),
        "maps": buffer.getvalue(),
        "pictures": json.dumps(pictures),
        "error": "",
    }


def from_row(row: dict) -> PhotoAudit:
    arrays = np.load(io.BytesIO(row["maps"]))
    maps = {k.split("/", 1)[1]: arrays[k] for k in arrays.files if k.startswith("map/")}
    raws = {k.split("/", 1)[1]: arrays[k] for k in arrays.files if k.startswith("raw/")}
    pictures = {k: base64.b64decode(v) for k, v in json.loads(row["pictures"]).items()}
    return PhotoAudit(row["file"], json.loads(row["records"]), maps, raws, None, pictures)


def finished(parts: Path) -> dict:
    """The rows already written, by file name (a photo that failed is not finished)."""
    import pyarrow.parquet as pq

    if not parts.is_dir() or not any(parts.glob("*.parquet")):
        return {}
    table = pq.read_table(str(parts)).to_pylist()
    return {row["file"]: row for row in sorted(table, key=lambda r: r["index"]) if not row["error"]}


def audit_on_ray(
    model: str,
    photos: Sequence[tuple[Path, str]],
    out: Path,
    opts: AuditOptions,
    explainer_args: dict | None = None,
    address: str | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1,
) -> dict:
    """The audit as a Ray Data pipeline (module docstring); returns the paths written and the failures."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'onnx_xai[ray]'") from None
    from ..support.files import OutputFolder, output_folder

    explainer_args = dict(explainer_args or {})
    out = output_folder(Path(out))
    OutputFolder(out).check([PARTS])  # Ray writes the parts: never through a planted link
    parts = out / PARTS
    rows = finished(parts)
    pending = _batches(photos, opts.batch_size, set(rows))
    if pending:
        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", include_dashboard=False)
        _quiet(ray)
        dataset = ray.data.from_items(pending, override_num_blocks=len(pending)).map_batches(
            BatchAuditor,
            fn_constructor_kwargs={"model": model, "opts": opts, "explainer_args": explainer_args},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor,
            batch_format="numpy",
        )
        dataset.write_parquet(str(parts))
    return finish(model, photos, out, opts, explainer_args)


def _quiet(ray) -> None:
    """Ray Data's log lines (its plan, and progress every 10 s when not on a terminal) would drown
    the command's own output; its progress bars on a terminal stay."""
    import logging

    ray.data.DataContext.get_current().print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _batches(photos: Sequence[tuple[Path, str]], size: int, done: set) -> list[dict]:
    """The local engine's batches that still have a photo to do, as dataset rows."""
    out = []
    for start in range(0, len(photos), size):
        chunk = photos[start : start + size]
        if any(name not in done for _, name in chunk):
            out.append(
                {
                    "start": start,
                    "paths": json.dumps([str(p) for p, _ in chunk]),
                    "shown": json.dumps([name for _, name in chunk]),
                }
            )
    return out


def finish(
    model: str, photos: Sequence[tuple[Path, str]], out: Path, opts: AuditOptions, explainer_args: dict
) -> dict:
    """Read the parts back in photo order, run the sanity checks here, write the outputs."""
    import pyarrow.parquet as pq

    from ..imaging.images import load_image, prepare
    from ..runtime import Explainer
    from .auditor import Auditor
    from .finish import attach_sanity, run_sanity, write_outputs

    table = pq.read_table(str(out / PARTS)).to_pylist()
    latest = {row["file"]: row for row in sorted(table, key=lambda r: (r["error"] == "", r["index"]))}
    order = {name: i for i, (_, name) in enumerate(photos)}
    rows = sorted((r for r in latest.values() if r["file"] in order), key=lambda r: order[r["file"]])
    failures = [(r["file"], r["error"]) for r in rows if r["error"]]
    done = [from_row(r) for r in rows if not r["error"]]
    auditor = Auditor(Explainer(model, **explainer_args), model, opts)
    paths = dict((name, path) for path, name in photos)
    for audit in done[: opts.sanity_photos]:
        audit.array = prepare(load_image(paths[audit.file]), **auditor.preprocessing).array
    sanity = run_sanity(auditor, done, explainer_args, None)
    attach_sanity(done, sanity)
    written = write_outputs(
        out, auditor, done, sanity, failures, {"results.parquet": lambda path: _write_table(path, done)}
    )
    return written | {"failures": failures}


def _write_table(path: Path, done: list[PhotoAudit]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [r for p in done for r in p.records]
    columns = {k: [r.get(k) for r in records] for k in SCALARS}
    columns["record"] = [json.dumps(r) for r in records]
    pq.write_table(pa.table(columns), str(path))
