"""Loading and saving models: paths, bytes or ModelProto in; atomic writes out.

A model loaded from a path brings its external data (the PyTorch dynamo exporter writes
``model.onnx.data`` beside the file). The source's SHA-256 is that of the bytes the user handed over
(the file, or the serialized proto). Saving never writes over the input, writes to a temporary file
in the destination folder and renames it into place (:func:`onnx_xai.support.files.write_atomic`), and
switches to external data only when the model is too large for one protobuf (2 GiB). Every model is
checked (:mod:`.validate`) before anything is read or allocated from what it declares: malformed
ones (data that contradicts its dims, external data outside the model's folder, cycles, tensors
produced twice ...) are refused in one line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx

from ..support.errors import ModelError
from ..support.files import write_atomic
from .validate import validate

PROTOBUF_LIMIT = 2**31 - 2**24  # leave headroom below protobuf's 2 GiB


def load_model(source: str | os.PathLike | bytes | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """A private copy of the model and the SHA-256 of its source, checked (:mod:`.validate`; nodes
    listed out of order are put in order) before its external data is read.

    Raises:
        ModelError: the file is missing, is not an ONNX model, or is malformed.
    """
    model, data = _checked_copy(source)
    if isinstance(source, onnx.ModelProto):  # the hash of what the user handed over
        data = source.SerializeToString()
    return model, hashlib.sha256(data or b"").hexdigest()


def private_copy(source: str | os.PathLike | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """:func:`load_model`'s copy without the hash (what a runtime's session is made from)."""
    return _checked_copy(source)[0]


def _checked_copy(source) -> tuple[onnx.ModelProto, bytes | None]:
    model, folder, data = _read(source)
    validate(model, folder, sort=True)
    if folder is not None:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(folder))
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, onnx's ValidationError (outside paths)
            raise ModelError(f"cannot read the external data in {folder}: {_first_line(exc)}") from None
    return model, data


def check_model(source: str | os.PathLike | bytes | onnx.ModelProto) -> None:
    """Refuse a malformed model (:mod:`.validate`) without loading it: what the runtime asks before it
    hands a model's path or bytes to onnxruntime or OpenVINO.

    Raises:
        ModelError: as :func:`load_model`.
    """
    if isinstance(source, onnx.ModelProto):
        validate(source, None)
    else:
        model, folder, _ = _read(source)
        validate(model, folder)


def _read(
    source: str | os.PathLike | bytes | onnx.ModelProto,
) -> tuple[onnx.ModelProto, Path | None, bytes | None]:
    """A private copy of the model, the folder of its external data (None for bytes and protos,
    which may keep none) and the bytes it was parsed from (None for a proto)."""
    if isinstance(source, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return copy, None, None
    if isinstance(source, (bytes, bytearray)):
        return _parse(bytes(source), "the given bytes"), None, bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ModelError(f"no such model file: {path}")
    data = path.read_bytes()
    return _parse(data, str(path)), path.parent, data


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError types
        raise ModelError(f"{what} is not an ONNX model (cannot be parsed)") from None
    if not model.graph.node or not model.opset_import:
        raise ModelError(f"{what} is not an ONNX model (no graph)")
    return model


def save_model(
    model: onnx.ModelProto, path: str | os.PathLike, source: str | os.PathLike | None = None
) -> None:
    """Write ``model`` to ``path`` atomically; refuses to overwrite ``source``.

    Raises:
        ModelError: ``path`` is the input file, or its folder does not exist.
    """
    path = Path(path)
    if source is not None and Path(source).exists() and path.exists() and os.path.samefile(source, path):
        raise ModelError(f"refusing to write over the input model {path}")
    if not path.parent.is_dir():
        raise ModelError(f"output folder does not exist: {path.parent}")

    def write(tmp: str) -> None:
        if model.ByteSize() > PROTOBUF_LIMIT:
            onnx.save_model(
                model,
                tmp,
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=f"{path.name}.data",
            )
        else:
            onnx.save_model(model, tmp)

    write_atomic(path, write)
