"""Texts made into a text encoder's inputs by its Hugging Face ``tokenizers`` tokenizer.

:class:`TextTokenizer` holds the tokenizer with what explaining needs from it: the special tokens (the
added tokens marked special), the pad and mask ids, the longest sequence it allows (its truncation,
else ``tokenizer_config.json``'s ``model_max_length``), and the class names of the ``config.json``
beside it. :meth:`TextTokenizer.encode` makes a batch of texts into ids padded to the longest (or to
the length a model fixes), and the model's other inputs it declares: the attention mask, token types
and positions, each in the type the model declares. ``tokenizers`` is imported only here, when a
tokenizer is loaded (the ``text`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.inputs import ONNXRUNTIME_TYPES
from ..support.errors import InputError
from .files import CONFIG_FILE, TOKENIZER_CONFIG_FILE, config_labels, read_json, tokenizer_file

MASK_INPUTS = ("attention_mask", "input_mask", "mask")
TYPE_INPUTS = ("token_type_ids", "segment_ids")
POSITION_INPUTS = ("position_ids",)
PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")
MASK_TOKENS = ("[MASK]", "<mask>", "<|mask|>")
NO_LIMIT = 1_000_000  # Hugging Face writes model_max_length = 1e30 for "no limit"


def load_tokenizers():
    """The ``tokenizers`` package, or one line saying how to install it."""
    try:
        import tokenizers
    except ImportError:
        raise InputError("explaining text needs the tokenizers package: pip install onnx_xai[text]") from None
    return tokenizers


@dataclass
class Encoded:
    """A batch of texts as a text encoder takes it (module docstring)."""

    ids: np.ndarray  # [N, T] int64, padded with the pad id
    feeds: dict[str, np.ndarray]  # the model's other inputs, by name, in their declared types
    lengths: np.ndarray  # [N] tokens per text before padding
    tokens: list[list[str]]  # the tokenizer's strings, padding dropped
    spans: list[list[tuple[int, int]]]  # each token's characters in its text ((0, 0) for added ones)
    special: np.ndarray  # [N, T] bool: special tokens ([CLS], </s> ...)
    truncated: list[bool]  # texts cut at the longest sequence allowed

    @property
    def padded(self) -> np.ndarray:
        """[N, T] bool: the positions past each text's tokens."""
        return np.arange(self.ids.shape[1])[None, :] >= self.lengths[:, None]


