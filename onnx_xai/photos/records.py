"""What one photo's explanation is written as: its pictures and its JSON record.

Per method, a picture of the photo with the method's map (a heatmap for the CAM family, a spotlight
for the gradient family, :mod:`onnx_xai.imaging.visuals`), the box in white and the objective's own region
in green; optionally a sheet of the methods side by side; and the JSON record (file, model sha256,
sizes, objective, per method its target, label, score, box and picture). Everything is staged
(:class:`onnx_xai.support.files.Staging`) for the caller to commit as one set; staging is safe to run in
worker threads (each photo its own files), committing stays with the caller.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..imaging.images import Prepared
from ..imaging.visuals import outline, photo_picture, sheet
from ..support.files import Staging

IMAGE_FORMATS = ("png", "jpg")


def pick(result, i: int) -> dict:
    """The ``i``-th photo's part of a batch's :class:`~onnx_xai.runtime.Explanation` (its box found
    here: pick in the threads that use it)."""
    return {
        "target": int(result.targets[i]),
        "score": float(result.scores[i]),
        "map": result.maps[i],
        "box": result.box(i).tolist(),
        "family": result.family,
        "signed": None if result.signed is None else result.signed[i],
        "note": result.note,
    }


def picks(results: dict, i: int) -> dict:
    """:func:`pick` for each method's results."""
    return {method: pick(result, i) for method, result in results.items()}


def _title(chosen: dict | None, target: int, opts) -> tuple[str, str | None]:
    """What a panel explains, in words, and the class label (None for seeds, or without labels)."""
    cls = target if chosen is None else chosen.get("class")
    label = opts.labels[cls] if opts.labels and cls is not None and 0 <= cls < len(opts.labels) else None
    if chosen is None:
        return str(label or target), label
    what = f"{chosen['kind']} {label or ('' if cls is None else cls)}".strip()
    return (what + (f" #{chosen['candidate']}" if "candidate" in chosen else "")), label


def stage_photo(
    path: Path,
    name: str,
    p: Prepared,
    per_method: dict,
    chosen: dict | None,
    staging: Staging,
    opts,
    sha256: str,
) -> tuple[list[str], str, dict]:
    """Write the photo's pictures, sheet and JSON record into the staging folder; returns the
    pictures' names, the record's name and the record (:meth:`Staging.commit` moves them in). The
    objective's own region (a detection, a dense region), when it has one, is outlined in green."""
    panels, entries, written = [], [], []
    for method, r in per_method.items():
        box = p.box_to_photo(r["box"]) if r["box"][2] > r["box"][0] else None
        what, label = _title(chosen, r["target"], opts)
        entry = {
            "method": method,
            "smoothgrad_samples": opts.smooth,
            "target": r["target"] if chosen is None else None,
            "label": label,
            "score": round(r["score"], 6),
            "box": list(box) if box else None,
            "overlay": None,
        } | ({"note": r["note"]} if r.get("note") else {})
        entries.append(entry)
        if not opts.overlays:
            continue
        picture = outline(
            photo_picture(p, r["family"], r["map"], r["signed"], box, opts.cmap, opts.alpha),
            (chosen or {}).get("photo_box"),
        )
        entry["overlay"] = f"{name}.{method}.{opts.image_format}"
        written.append(entry["overlay"])
        save_picture(picture, staging.path(entry["overlay"]), opts.image_format)
        panels.append((f"{('smooth ' if opts.smooth else '')}{method}: {what}", picture))
    record = {
        "file": str(path),
        "name": name,
        "model_sha256": sha256,
        "size": list(p.photo.size),
        "input_size": list(p.size),
        "fit": p.fit,
        "objective": chosen or {"kind": "class"},
        "explanations": entries,
    }
    if opts.sheets and panels:
        record["sheet"] = f"{name}.sheet.{opts.image_format}"
        written.append(record["sheet"])
        save_picture(sheet(p.photo, panels), staging.path(record["sheet"]), opts.image_format)
    record["outputs"] = written
    staging.path(f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return written, f"{name}.json", record


def save_picture(picture, path: Path, image_format: str) -> None:
    """PNG at zlib level 1 (7x faster than Pillow's default 6 on a 640 x 480 overlay, 15 % larger:
    encoding was two thirds of the command line's time), or JPEG at quality 90 (0.8 ms)."""
    if image_format == "jpg":
        picture.convert("RGB").save(path, format="JPEG", quality=90)
    else:
        picture.save(path, format="PNG", compress_level=1)
