"""Signal files read as a signal model takes one sample: ``.npy``, ``.csv`` and ``.wav``.

- ``.npy``: one signal without a batch axis, in the model's layout (``[C, T]`` for ``NCT``,
  ``[T, C]`` for ``NTC``, ``[T]`` for a waveform).
- ``.csv``: one row per time step and one column per channel, a header line allowed (its names kept
  as the channels' names); a waveform model takes one column.
- ``.wav`` (read with SciPy): float samples as they are, integer PCM scaled to [-1, 1) (16-bit by
  1/32768, 32-bit by 1/2^31, 8-bit unsigned centred at 128), never normalized beyond that; each of
  its channels a channel of the signal. It is resampled to ``sample_rate`` (polyphase, SciPy's
  ``resample_poly``) only when one is given and differs from the file's rate. For ``.npy`` and
  ``.csv``, which carry no rate, ``sample_rate`` is the rate they were recorded at (the figures' time
  axis in seconds, the record's ``sample_rate``), never a resampling.

The values are checked against the model's declared input (its channel count and any fixed
length) and cast to its input type; anything else is one line naming the file and the shape wanted.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..support.errors import InputError

SUFFIXES = (".npy", ".csv", ".wav")


@dataclass
class Signal:
    """One signal as the model takes it, without the batch axis, and what the file said of it."""

    path: str
    values: np.ndarray  # in the model's layout and input type
    rate: int | None = None  # samples per second (a WAV's, after any resampling)
    channels: list[str] | None = None  # a CSV header's names
    audio: bool = False


def read_signal(path: str, layout: str, declared: tuple, dtype, sample_rate: int | None = None) -> Signal:
    """The signal in ``path`` shaped for a model whose input is ``declared`` in ``layout``."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: a signal is a .npy, .csv or .wav file")
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    found = Signal(path, np.zeros(0))
    if suffix == ".npy":  # already in the model's layout
        found.rate = sample_rate
        return _checked(found, _npy(path), layout, declared, dtype)
    if suffix == ".csv":
        time_major, found.channels = _csv(path)
        found.rate = sample_rate
    else:
        time_major, found.rate = wav_samples(path, path, sample_rate)
        found.audio = True
    return _checked(found, _in_layout(path, time_major, layout), layout, declared, dtype)


def signal_from(
    name: str, values, layout: str, declared: tuple, dtype, rate: int | None = None, audio: bool = False
) -> Signal:
    """A signal given as values (an array in the model's layout, or ``[T]``/``[T, C]`` samples of a
    WAV when ``audio``), checked as a file's are; ``name`` says where it came from in messages."""
    if audio:
        return _checked(Signal(name, np.zeros(0), rate, audio=True), _in_layout(name, values, layout), layout,
                        declared, dtype)  # fmt: skip
    try:
        array = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} is not an array of numbers") from None
    return _checked(Signal(name, np.zeros(0)), array, layout, declared, dtype)


def _in_layout(path: str, time_major: np.ndarray, layout: str) -> np.ndarray:
    """Values ``[T]`` or ``[T, C]`` laid out as the model takes them."""
    if layout == "NT":
        if time_major.ndim == 2 and time_major.shape[1] != 1:
            raise InputError(f"{path} holds {time_major.shape[1]} channels; this model takes one waveform")
        return time_major.reshape(-1)
    values = time_major if time_major.ndim == 2 else time_major[:, None]
    return values.T if layout == "NCT" else values


def _checked(found: Signal, values: np.ndarray, layout: str, declared: tuple, dtype) -> Signal:
    sample = tuple(declared[1:])
    want = " x ".join(str(d) if isinstance(d, int) else d for d in sample) or "?"
    axes = {"NCT": "[channels, time]", "NTC": "[time, channels]", "NT": "[time]"}[layout]
    fits = values.ndim == len(sample) and all(
        not isinstance(d, int) or d == n for d, n in zip(sample, values.shape)
    )
    if not fits:
        raise InputError(
            f"{found.path} is {list(values.shape)} as read; this model takes one signal {axes} of "
            f"{want} (no batch axis)"
        )
    if not np.isfinite(values).all():
        raise InputError(f"{found.path} holds values that are not finite numbers")
    found.values = np.ascontiguousarray(values.astype(dtype))
    return found


def _npy(path: str) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable .npy array ({exc})") from None
    if values.dtype.kind not in "fiu":
        raise InputError(f"{path} holds {values.dtype}, not numbers")
    return values.astype(np.float64)


def _csv(path: str) -> tuple[np.ndarray, list[str] | None]:
    """One row per time step: ``[T, C]``, and the header's names where there is one."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(cell.strip() for cell in r)]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    header = rows[0] if rows and not _numeric(rows[0]) else None
    body = rows[1:] if header else rows
    if not body or len({len(r) for r in body}) != 1:
        raise InputError(f"{path}: want one row per time step, each with the same number of columns")
    for number, row in enumerate(body, 2 if header else 1):
        if not _numeric(row):
            raise InputError(f"{path}, line {number}: not all numbers ({', '.join(row)[:80]})")
    return np.array([[float(cell) for cell in row] for row in body]), header


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def wav_samples(source, name: str, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """The samples ``[T]`` or ``[T, C]`` of a WAV file (a path or a binary file object) as floats
    (module docstring), and their rate."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(source)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{name} is not a readable WAV file ({exc})") from None
    scale = {"int16": 2.0**15, "int32": 2.0**31}.get(data.dtype.name)
    if data.dtype == np.uint8:
        values = (data.astype(np.float64) - 128) / 128
    elif scale is not None:
        values = data.astype(np.float64) / scale
    elif data.dtype.kind == "f":
        values = data.astype(np.float64)
    else:
        raise InputError(f"{name}: WAV samples of type {data.dtype} are not read")
    if sample_rate is not None and sample_rate != rate:
        from scipy.signal import resample_poly

        common = math.gcd(int(sample_rate), int(rate))
        values = resample_poly(values, sample_rate // common, rate // common, axis=0)
        rate = sample_rate
    return values, int(rate)