@dataclass
class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with what explaining needs from it (module docstring)."""

    tokenizer: Any
    special_ids: frozenset[int]
    pad_id: int | None
    mask_id: int | None
    max_length: int | None = None
    labels: list[str] | None = None
    path: str | None = None
    _copies: dict = field(default_factory=dict, repr=False)  # by length limit: no padding, that cut

    @classmethod
    def load(cls, given) -> TextTokenizer:
        """A tokenizer from a ``tokenizer.json``, a folder holding one, the model file beside which
        one lies, a ``tokenizers.Tokenizer`` or a ``transformers`` fast tokenizer."""
        if isinstance(given, TextTokenizer):
            return given
        if isinstance(given, (str, os.PathLike)):
            return cls._from_path(Path(given))
        backend = getattr(given, "backend_tokenizer", given)  # transformers' fast tokenizers hold one
        if not hasattr(backend, "encode_batch") or not hasattr(backend, "get_added_tokens_decoder"):
            raise InputError(
                "tokenizer must be a tokenizer.json path, a folder holding one, a tokenizers.Tokenizer "
                f"or a transformers fast tokenizer, not {type(given).__name__}"
            )
        limit = getattr(given, "model_max_length", None)
        return cls._of(backend, {"model_max_length": limit} if limit else {}, {})

    @classmethod
    def _from_path(cls, given: Path) -> TextTokenizer:
        found = tokenizer_file(given)
        if found is None:
            raise InputError(
                f"no tokenizer.json at {given}{'' if given.suffix == '.json' else ' or beside it'}: "
                "give the tokenizer (--tokenizer PATH; an Optimum export folder holds one)"
            )
        tokenizers = load_tokenizers()
        try:
            backend = tokenizers.Tokenizer.from_file(str(found))
        except Exception as exc:  # noqa: BLE001 (the Rust library raises a plain Exception)
            raise InputError(f"cannot read the tokenizer {found}: {' '.join(str(exc).split())}") from None
        folder = found.parent
        made = cls._of(backend, read_json(folder / TOKENIZER_CONFIG_FILE), read_json(folder / CONFIG_FILE))
        made.labels, made.path = config_labels(folder), str(found)
        return made

    @classmethod
    def _of(cls, backend, settings: dict, config: dict) -> TextTokenizer:
        """The special ids, pad, mask and length limit of ``backend``, from it and its configs."""
        special = frozenset(i for i, t in backend.get_added_tokens_decoder().items() if t.special)
        padding = backend.padding or {}
        pad = _token_id(backend, settings.get("pad_token"), PAD_TOKENS)
        pad = padding.get("pad_id", pad) if pad is None else pad
        pad = config.get("pad_token_id") if pad is None else pad
        mask = _token_id(backend, settings.get("mask_token"), MASK_TOKENS)
        limit = (backend.truncation or {}).get("max_length") or settings.get("model_max_length")
        limit = int(limit) if isinstance(limit, (int, float)) and 0 < limit < NO_LIMIT else None
        return cls(backend, special, pad if isinstance(pad, int) else None, mask, limit)

    def _cutting_at(self, fixed: int | None):
        """A copy of the tokenizer that pads nothing (padding is done here, with its mask) and cuts
        at the tokenizer's longest sequence or the model's fixed length; the caller's is left as is."""
        limits = [x for x in (self.max_length, fixed) if x is not None]
        limit = min(limits) if limits else None
        if limit not in self._copies:
            copy = load_tokenizers().Tokenizer.from_str(self.tokenizer.to_str())
            copy.no_padding()
            if limit is not None:
                copy.enable_truncation(limit)
            self._copies[limit] = copy
        return self._copies[limit]

    def encode(self, texts: list[str], inputs: dict[str, tuple], ids_name: str) -> Encoded:
        """``texts`` as the model's inputs (``inputs``: every input's declared shape and type, as
        :attr:`~onnx_xai.runtime.explainer.Explainer.inputs`; ``ids_name``: the ids input)."""
        fixed = inputs[ids_name][0][1] if len(inputs[ids_name][0]) == 2 else None
        fixed = fixed if isinstance(fixed, int) else None
        encodings = self._cutting_at(fixed).encode_batch(list(texts))
        length = fixed or max(1, max(len(e.ids) for e in encodings))
        ids = np.full((len(texts), length), self.pad_id or 0, np.int64)
        types = np.zeros_like(ids)
        special = np.zeros(ids.shape, bool)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n], types[i, :n] = e.ids, e.type_ids
            special[i, :n] = np.isin(e.ids, list(self.special_ids)) | np.asarray(e.special_tokens_mask, bool)
        lengths = np.array([len(e.ids) for e in encodings], np.int64)
        values = {"mask": (np.arange(length)[None, :] < lengths[:, None]), "types": types}
        return Encoded(
            ids,
            _feeds(inputs, ids_name, values),
            lengths,
            [list(e.tokens) for e in encodings],
            [[tuple(o) for o in e.offsets] for e in encodings],
            special,
            [bool(e.overflowing) for e in encodings],
        )


def prompt_feeds(inputs: dict[str, tuple], ids_name: str, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The other inputs of unpadded token ids ``[N, T]``: a mask of ones, positions from 0, types 0."""
    return _feeds(
        inputs, ids_name, {"mask": np.ones(ids.shape, bool), "types": np.zeros(ids.shape, np.int64)}
    )


def _token_id(backend, named, defaults: tuple[str, ...]) -> int | None:
    """The id of the token ``tokenizer_config.json`` names (a string or ``{"content": ...}``), else of
    the first of ``defaults`` in the vocabulary."""
    if isinstance(named, dict):
        named = named.get("content")
    for token in ([named] if isinstance(named, str) else []) + list(defaults):
        found = backend.token_to_id(token)
        if found is not None:
            return int(found)
    return None


def _feeds(inputs: dict[str, tuple], ids_name: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each input the model declares besides the ids, filled from the encoding, in its type."""
    mask = values["mask"]
    feeds: dict[str, np.ndarray] = {}
    unknown = []
    for name, (_, kind) in inputs.items():
        if name == ids_name:
            continue
        if name in MASK_INPUTS:
            value = mask
        elif name in TYPE_INPUTS:
            value = values["types"]
        elif name in POSITION_INPUTS:
            value = np.broadcast_to(np.arange(mask.shape[1]), mask.shape)
        else:
            unknown.append(name)
            continue
        dtype = np.bool_ if kind == "tensor(bool)" else ONNXRUNTIME_TYPES.get(kind)
        if dtype is None:
            raise InputError(f"the input {name!r} has type {kind}, which a tokenizer's values cannot fill")
        feeds[name] = np.ascontiguousarray(value, dtype=dtype)
    if unknown:
        raise InputError(
            f"the model also takes {', '.join(map(repr, unknown))}, which a tokenizer does not give "
            f"(known: {', '.join(MASK_INPUTS + TYPE_INPUTS + POSITION_INPUTS)})"
        )
    return feeds
