"""What a served request asks for, read and checked: its instances and its ``parameters``.

Instances are photos, ``{"image_bytes": {"b64": "..."}}`` (KServe's binary convention), decoded in
memory and made into the model's input as ``explain`` does (the server's preprocessing), or arrays
already in the model's input shape and layout (``[C, H, W]`` per instance, or the layout it takes).
A request never names a file. ``parameters`` (a top-level object, the V2 protocol's name for
per-request options) may give ``methods``, ``target`` (an index, a label, or -1 for each instance's
top-1), ``top_k``, the objective flags of ``explain`` (``objective``, ``region``, ``candidate``,
``channel``, ``threshold``), ``smooth`` (SmoothGrad samples), ``raw`` (return the raw maps),
``overlay`` (true, the default: each map as a transparent PNG of the photo's size to lay over it;
false for none), ``picture`` (``"png"`` or ``"jpg"``: each map drawn on the photo, as ``explain``
writes it; false, the default) and ``timeout_s`` (a deadline shorter than the server's
``--timeout-s``). Anything else, or a value out of range, is a
:class:`BadRequest` naming it in one line. Photos are decoded when their request is read, each
within the server's :class:`PhotoLimits` (set once per process by :func:`limit_photos`): no more
pixels than ``max_pixels`` (read from the header: 400 before decoding), those of the photos in flight
within a :class:`~.limits.PixelBudget` (:class:`~.limits.Busy`, 503, beyond it), a large JPEG decoded
reduced where the model's input allows (:func:`onnx_xai.imaging.images.decode_for`).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..imaging.images import Prepared, decode_for
from ..support.errors import InputError
from .limits import PixelBudget

OBJECTIVES = ("auto", "class", "segmentation", "detection", "dense", "regression")
KNOWN = (
    "methods",
    "target",
    "top_k",
    "objective",
    "region",
    "candidate",
    "channel",
    "threshold",
    "smooth",
    "raw",
    "overlay",
    "picture",
    "timeout_s",
)


class BadRequest(InputError):
    """A request the server cannot answer as asked (HTTP 400, one line)."""


@dataclass(frozen=True)
class Parameters:
    """One request's options (module docstring), checked."""

    methods: tuple[str, ...] = ("gradcam",)
    target: int | None = None
    top_k: int = 5
    objective: str = "auto"
    region: tuple[float, float, float, float] | None = None
    candidate: int | None = None
    channel: int = 0
    threshold: float = 0.3
    smooth: int | None = None
    raw: bool = False
    overlay: bool = True  # each map as a transparent PNG layer to lay over the photo
    picture: str | None = None  # each map drawn on the photo: "png", "jpg", or None
    timeout_s: float | None = None  # a deadline shorter than the server's


@dataclass
class Instance:
    """One instance as the model takes it (``array``: a batch of one), with its photo when it was one."""

    array: np.ndarray
    photo: Prepared | None = field(default=None, repr=False)
    others: dict[str, np.ndarray] | None = None  # a split table's other inputs, a batch of one each
    text: Any = field(default=None, repr=False)  # a text: its tokens, special flags and length


@dataclass
class PhotoLimits:
    """The pixels a photo may decode to, and the budget of those of the photos in flight (None: no
    limit)."""

    max_pixels: int | None = None
    budget: PixelBudget | None = None


PHOTOS = PhotoLimits()  # this process's (one server a process: limit_photos)


def limit_photos(max_pixels: int | None, max_pending_pixels: int | None) -> None:
    """The serving process's :class:`PhotoLimits`; Pillow's own decompression-bomb check off, as
    ``max_pixels`` replaces it: read from the header after a JPEG's reduction, where Pillow's would
    refuse a huge JPEG that decodes to a few Mpx reduced, and warn (a line in the log) of photos
    refused anyway."""
    PHOTOS.max_pixels = max_pixels
    PHOTOS.budget = PixelBudget(max_pending_pixels) if max_pending_pixels is not None else None
    Image.MAX_IMAGE_PIXELS = None


def parameters(
    payload: dict, methods: tuple[str, ...], known_methods, labels: list[str], classes
) -> Parameters:
    """The request's ``parameters`` object checked into :class:`Parameters` (server defaults for what
    it leaves out: ``methods`` the server's)."""
    given = payload.get("parameters") or {}
    if not isinstance(given, dict):
        raise BadRequest("parameters must be a JSON object")
    unknown = sorted(set(given) - set(KNOWN))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {unknown}; known: {', '.join(KNOWN)}")
    chosen = given.get("methods", list(methods))
    if isinstance(chosen, str):
        chosen = [chosen]
    if not isinstance(chosen, list) or not chosen or not all(m in known_methods for m in chosen):
        raise BadRequest(f"methods must be a non-empty list of {', '.join(known_methods)}, not {chosen!r}")
    return Parameters(
        methods=tuple(dict.fromkeys(chosen)),
        target=_target(given.get("target"), labels, classes),
        top_k=_whole(given, "top_k", 5, 1),
        objective=_choice(given, "objective", "auto", OBJECTIVES),
        region=_region(given.get("region")),
        candidate=_whole(given, "candidate", None, 0),
        channel=_whole(given, "channel", 0, 0),
        threshold=_number(given, "threshold", 0.3),
        smooth=_whole(given, "smooth", None, 1),
        raw=_flag(given, "raw", False),
        overlay=_overlay(given.get("overlay", True)),
        picture=_picture(given.get("picture", False)),
        timeout_s=_positive(given, "timeout_s"),
    )


