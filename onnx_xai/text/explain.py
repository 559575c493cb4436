"""Texts explained token by token: :func:`explain_text` and the :class:`TextExplanation` it returns.

A text encoder exported with integer ids (``Explainer.kind == "tokens"``) is explained at its word
embedding; each token's score is the explanation's ``feature_scores`` (the L2 norm over the embedding
of an unsigned gradient, the sum over it of a signed attribution, the token's own value for occlusion,
LIME and KernelSHAP). What a removed token becomes is the baseline, decided here per position: the
mask token (else the pad token) at ordinary tokens, the pad token (else the mask token) for the methods
that start from the baseline's embeddings (integrated gradients, DeepLIFT), and the token itself at
special tokens and padding, which are then no features at all (``occlude_special`` makes special
tokens features too). RoBERTa-like models derive positions from the tokens that are not padding, so
pad is never what a removed token is replaced by. Special tokens are shown but not scored: their score
is 0 unless ``occlude_special``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..objectives.objective import Objective
from ..runtime.methods import get, plan
from ..support.errors import InputError
from .token_target import TokenTarget, labels_tokens, token_target
from .tokenizer import Encoded, TextTokenizer
from .words import merge, word_groups

# the methods that start from the baseline ids' embeddings, for which a removed token is pad
FROM_EMBEDDINGS = ("integrated_gradients", "deeplift", "gradient_shap", "deeplift_shap")


@dataclass
class TextExplanation:
    """One method's explanation of a batch of texts, per text (padding dropped)."""

    texts: list[str]
    method: str
    signed: bool  # scores whose sign means something (for or against the target)
    tokens: list[list[str]]  # the tokenizer's strings (or, with ``words``, the words' texts)
    spans: list[list[tuple[int, int]]]  # each token's characters in its text ((0, 0): none)
    scores: list[np.ndarray]  # float64 per token; 0 at special tokens unless ``occlude_special``
    special: list[np.ndarray]  # bool per token: special tokens, shown and not scored
    targets: np.ndarray  # [N] int64, the classes explained
    labels: list[str | None]  # their names, where the model's config.json (or metadata) has them
    target_scores: np.ndarray  # [N] float, each text's score for its class
    raw: list[np.ndarray]  # the method's attribution per text, per token ([T_i, D] at the embedding)
    words: bool = False  # tokens merged into words, their scores summed
    truncated: list[bool] | None = None  # texts cut at the longest sequence the tokenizer allows
    positions: list[int] | None = None  # token classification: each text's explained token (or word)

    def shown(self, i: int) -> list[str]:
        """Text ``i``'s tokens as the text writes them (the characters they cover, where known)."""
        text = self.texts[i]
        return [text[a:b] if b > a else t for t, (a, b) in zip(self.tokens[i], self.spans[i])]

    def html(self, title: str = "Token attributions") -> str:
        """One self-contained HTML page of the texts' highlighted tokens (:mod:`.page`)."""
        from .page import page

        return page([self], title)

    @classmethod
    def joined(cls, parts: Sequence[TextExplanation]) -> TextExplanation:
        """Explanations of consecutive batches, with one method, as one."""
        first = parts[0]

        def every(name: str) -> list:
            return [item for part in parts for item in getattr(part, name)]

        return cls(
            every("texts"), first.method, first.signed, every("tokens"), every("spans"), every("scores"),
            every("special"), np.concatenate([p.targets for p in parts]), every("labels"),
            np.concatenate([p.target_scores for p in parts]), every("raw"), first.words, every("truncated"),
            every("positions") if first.positions is not None else None,
        )  # fmt: skip


def explain_text(
    ex,
    texts: str | Sequence[str],
    method: str = "integrated_gradients",
    tokenizer=None,
    objective=None,
    words: bool = False,
    occlude_special: bool = False,
    labels: Sequence[str] | None = None,
    token=None,
    **options,
) -> TextExplanation:
    """Explain texts with a text encoder's tokenizer, token by token (module docstring).

    Args:
        ex: an :class:`~onnx_xai.runtime.explainer.Explainer` of a model that takes token ids.
        texts: a text or a list of them, explained as one batch padded to the longest.
        method: a method that explains tokens (``onnx-xai inspect`` lists them).
        tokenizer: a ``tokenizer.json``, a folder holding one, the model file beside which one lies,
            a ``tokenizers.Tokenizer``, a ``transformers`` fast tokenizer or a
            :class:`~onnx_xai.text.tokenizer.TextTokenizer` (:meth:`Explainer.explain_text` finds the
            one beside the model's file).
        objective: as :meth:`Explainer.explain`'s (None: each text's top class), or a label's name.
        words: merge word pieces into words, summing their scores (:mod:`.words`).
        occlude_special: make special tokens ([CLS], [SEP], <s> ...) features too.
        labels: class names (default: ``id2label`` of the tokenizer's ``config.json``, else the
            model's metadata).
        token: for a model that labels every token, the token whose label is explained: its index
            or its text, one for all texts or one per text (:mod:`.token_target`).
        **options: the method's options; a ``baseline`` given here (token ids ``[N, T]`` or one id)
            replaces the one decided per position.

    Raises:
        InputError: a model that takes no ids, no tokenizer, an unknown method or option.
    """
    texts, tok = _checked(ex, texts, tokenizer)
    batch = tok.encode(texts, ex.inputs, ex.input_name)
    names = list(labels) if labels is not None else class_names(ex, tok)
    taken = get(method).Options.__dataclass_fields__
    if "baseline" in taken and "baseline" not in options:
        options["baseline"] = baseline_ids(batch, tok, method, occlude_special)
    if "baselines" in taken and "baselines" not in options:  # one per text: [N, 1, T]
        options["baselines"] = baseline_ids(batch, tok, method, occlude_special)[:, None, :]
    objective, target = _explained(ex, batch, texts, _objective(objective, names), token)
    r = ex.explain(batch.ids, method, objective, extra_inputs=batch.feeds, **options)
    values = np.asarray(r.feature_scores if r.feature_scores is not None else r.raw)  # forward-only: [N, T]
    return _per_text(texts, batch, r, values, names, (method, options, words, occlude_special), target)


