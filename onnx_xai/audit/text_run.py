"""``audit`` for a text encoder: the texts audited by ERASER's comprehensiveness and sufficiency
(:mod:`.text_auditor`), and ``results.jsonl`` and ``report.html`` written as one set.

The sanity checks (model randomization, a random class) are not run for texts in this version; the
report says so in one line. As for photos and tables, nothing is written until every text is done,
and the files are moved into ``out`` together (:func:`onnx_xai.support.files.commit_set`), replacing
a previous audit's set (its ``maps.npz`` or ``attributions.npz`` removed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..support.errors import InputError
from ..support.files import commit_set, output_folder
from .finish import KNOWN_OUTPUTS, json_lines
from .text_auditor import TextAudit, TextAuditOptions, TextAuditor, audit_text_list

OUTPUTS = ("results.jsonl", "report.html")
NOT_RUN = "the sanity checks are not run for texts in this version"


def audit_texts(
    model: str,
    texts: Sequence[str],
    out: Path,
    opts: TextAuditOptions | None = None,
    tokenizer=None,
    explainer_args: dict | None = None,
    progress: Callable | None = None,
    explainer=None,
) -> dict:
    """Audit ``texts`` on the text encoder ``model``; returns the paths written, by name.

    Args:
        model: the ``.onnx`` file, or the export folder holding it.
        texts: the texts, each audited on its own (explained in batches of ``opts.batch_size``).
        out: the output folder (created if missing).
        opts: methods, bins, class, seed (:class:`~.text_auditor.TextAuditOptions`).
        tokenizer: a ``tokenizer.json``, a folder holding one, a ``tokenizers.Tokenizer``, a
            ``transformers`` fast tokenizer or a :class:`~onnx_xai.text.TextTokenizer` (default: the
            one beside the model).
        explainer_args: what every :class:`~onnx_xai.Explainer` made gets (threads, backend, names).
        progress: ``progress(total)`` returns a progress bar (``update``, ``close``).
        explainer: one already made on ``model`` with ``explainer_args``.

    Raises:
        InputError: a model that takes no ids, no tokenizer, no text, an unknown method, a text with
            nothing but special tokens; nothing is written then.
    """
    from ..runtime import Explainer
    from ..text.files import model_file

    model = model_file(model)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a non-empty list of texts")
    ex = explainer or Explainer(model, **dict(explainer_args or {}))
    auditor = TextAuditor(
        ex, model, tokenizer if tokenizer is not None else model, opts or TextAuditOptions()
    )
    bar = progress(len(texts)) if progress else None
    try:
        audit = audit_text_list(auditor, texts, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return write_text_outputs(Path(out), auditor, audit)


def write_text_outputs(out: Path, auditor: TextAuditor, audit: TextAudit) -> dict:
    """``results.jsonl`` and ``report.html`` in ``out``, as one set."""
    from .report import render_texts

    out = output_folder(Path(out))
    lines = json_lines(audit.records, ascii_only=False)
    html = render_texts(auditor.model_facts(), auditor.opts, audit, {"randomization_skipped": NOT_RUN})
    writers = {
        "results.jsonl": lambda path: path.write_text(lines, encoding="utf-8"),
        "report.html": lambda path: path.write_text(html, encoding="utf-8"),
    }
    commit_set(out, writers, KNOWN_OUTPUTS)
    return {name: str(out / name) for name in writers}
