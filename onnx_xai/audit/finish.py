"""The steps both engines finish with: the sanity checks on the first photos, then ``results.jsonl``,
``maps.npz`` and ``report.html`` written as one set (a table audit, :mod:`.table_run`, shares the
sanity figures' attachment, the JSON writing and the commit).

Nothing is written until every photo has been explained and scored. The files are written into a
staging folder inside ``out`` and moved in as one set with signals held
(:class:`onnx_xai.support.files.Staging`): a full disk or a read-only folder leaves the previous set as it
was and says which file could not be written; a rerun replaces the set and removes what the new set
lacks (``results.parquet`` of an earlier Ray run); nothing else in the folder is touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..support.files import commit_set, output_folder
from .auditor import Auditor, PhotoAudit
from .sanity import cascading_randomization, random_target_check

OUTPUTS = ("results.jsonl", "maps.npz", "report.html")
ENGINE_OUTPUTS = ("results.parquet",)  # written by the Ray engine beside the three
# every file an audit writes, photos' or a table's (attributions.npz): a rerun removes the rest
KNOWN_OUTPUTS = OUTPUTS + ENGINE_OUTPUTS + ("attributions.npz",)


def sanity_steps(auditor: Auditor) -> int:
    return auditor.opts.randomization_steps + 1 if "randomization" in auditor.opts.sanity else 0


def run_sanity(auditor: Auditor, done: list[PhotoAudit], explainer_args: dict, tick: Callable | None) -> dict:
    """The sanity checks on the first ``sanity_photos`` photos (those of the first one's input size)."""
    from ..graph.model_io import load_model
    from ..runtime import Explainer

    opts, ex = auditor.opts, auditor.ex
    kept = [p for p in done if p.array is not None]  # the first sanity_photos photos
    chosen = [p for p in kept if p.array.shape == kept[0].array.shape][: opts.sanity_photos] if kept else []
    if not chosen or not opts.sanity:
        return {}
    x = np.concatenate([p.array for p in chosen])
    targets = np.array([p.records[0]["target"] for p in chosen], np.int64)
    original = {m: np.stack([p.maps[m] for p in chosen]) for m in opts.methods}
    result = {"files": [p.file for p in chosen]}
    if "random_target" in opts.sanity:
        classes = ex.num_classes or int(ex.predict(x[:1]).shape[-1])
        others, methods = random_target_check(
            ex, x, opts.methods, targets, original, classes, opts.protocol.noise_seed, auditor.options
        )
        result["random_target"] = {"targets": others.tolist(), "methods": methods}
    if "randomization" in opts.sanity:
        model = load_model(auditor.model_path)[0]
        if any(p.key == "onnx_xai" for p in model.metadata_props):
            result["randomization_skipped"] = "a rewritten model: give the original to re-draw its weights"
        else:
            args = explainer_args | {"target_layer": ex.target_layers}
            result["randomization"] = cascading_randomization(
                model,
                lambda m: Explainer(m, **args),
                x,
                opts.methods,
                targets,
                original,
                opts.randomization_steps,
                opts.protocol.noise_seed,
                auditor.options,
                tick,
            )
    return result


def attach_sanity(done: Sequence, sanity: dict) -> None:
    """Each checked sample's method records (of a photo, or a table's row: ``file`` and ``records``)
    get their own sanity figures, one key per measure (``random_target_spearman``,
    ``randomization_ssim`` ...)."""
    for i, name in enumerate(sanity.get("files", [])):
        sample = next(p for p in done if p.file == name)
        for record in sample.records:
            method = record["method"]
            if method in sanity.get("random_target", {}).get("methods", {}):
                figures = sanity["random_target"]["methods"][method]
                record["random_target"] = sanity["random_target"]["targets"][i]
                record.update({f"random_target_{k}": values[i] for k, values in figures.items()})
            steps = sanity.get("randomization", [])
            if steps and method in steps[0]["methods"]:
                record["randomization_layers"] = [s["layers"] for s in steps]
                for measure in steps[0]["methods"][method]:
                    record[f"randomization_{measure}"] = [s["methods"][method][measure][i] for s in steps]


def write_outputs(
    out: Path,
    auditor: Auditor,
    done: list[PhotoAudit],
    sanity: dict,
    failures: Sequence[tuple[str, str]] = (),
    extra: dict[str, Callable] | None = None,
) -> dict:
    """``results.jsonl``, ``maps.npz`` and ``report.html`` (and the ``extra`` files, by name: a
    function writing a path) in ``out``, as one set; ``failures`` (photo, reason) are listed in the
    report."""
    from .report import render

    out = output_folder(Path(out))
    records = [r for p in done for r in p.records]
    lines = json_lines(records)
    html = render(auditor.model_facts(), auditor.opts, done, records, sanity, failures)
    arrays = {"files": np.array([p.file for p in done])}
    for i, photo in enumerate(done):
        for method, raw in photo.raws.items():
            arrays[f"{i:05d}/{method}/raw"] = np.asarray(raw, np.float32)
            arrays[f"{i:05d}/{method}/map"] = photo.maps[method].astype(np.float32)
    writers = {
        "results.jsonl": lambda path: path.write_text(lines, encoding="utf-8"),
        "maps.npz": lambda path: save_npz(path, arrays),
        "report.html": lambda path: path.write_text(html, encoding="utf-8"),
    } | (extra or {})
    commit_set(out, writers, KNOWN_OUTPUTS)
    return {name: str(out / name) for name in writers}


def save_npz(path: str, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def json_lines(records, ascii_only: bool = True) -> str:
    """``results.jsonl``: one record per line, non-finite numbers as null (:func:`finite_json`)."""
    return "".join(
        json.dumps(finite_json(r), allow_nan=False, default=plain_json, ensure_ascii=ascii_only) + "\n"
        for r in records
    )


def finite_json(value):
    """JSON has no NaN or infinity: a non-finite number (a map of an overflowing model) becomes null."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def plain_json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
