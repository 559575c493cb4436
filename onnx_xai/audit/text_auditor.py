"""The text auditor: texts in, one record per text and method out, scored by ERASER's faithfulness
metrics (DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models").

Each text is explained with every method (:func:`onnx_xai.text.explain_text`), and each method's token
scores rank the text's *scored* tokens (neither special nor padding) highest first: a signed method's
evidence for the class comes first; ties are broken in the seeded random order of
:func:`.curves.ranking`. The random baseline (:data:`.features.RANDOM`) ranks them by uniform draws
seeded by ``(noise_seed, text index)``. For each bin ``k`` (percent; 1, 5, 10, 20, 50 by default) the
rationale ``r_k`` is the top ``max(1, ceil(k n / 100))`` of the text's ``n`` scored tokens, and with
``p`` the explained class ``c``'s probability (the model's output where it ends in a Softmax or
Sigmoid, else the softmax of its logits):

- **comprehensiveness_k** = ``p(x)_c - p(x with r_k removed)_c``: higher is better;
- **sufficiency_k** = ``p(x)_c - p(x with everything but r_k removed)_c``: lower is better.

A removed token becomes the tokenizer's mask token (else its pad token), as the perturbation methods
remove tokens (:func:`onnx_xai.text.baseline_ids` for occlusion: never pad where there is a mask
token, since RoBERTa-like models derive positions from the tokens that are not padding); special
tokens and padding are never removed. ``comprehensiveness`` and ``sufficiency`` are the means over
the bins (ERASER's AOPC), and the per-bin values are kept as curves over the bins' fractions. Every
copy of one text (each ranking's bins, both metrics, and the text itself; identical copies once) is
scored in runs of at most ``copies_per_run`` copies, the model's other inputs (attention mask, token
types) repeated; a dynamically quantized model (``per_sample_runs``) is run one copy at a time, so
that each copy gets the activation scale it gets alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..runtime.methods import options_for
from ..support.errors import InputError
from ..text.explain import TextExplanation, baseline_ids, class_names, explain_text
from ..text.tokenizer import Encoded, TextTokenizer
from .curves import Scorer, ranking
from .facts import model_facts
from .features import RANDOM, random_attribution

TEXT_METHODS = ("integrated_gradients", "gradient")
TEXT_BINS = (1.0, 5.0, 10.0, 20.0, 50.0)  # percent of a text's scored tokens, as ERASER's AOPC
METRICS = ("comprehensiveness", "sufficiency")


@dataclass
class TextAuditOptions:
    """What to audit on texts and how (the ``audit`` command's flags for a text encoder)."""

    methods: Sequence[str] = TEXT_METHODS
    bins: Sequence[float] = TEXT_BINS  # percent, each in (0, 100]
    target: int | str | None = None  # a class index or label; None: each text's top class
    labels: list[str] | None = None  # default: config.json's id2label, else the model's metadata
    noise_seed: int = 0  # tie order, the random baseline, the methods' noise
    steps: int | None = None  # integrated gradients' points (None: the method's default)
    batch_size: int = 8  # texts per explanation run
    copies_per_run: int = 128  # masked copies per run of the model
    report_texts: int = 48  # texts shown one by one in the report (the summary counts them all)


class TextAuditor:
    """One Explainer of a text encoder, its tokenizer and what the audit needs of them."""

    def __init__(self, explainer, model_path: str, tokenizer, opts: TextAuditOptions):
        if explainer.kind != "tokens":
            raise InputError(f"this audit is for text encoders; the model's input is a {explainer.kind}")
        if len(explainer.output_shape) != 2:
            raise InputError(
                f"audit explains text classifiers (an [N, K] output); {explainer.record.output!r} "
                f"has shape {list(explainer.output_shape)}"
            )
        if not opts.bins or any(not 0 < k <= 100 for k in opts.bins):
            raise InputError(f"bins are percents in (0, 100], not {list(opts.bins)}")
        if not opts.methods:
            raise InputError("give at least one method")
        self.ex, self.model_path, self.opts = explainer, model_path, opts
        self.tok = TextTokenizer.load(tokenizer)
        self.labels = list(opts.labels) if opts.labels is not None else class_names(explainer, self.tok)
        self.probabilities = explainer.record.score_kind in ("pre-softmax", "pre-sigmoid")
        self.per_run = 1 if explainer.record.per_sample_runs else opts.copies_per_run
        self.bins = np.array(sorted(set(float(k) for k in opts.bins)))
        fill = self.tok.mask_id if self.tok.mask_id is not None else self.tok.pad_id
        if fill is None:
            raise InputError("the tokenizer has neither a mask nor a pad token: a removed token has no id")
        self.fill = f"{self.tok.tokenizer.id_to_token(fill)} (id {fill})"

    def probability(self, copies: np.ndarray, feeds: dict, target: int) -> np.ndarray:
        """The class's probability for copies ``[n, T]`` of one text, whose other inputs are ``feeds``
        (each ``[1, T]``), in runs of :attr:`per_run` copies."""

        def predict(part: np.ndarray) -> np.ndarray:
            return self.ex.predict(part, **{k: np.repeat(v, len(part), axis=0) for k, v in feeds.items()})

        return Scorer(predict, self.probabilities, self.ex.input_dtype, self.per_run)(copies, target)

    def model_facts(self) -> dict:
        others = [name for name in self.ex.inputs if name != self.ex.input_name]
        curve = "model probability" if self.probabilities else "softmax of logits"
        return model_facts(
            self.ex, self.model_path, curve, other_inputs=others, tokenizer=self.tok.path or "given in memory"
        )

    def protocol(self) -> dict:
        """How the records were made, written with each of them."""
        return {
            "bins": [_percent(k) for k in self.bins],
            "rationale": "the top max(1, ceil(k n / 100)) of a text's n scored tokens",
            "ranking": "the token score, highest first (signed: the evidence for the class); "
            "ties in a random order seeded by noise_seed",
            "random_baseline": "uniform draws seeded by (noise_seed, text index)",
            "removed_to": self.fill,
            "never_removed": "special tokens and padding",
            "probability": "the model's output" if self.probabilities else "softmax of the logits",
            "aggregate": "mean over the bins (AOPC)",
            "noise_seed": self.opts.noise_seed,
        }


@dataclass
class TextAudit:
    """The audited texts: each method's explanation of all of them, and the records."""

    texts: list[str]
    explanations: dict  # method -> TextExplanation of every text
    records: list  # one per text and method, the random baseline's too, text by text


def audit_text_list(auditor: TextAuditor, texts: Sequence[str], tick=None) -> TextAudit:
    """Explain the texts with each method, ``batch_size`` at a time, and score every ranking (module
    docstring); ``tick(n)`` is told of each ``n`` texts done."""
    opts, ex = auditor.opts, auditor.ex
    texts = list(texts)
    parts: dict[str, list] = {m: [] for m in dict.fromkeys(opts.methods)}
    records: list = []
    for start in range(0, len(texts), opts.batch_size):
        chunk = texts[start : start + opts.batch_size]
        batch = auditor.tok.encode(chunk, ex.inputs, ex.input_name)
        found = {m: _explained(auditor, chunk, m) for m in parts}
        fill = baseline_ids(batch, auditor.tok, "occlusion")
        for j in range(len(chunk)):
            records += text_records(auditor, batch, fill, found, j, start + j)
            if tick is not None:
                tick(1)
        for m in parts:
            parts[m].append(found[m])
    return TextAudit(texts, {m: TextExplanation.joined(p) for m, p in parts.items()}, records)


def _explained(auditor: TextAuditor, texts: list[str], method: str) -> TextExplanation:
    options = options_for([method], auditor.opts.noise_seed, auditor.opts.steps)
    return explain_text(
        auditor.ex, texts, method, auditor.tok, auditor.opts.target, labels=auditor.labels, **options
    )


def text_records(
    auditor: TextAuditor, batch: Encoded, fill: np.ndarray, found: dict, j: int, index: int
) -> list[dict]:
    """Text ``j`` of ``batch`` (``index`` in the audit): a record per method and the random baseline."""
    n = int(batch.lengths[j])
    scored = np.flatnonzero(~batch.special[j, :n])
    if scored.size == 0:
        raise InputError(f"text {index} has no token besides the special ones: there is nothing to remove")
    first = next(iter(found.values()))
    target, seed = int(first.targets[j]), auditor.opts.noise_seed
    orders = {m: scored[ranking(e.scores[j][scored], seed)] for m, e in found.items()}
    orders[RANDOM] = scored[random_ranking(scored.size, seed, index)]
    sizes = rationale_sizes(scored.size, auditor.bins)
    p, drops = probability_drops(auditor, batch, fill, j, list(orders.values()), sizes, target)
    facts = {
        "index": index,
        "text": first.texts[j],
        "target": target,
        "label": _label(first, j, auditor.labels, target),
        "score": float(first.target_scores[j]),
        "probability": p,
        "truncated": bool(first.truncated[j]) if first.truncated else False,
    }
    signed = {m: e.signed for m, e in found.items()} | {RANDOM: False}
    return [
        _record(auditor, facts, m, signed[m], order, drops[r], sizes, scored.size)
        for r, (m, order) in enumerate(orders.items())
    ]


def probability_drops(
    auditor: TextAuditor, batch: Encoded, fill: np.ndarray, j: int, orders: list, sizes, target: int
) -> tuple[float, np.ndarray]:
    """Text ``j``'s probability and its drops ``[ranking, metric, bin]`` when each ranking's rationale
    (metric 0, comprehensiveness) or all but it (metric 1, sufficiency) is removed, every copy scored
    once."""
    length = batch.ids.shape[1]
    removed = np.zeros((len(orders), 2, len(sizes), length), bool)
    for r, order in enumerate(orders):
        for b, size in enumerate(sizes):
            removed[r, 0, b, order[:size]] = True
            removed[r, 1, b, order[size:]] = True
    copies = np.concatenate(
        [batch.ids[j][None], np.where(removed, fill[j], batch.ids[j]).reshape(-1, length)]
    )
    unique, where = np.unique(copies, axis=0, return_inverse=True)
    feeds = {k: v[j : j + 1] for k, v in batch.feeds.items()}
    probabilities = auditor.probability(unique, feeds, target)[np.asarray(where).reshape(-1)]
    return float(probabilities[0]), (probabilities[0] - probabilities[1:]).reshape(removed.shape[:3])


def _record(auditor: TextAuditor, facts: dict, method: str, signed: bool, order, drops, sizes, n) -> dict:
    """One text x method record: the facts, the ranking, both metrics and their per-bin values."""
    comprehensiveness, sufficiency = drops
    return facts | {
        "method": method,
        "signed": signed,
        "comprehensiveness": float(comprehensiveness.mean()),
        "sufficiency": float(sufficiency.mean()),
        "comprehensiveness_curve": comprehensiveness.round(6).tolist(),
        "sufficiency_curve": sufficiency.round(6).tolist(),
        "bins": [_percent(k) for k in auditor.bins],
        "fractions": (auditor.bins / 100).round(6).tolist(),
        "rationale_sizes": [int(s) for s in sizes],
        "scored_tokens": int(n),
        "ranking": [int(k) for k in order],
        "protocol": auditor.protocol(),
    }


def rationale_sizes(scored: int, bins: np.ndarray) -> np.ndarray:
    """``max(1, ceil(k n / 100))`` tokens per bin ``k`` for ``n`` scored tokens (at most ``n``)."""
    sizes = np.ceil(np.asarray(bins, np.float64) * scored / 100 - 1e-9).astype(np.int64)
    return np.clip(sizes, 1, scored)


def random_ranking(count: int, noise_seed: int, index: int) -> np.ndarray:
    """The random baseline's order of a text's ``count`` scored tokens: by uniform draws seeded by
    ``(noise_seed, index)``, highest first."""
    return ranking(random_attribution(count, noise_seed, index), noise_seed)


def _label(first: TextExplanation, j: int, labels: list[str], target: int) -> str:
    if first.labels[j] is not None:
        return str(first.labels[j])
    return labels[target] if 0 <= target < len(labels) else str(target)


def _percent(k: float) -> float | int:
    return int(k) if float(k).is_integer() else float(k)