def _whole(given: dict, name: str, default, low: int):
    value = given.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadRequest(f"{name} must be a whole number >= {low}, not {value!r}")
    return value


def _number(given: dict, name: str, default: float) -> float:
    value = given.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _positive(given: dict, name: str) -> float | None:
    value = given.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise BadRequest(f"{name} must be a number of seconds > 0, not {value!r}")
    return float(value)


def _flag(given: dict, name: str, default: bool) -> bool:
    value = given.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, not {value!r}")
    return value


def _overlay(value) -> bool:
    if value in (True, False, "png"):
        return bool(value)
    raise BadRequest(f'overlay must be true, "png" (the same) or false, not {value!r}')


def _picture(value) -> str | None:
    if value in ("png", "jpg"):
        return value
    if value is False:
        return None
    raise BadRequest(f'picture must be "png", "jpg" or false, not {value!r}')


def _choice(given: dict, name: str, default: str, choices) -> str:
    value = given.get(name, default)
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _region(value):
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
        or not (value[2] > value[0] and value[3] > value[1])
    ):
        raise BadRequest(
            f"region must be [x0, y0, x1, y1] in photo pixels with x1 > x0 and y1 > y0, not {value!r}"
        )
    return tuple(float(v) for v in value)


def _target(value, labels: list[str], classes) -> int | None:
    """An index, a label, or -1/None for the top-1 class; in range when the class count is known."""
    if value is None or value == -1:
        return None
    if isinstance(value, str):
        if value not in labels:
            raise BadRequest(f"target {value!r} is not a class label of this model")
        if labels.count(value) > 1:
            raise BadRequest(f"the label {value!r} names several classes; give the class index instead")
        return labels.index(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (classes and value >= classes):
        raise BadRequest(f"target must be a class index in [0, {classes}), a label or -1, not {value!r}")
    return value


def instances(payload: dict, shape: tuple, dtype, settings: dict, max_instances: int) -> list[Instance]:
    """The request's instances as model inputs (``shape`` and ``dtype``: the model's input, as the
    Explainer says them; ``settings``: the server's preprocessing,
    :func:`onnx_xai.imaging.preprocessing.preprocessing_for`)."""
    found = payload.get("instances", payload.get("inputs"))
    if not isinstance(found, list) or not found:
        raise BadRequest('the body needs "instances": a non-empty list of photos or arrays')
    if len(found) > max_instances:
        raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
    held: list[int] = []  # the pixels charged for its photos so far
    return [_instance(item, k, shape, np.dtype(dtype), settings, held) for k, item in enumerate(found)]


def _instance(item, k: int, shape: tuple, dtype: np.dtype, settings: dict, held: list[int]) -> Instance:
    if isinstance(item, dict) and "image_bytes" in item:
        encoded = item["image_bytes"].get("b64") if isinstance(item["image_bytes"], dict) else None
        if not isinstance(encoded, str):
            raise BadRequest(f'instance {k}: image_bytes must be {{"b64": "<base64>"}}')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"instance {k}: image_bytes.b64 is not base64") from None
        try:
            photo = _photo(data, f"instance {k}", settings, held)
        except InputError as exc:
            raise BadRequest(str(exc)) from None
        return Instance(photo.array, photo)
    return Instance(_array(item, k, shape, dtype))


def _photo(data: bytes, name: str, settings: dict, held: list[int]) -> Prepared:
    """The photo decoded and prepared within :data:`PHOTOS`: its pixels charged to the budget before
    they are decoded (beside those ``held`` by its request's photos before it: a request whose photos
    the budget cannot take even alone gets 400, as retrying cannot help), and held for as long as the
    photo lives."""
    budget, charged = PHOTOS.budget, 0

    def admit(pixels: int) -> None:
        nonlocal charged
        if budget is None:
            return
        if held and sum(held) + pixels > budget.limit:
            raise BadRequest(
                f"{name}: this request's photos decode to more than {budget.limit} pixels together, the "
                "most in flight (--max-pending-pixels); send them in several requests"
            )
        budget.charge(pixels, own=sum(held))
        charged = pixels
        held.append(pixels)

    try:
        photo = decode_for(data, settings, name, PHOTOS.max_pixels, admit)
    except BaseException:
        if budget is not None:
            budget.release(charged)
        raise
    if budget is not None:
        budget.hold(charged, photo.photo)
    return photo


def _array(item, k: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
    try:
        array = np.asarray(item, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(f"instance {k} is neither a photo nor a numeric array") from None
    want = [d if isinstance(d, int) else None for d in shape[1:]]
    if array.ndim != len(want) or any(w is not None and w != d for w, d in zip(want, array.shape)):
        raise BadRequest(f"instance {k} has shape {list(array.shape)}; the model takes {want} per instance")
    if not np.isfinite(array).all():
        raise BadRequest(f"instance {k} holds values that are not finite")
    return array[None].astype(dtype if dtype.kind == "f" else np.float32)
