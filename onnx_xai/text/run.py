"""Explaining texts end to end: each method on every text, in batches, written as one set of files.

Written into the output folder as one set (:func:`onnx_xai.support.files.commit_set`: a rerun never
leaves a mix, and the records of texts a rerun lacks are removed): ``texts/<i>.json`` per text (the
text, its tokens, which are special, the class explained, its label and score (at the explained
token's index, ``token``, for a model that labels every token), the model's SHA-256, and each
method's score per token) and ``report.html``, the page of :mod:`.page`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..runtime.methods import options_for
from ..support.files import commit_set, output_folder
from .explain import TextExplanation, explain_text
from .page import page
from .tokenizer import TextTokenizer

RECORDS = "texts"
REPORT = "report.html"


@dataclass
class TextOptions:
    """How to explain texts (the ``explain`` command's flags, as a value)."""

    methods: Sequence[str] = ("integrated_gradients",)
    objective: int | None = None
    words: bool = False
    occlude_special: bool = False
    labels: list[str] | None = None
    batch_size: int = 8
    noise_seed: int = 0
    steps: int | None = None
    token: int | str | None = None  # a model that labels every token: the token explained


def explain_texts(
    ex, texts: Sequence[str], tokenizer: TextTokenizer, out: Path, opts: TextOptions, sha256: str
) -> list[TextExplanation]:
    """Explain ``texts`` with each method and write the set (module docstring); one explanation of
    every text per method."""
    found = [_explain(ex, texts, tokenizer, method, opts) for method in dict.fromkeys(opts.methods)]
    writers = {
        f"{RECORDS}/{i}.json": _writer(json.dumps(_record(i, found, sha256), indent=1, ensure_ascii=False))
        for i in range(len(texts))
    }
    writers[REPORT] = _writer(page(found, "Token attributions", f"sha256 {sha256}"))
    folder = output_folder(out)
    commit_set(folder, writers, _previous_records(folder))
    return found


def _explain(ex, texts: Sequence[str], tokenizer, method: str, opts: TextOptions) -> TextExplanation:
    """One method on every text, ``batch_size`` texts per run."""
    options = options_for([method], opts.noise_seed, opts.steps)
    parts = [
        explain_text(
            ex,
            list(texts[k : k + opts.batch_size]),
            method,
            tokenizer,
            opts.objective,
            opts.words,
            opts.occlude_special,
            opts.labels,
            opts.token,
            **options,
        )  # fmt: skip
        for k in range(0, len(texts), opts.batch_size)
    ]
    return TextExplanation.joined(parts)


def _writer(text: str) -> Callable[[Path], object]:
    return lambda path: path.write_text(text, encoding="utf-8")


def _record(i: int, found: list[TextExplanation], sha256: str) -> dict:
    first = found[0]
    return {
        "text": first.texts[i],
        "model_sha256": sha256,
        "tokens": first.tokens[i],
        "special": [bool(s) for s in first.special[i]],
        "spans": [list(s) for s in first.spans[i]],
        "words": first.words,
        "truncated": bool(first.truncated[i]) if first.truncated else False,
        "target": int(first.targets[i]),
        "label": first.labels[i],
        "score": float(first.target_scores[i]),
        **({} if first.positions is None else {"token": first.positions[i]}),
        "explanations": [
            {"method": e.method, "signed": e.signed, "scores": [float(s) for s in e.scores[i]]} for e in found
        ],
    }


def _previous_records(out: Path) -> list[str]:
    """The records a previous run left (removed when this set lacks them); none through a link."""
    folder = out / RECORDS
    if folder.is_symlink() or not folder.is_dir():
        return []
    return [f"{RECORDS}/{p.name}" for p in folder.iterdir() if p.name.endswith(".json")]