def _explained(ex, batch: Encoded, texts, objective, token) -> tuple[object, TokenTarget | None]:
    """The objective to explain, and for a model that labels every token, the token explained."""
    if labels_tokens(ex):
        target = token_target(ex, batch, texts, token, _token_classes(objective))
        return target.objective, target
    if token is not None:
        raise InputError("token= is for models that label every token; this model classifies each text")
    return objective, None


def _token_classes(objective):
    """The class asked at the explained token: None (its top class), an int or one per text."""
    found = Objective.coerce(objective)
    if found.kind == "top":
        return None
    if found.kind != "class" or found.values is None:
        raise InputError(
            f"at a token, the objective is a class (an index or a label's name), not a {found.kind}"
        )
    return int(found.values) if found.values.ndim == 0 else found.values


def _checked(ex, texts, tokenizer) -> tuple[list[str], TextTokenizer]:
    """The texts as a list, and the tokenizer loaded, for a model that takes ids."""
    if ex.kind != "tokens":
        raise InputError(
            f"explain_text explains models that take token ids; this model's input is a {ex.kind}"
        )
    if tokenizer is None:
        raise InputError(
            "no tokenizer: give tokenizer= (a tokenizer.json, or Explainer.explain_text finds it)"
        )
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a text or a non-empty list of texts")
    return texts, TextTokenizer.load(tokenizer)


def baseline_ids(
    batch: Encoded, tok: TextTokenizer, method: str, occlude_special: bool = False
) -> np.ndarray:
    """What each position becomes when its token is removed (module docstring): int64 ``[N, T]``."""
    order = (tok.pad_id, tok.mask_id) if method in FROM_EMBEDDINGS else (tok.mask_id, tok.pad_id)
    fill = next((i for i in order if i is not None), None)
    if fill is None:
        raise InputError(
            f"the tokenizer has neither a mask nor a pad token: give {method} a baseline (token ids)"
        )
    kept = batch.padded | (batch.special & (not occlude_special))
    return np.where(kept, batch.ids, fill).astype(np.int64)


def _per_text(
    texts, batch: Encoded, r, values, names, how: tuple, target: TokenTarget | None
) -> TextExplanation:
    """The batch's explanation cut per text, padding dropped, special tokens zeroed, words merged."""
    method, options, words, occlude_special = how
    targets = (target.classes if target else r.targets).astype(np.int64)
    found = TextExplanation(
        texts, method, _signed(method, options), [], [], [], [], targets,
        [names[t] if 0 <= t < len(names) else None for t in targets],
        np.asarray(target.scores if target else r.scores), [], words, batch.truncated,
        [] if target else None,
    )  # fmt: skip
    for i, n in enumerate(batch.lengths):
        special = batch.special[i, :n]
        scores = np.where(special & (not occlude_special), 0.0, values[i, :n].astype(np.float64))
        tokens, spans = batch.tokens[i], batch.spans[i]
        if target is not None and found.positions is not None:
            k = int(target.positions[i])
            found.positions.append(_word_of(tokens, spans, special, k) if words else k)
        if words:
            tokens, spans, special, scores = merge(texts[i], tokens, spans, special, scores)
        found.tokens.append(list(tokens))
        found.spans.append(list(spans))
        found.special.append(np.asarray(special, bool))
        found.scores.append(scores)
        found.raw.append(np.asarray(r.raw[i, :n]))
    return found


def _word_of(tokens, spans, special, k: int) -> int:
    """The index of the word that token ``k`` is part of."""
    groups = word_groups(tokens, spans, list(map(bool, special)))
    return next(w for w, group in enumerate(groups) if k in group)


def class_names(ex, tok: TextTokenizer) -> list[str]:
    """Class names: the tokenizer's ``config.json``'s, else the model's metadata's, else none."""
    from ..objectives.labels import labels_from_metadata

    if tok.labels and (ex.num_classes is None or len(tok.labels) == ex.num_classes):
        return tok.labels
    found = labels_from_metadata(ex.metadata, ex.num_classes)
    return found[0] if found else []


def _objective(objective, labels: list[str]):
    """A label's name as its class; anything else as :meth:`Explainer.explain` reads it."""
    if not isinstance(objective, str):
        return objective
    matches = [k for k, name in enumerate(labels) if name.lower() == objective.lower()]
    if len(matches) != 1:
        known = ", ".join(labels) if labels else "none"
        raise InputError(
            f"{objective!r} names {'no' if not matches else 'several'} classes (labels: {known})"
        )
    return matches[0]


def _signed(method: str, options: dict) -> bool:
    (m, opts), *_ = plan([method], options)
    return m.signed_for(opts)
