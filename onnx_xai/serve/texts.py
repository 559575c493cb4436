"""Serving a text encoder: texts in, each text's prediction and its tokens' attributions out.

A request's instances are texts (``{"instances": ["a gripping film", ...]}``, or ``{"text": ...}``
objects), tokenized by the model's tokenizer (``tokenizer.json`` beside the model, or ``--tokenizer``)
and padded to a multiple of :data:`BUCKET` tokens so that texts of near lengths share a run; a text
that is not one is a one-line 400. ``:explain`` answers, per text, one entry per method: the class
explained (target, label, score), the tokens, each token's score (special tokens and padding 0, as
:func:`onnx_xai.text.explain_text` scores them) and the base where the method has one; a removed
token takes the mask id and a path starts from the pad id, as the library decides it
(:func:`onnx_xai.text.baseline_ids`). A model that labels every token explains one token per text,
named in the instance (``{"text": ..., "token": 3}`` or ``"token": "Paris"``, as
:mod:`onnx_xai.text.token_target` reads it), its top label's logit there or the ``target`` class's;
each entry then says the ``token`` explained. Costs and deadlines are those of photos and rows.
"""

from __future__ import annotations

import math

import numpy as np

from ..runtime.methods import get
from ..text import Encoded, TextTokenizer, baseline_ids
from ..text.explain import class_names
from ..text.token_target import TokenTarget, labels_tokens, token_position, token_seed
from ..text.tokenizer import POSITION_INPUTS
from .requests import BadRequest, Instance

BUCKET = 16  # texts are padded to a multiple of this many tokens: near lengths share a run


class TextFacts:
    """A served text encoder's tokenizer and class names, read once at load."""

    def __init__(self, ex, model_path: str, tokenizer: str | None):
        self.ex, self.tok = ex, TextTokenizer.load(tokenizer or model_path)
        self.labels = class_names(ex, self.tok)

    def read(self, payload: dict, max_instances: int) -> list[Instance]:
        """The request's texts as the model's inputs, one instance each (module docstring)."""
        found = payload.get("instances", payload.get("inputs"))
        if not isinstance(found, list) or not found:
            raise BadRequest('the body needs "instances": a non-empty list of texts')
        if len(found) > max_instances:
            raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
        texts = [_text(item, k) for k, item in enumerate(found)]
        encoded = self.tok.encode(texts, self.ex.inputs, self.ex.input_name)
        asked = [item.get("token") if isinstance(item, dict) else None for item in found]
        positions = [None if a is None else token_position(encoded, texts, k, a) for k, a in enumerate(asked)]
        return [self._instance(encoded, k, positions[k]) for k in range(len(texts))]

    def _instance(self, encoded: Encoded, k: int, position: int | None) -> Instance:
        """Text ``k`` padded to its bucket's length (the model's own fixed length stays), with the
        token explained where one was named."""
        n, width = int(encoded.lengths[k]), encoded.ids.shape[1]
        fixed = isinstance(self.ex.input_shape[-1], int)
        length = width if fixed else max(BUCKET, math.ceil(n / BUCKET) * BUCKET)
        ids = np.full((1, length), self.tok.pad_id or 0, np.int64)
        ids[0, :n] = encoded.ids[k, :n]
        others = {name: _padded(name, value[k : k + 1, :n], length) for name, value in encoded.feeds.items()}
        special = np.zeros((1, length), bool)
        special[0, :n] = encoded.special[k, :n]
        return Instance(ids, others=others, text=(encoded.tokens[k], special, n, position))

    def answer(self, ex, batch: np.ndarray, params, held: dict, items: list[Instance]) -> list:
        """Each text's output and its entries, the methods grouped by the baseline they take."""
        lengths = np.array([item.text[2] for item in items], np.int64)
        special = np.concatenate([item.text[1] for item in items])
        encoded = Encoded(batch, held, lengths, [], [], special, [False] * len(items))
        objective, target = self._objective(ex, batch, held, params, items)
        results: dict = {}
        for method in params.methods:
            options = (
                {"baseline": baseline_ids(encoded, self.tok, method)} if _takes(method, "baseline") else {}
            )
            results |= ex.explain_many(batch, [method], objective=objective, extra_inputs=held, **options)
        first = next(iter(results.values()))
        outputs = first.output if first.output is not None and len(first.output) == len(batch) else None
        outputs = outputs if outputs is not None else ex.predict(batch, **held)
        return [
            (outputs[i], [self._entry(m, r, i, items[i], target) for m, r in results.items()])
            for i in range(len(batch))
        ]

    def _objective(self, ex, batch, held: dict, params, items: list[Instance]) -> tuple:
        """The request's objective, and for a model that labels every token, each text's token."""
        if not labels_tokens(ex):
            return params.target, None
        missing = [k for k, item in enumerate(items) if item.text[3] is None]
        if missing:
            raise BadRequest(
                f"instance {missing[0]}: this model labels every token: name the one to explain, "
                '{"text": "...", "token": 3} (an index or the token\'s text)'
            )
        positions = np.array([item.text[3] for item in items], np.int64)
        target = token_seed(np.asarray(ex.predict(batch, **held)), positions, params.target)
        return target.objective, target

    def _entry(self, method: str, r, i: int, item: Instance, at: TokenTarget | None) -> dict:
        tokens, special, n, position = item.text
        values = r.feature_scores[i, :n].astype(np.float64)
        scores = np.where(special[0, :n], 0.0, values)
        target = int(r.targets[i] if at is None else at.classes[i])
        entry = {
            "method": method,
            "target": target,
            "label": self.labels[target] if 0 <= target < len(self.labels) else None,
            "score": round(float(r.scores[i]), 6),
            **({} if position is None else {"token": position}),
            "tokens": list(tokens),
            "scores": [round(float(v), 7) for v in scores],
            "special": [bool(s) for s in special[0, :n]],
        }
        if r.base is not None:
            entry["base"] = float(np.ravel(r.base)[i])
        return entry


def _text(item, k: int) -> str:
    text = item.get("text") if isinstance(item, dict) else item
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f'instance {k} must be a text (a string, or {{"text": "..."}}), not {item!r}'[:300])
    return text


def _padded(name: str, value: np.ndarray, length: int) -> np.ndarray:
    """An input's row padded to ``length``: positions counting on, anything else (a mask, token
    types) 0."""
    found = np.zeros((1, length), value.dtype)
    found[0, : value.shape[1]] = value[0]
    if name in POSITION_INPUTS:
        found[0, value.shape[1] :] = np.arange(value.shape[1], length)
    return found


def _takes(method: str, option: str) -> bool:
    return option in get(method).Options.__dataclass_fields__
