"""A generation's attribution as one self-contained HTML page: the matrix as a heat map.

One row per generated token (its text, its score), one column per token of the prompt and of the
generation so far; each cell coloured by its value against the row's largest ``|value|`` (red for
the token and blue against it for signed methods, one amber hue for unsigned ones), empty after the
row's prefix, the value in its tooltip. Hovering a row outlines it, so the prompt reads highlighted
for that generated token; the prompt's columns are set apart from the generated ones. One file with
inline CSS, no script, nothing fetched; every token is escaped (prompts are untrusted).
"""

from __future__ import annotations

import html

import numpy as np

from ..text.page import colour

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; } .note { color: #666; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { padding: .25em .4em; font: 12px monospace; white-space: pre; border: 1px solid #eee; }
th.col { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; }
th.gen, td.gen { border-left: 2px solid #999; }
tr.step:hover td, tr.step:hover th { outline: 2px solid #222; }
td.empty { background: #fafafa; }
th.row { text-align: right; }
"""


def generation_page(explanations, title: str = "Generation attributions", model: str = "") -> str:
    """The page of ``explanations`` (one per method, of the same generation)."""
    first = explanations[0]
    about = f"<p class='note'>model {_e(model)}</p>" if model else ""
    prompt = f"<p>prompt: <b>{_e(first.prompt)}</b></p>"
    generated = f"<p>generated: <b>{_e(''.join(shown_token(t) for t in first.generated_tokens))}</b></p>"
    tables = "\n".join(_table(e) for e in explanations)
    return (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head>\n<body><h1>{_e(title)}</h1>{about}{prompt}{generated}\n{tables}\n"
        "</body></html>\n"
    )


def _table(e) -> str:
    signed, prompt = e.signed, len(e.prompt_tokens)
    head = "".join(
        f"<th class='col{' gen' if k == prompt else ''}'>{_e(shown_token(t))}</th>"
        for k, t in enumerate(e.tokens)
    )
    rows = "".join(_row(e, k, signed, prompt) for k in range(len(e.generated_tokens)))
    what = e.score + (" against a contrast" if e.contrast else "")
    return (
        f"<section data-method='{_e(e.method)}'><h2>{_e(e.method)} <span class='note'>({_e(what)}"
        f"{', removed tokens became ' + _e(e.replaced_by) if e.replaced_by else ''})</span></h2>"
        f"<table><tr><th></th>{head}</tr>{rows}</table></section>"
    )


def _row(e, k: int, signed: bool, prompt: int) -> str:
    values = e.matrix[k]
    known = values[~np.isnan(values)]
    largest = float(np.abs(known).max()) if known.size else 0.0
    cells = []
    for j, value in enumerate(values):
        kind = " gen" if j == prompt else ""
        if np.isnan(value):
            cells.append(f"<td class='empty{kind}'></td>")
            continue
        (r, g, b), alpha = colour(float(value), largest, signed)
        cells.append(
            f"<td class='{kind.strip()}' style='background:rgba({r},{g},{b},{alpha:.3f})' "
            f"title='{_e(shown_token(e.tokens[j]))}: {float(value):+.4g}'>{_e(shown_token(e.tokens[j]))}</td>"
        )
    label = (
        f"{_e(shown_token(e.generated_tokens[k]))} <span class='note'>{float(e.step_scores[k]):.3g}</span>"
    )
    return f"<tr class='step' data-step='{k}'><th class='row'>{label}</th>{''.join(cells)}</tr>"


def shown_token(token: str) -> str:
    """A byte-level or SentencePiece token as the text writes it (its space mark made a space)."""
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)
