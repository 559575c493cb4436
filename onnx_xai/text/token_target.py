"""Token classification: which token's prediction each text's explanation explains.

A model that labels every token (named entities, parts of speech: an ``[N, T, K]`` output over the
ids' ``T``) is explained one token per text. ``token=`` names it: by its index among the text's tokens
as :attr:`TextExplanation.tokens` counts them (special tokens included; negative from the end), or by
its text (the first token whose text is that, case-insensitively, else the first token of the first
word whose text is that, the token such models label a word by); one value for every text or one per
text. The class at that token is the objective's (a class index or a label's name), else the token's
top class, and the explained score is that logit: a seed that is one at (token, class) and zero
elsewhere (:meth:`onnx_xai.Objective.weighted`), so every method explains it as it explains a class.
Special tokens and padding cannot be chosen: their labels are not trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..objectives.objective import Objective
from ..support.errors import InputError
from .tokenizer import Encoded
from .words import word_groups, word_text


@dataclass
class TokenTarget:
    """Per text: the token explained, its class and the class's logit there, and the seed."""

    objective: Objective
    positions: np.ndarray  # [N] int64, the explained token's index in the text
    classes: np.ndarray  # [N] int64
    scores: np.ndarray  # [N] float64, the logit of the class at the token


def labels_tokens(ex) -> bool:
    """True when the explained output is one label per token, ``[N, T, K]``."""
    return ex.kind == "tokens" and len(ex.output_shape) == 3


def token_target(ex, batch: Encoded, texts: Sequence[str], token, classes) -> TokenTarget:
    """The seed that explains each text's chosen token (module docstring); ``classes`` is None (each
    token's top class), an int, or an int per text."""
    positions = token_positions(batch, texts, token)
    return token_seed(np.asarray(ex.predict(batch.ids, **batch.feeds)), positions, classes)


def token_positions(batch: Encoded, texts: Sequence[str], token) -> np.ndarray:
    """Each text's explained token (module docstring), int64 ``[N]``."""
    if token is None:
        raise InputError(
            "this model labels every token: choose the token to explain with token= (--token), "
            "its index among the text's tokens or its text"
        )
    asked = _per_text(token, len(texts), "token")
    return np.array([token_position(batch, texts, i, asked[i]) for i in range(len(texts))], np.int64)


def token_seed(logits: np.ndarray, positions: np.ndarray, classes) -> TokenTarget:
    """The seed one at each row's (position, class): the class given, else the top one there."""
    if logits.ndim != 3 or len(logits) != len(positions) or positions.max() >= logits.shape[1]:
        raise InputError(f"the output is {list(logits.shape)}, not one label per token")
    rows = np.arange(len(positions))
    at = logits[rows, positions]  # [N, K]
    chosen = at.argmax(axis=1) if classes is None else np.asarray(_per_text(classes, len(rows), "class"))
    if chosen.dtype.kind not in "iu" or ((chosen < 0) | (chosen >= at.shape[1])).any():
        raise InputError(f"a class at a token is 0..{at.shape[1] - 1}, not {classes!r}")
    seed = np.zeros(logits.shape, np.float32)
    seed[rows, positions, chosen] = 1.0
    return TokenTarget(Objective.weighted(seed), positions, chosen.astype(np.int64), at[rows, chosen])


def _per_text(given, n: int, what: str) -> list:
    """One value per text: ``given`` repeated, or a sequence of ``n`` values."""
    if isinstance(given, (str, int, np.integer)):
        return [given] * n
    values = list(given)
    if len(values) != n:
        raise InputError(f"{len(values)} {what} values for {n} texts: give one, or one per text")
    return values


def token_position(batch: Encoded, texts: Sequence[str], i: int, given) -> int:
    """Text ``i``'s explained token, from an index or a text (module docstring)."""
    n = int(batch.lengths[i])
    tokens = batch.tokens[i]
    if isinstance(given, str):
        k = _found(texts[i], tokens, batch.spans[i], batch.special[i, :n], given)
        if k is None:
            shown = " ".join(tokens)
            raise InputError(f"text {i} has no token or word {given!r} (its tokens: {shown})"[:300])
    elif isinstance(given, (int, np.integer)) and not isinstance(given, bool):
        if not -n <= int(given) < n:
            raise InputError(f"token {given} is outside text {i}'s {n} tokens")
        k = int(given) % n
    else:
        raise InputError(f"a token is an index or a token's text, not {given!r}")
    if batch.special[i, k]:
        raise InputError(f"token {k} of text {i} ({tokens[k]}) is a special token: its label is not trained")
    return k


def _found(text: str, tokens, spans, special, wanted: str) -> int | None:
    """The first token whose text is ``wanted``, else the first token of the first such word."""
    wanted = wanted.strip().lower()
    for k, (token, (a, b)) in enumerate(zip(tokens, spans)):
        if not special[k] and (text[a:b] if b > a else token).lower() == wanted:
            return k
    for group in word_groups(tokens, spans, list(map(bool, special))):
        if not special[group[0]] and word_text(text, tokens, spans, group).lower() == wanted:
            return group[0]
    return None
