"""Token scores shown: one self-contained HTML page, and a line per text on a terminal.

Each token's background says its score against the text's largest ``|score|`` for that method: red
for the class and blue against it for signed methods, one amber hue for unsigned ones; special tokens
are outlined and not coloured; the token whose label is explained (a model that labels every
token) is outlined in black. The page is one file (inline CSS, no script, nothing fetched); every
piece of text on it (tokens, labels, the texts themselves) is escaped, since texts are untrusted. On a
terminal the same colours are ANSI backgrounds; in a pipe each token is written ``token(score)``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

FOR, AGAINST, UNSIGNED = (214, 39, 40), (31, 119, 180), (230, 126, 34)
STRONGEST = 0.85  # the opacity of the text's largest score

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.05em; margin: 0 0 .4em; }
section { border-top: 1px solid #ddd; padding: .8em 0; }
.method { margin: .3em 0; } .name { font: 12px monospace; color: #666; display: block; }
.tokens { margin: .2em 0; line-height: 2.1; white-space: pre-wrap; word-break: break-word; }
.tok { padding: .15em .1em; border-radius: 3px; }
.special { outline: 1px dashed #999; color: #777; font-size: .85em; margin: 0 .2em; }
.explained { outline: 2px solid #222; font-weight: 600; }
.legend { display: flex; gap: 2em; flex-wrap: wrap; font-size: 13px; color: #444; }
.bar { width: 14em; height: .9em; border: 1px solid #ccc; margin: .2em 0; }
.ends { display: flex; justify-content: space-between; width: 14em; }
.score, .note { color: #666; font-weight: normal; }
"""


def colour(score: float, largest: float, signed: bool) -> tuple[tuple[int, int, int], float]:
    """A score's hue and opacity in [0, STRONGEST] (module docstring)."""
    strength = min(abs(score) / largest, 1.0) if largest > 0 else 0.0
    hue = (FOR if score >= 0 else AGAINST) if signed else UNSIGNED
    return hue, STRONGEST * strength


def largest(scores: np.ndarray, special: np.ndarray) -> float:
    """The largest ``|score|`` of a text's scored tokens (0 when there are none)."""
    scored = np.abs(np.asarray(scores, np.float64)[~np.asarray(special, bool)])
    return float(scored.max()) if scored.size else 0.0


def page(explanations: Sequence, title: str = "Token attributions", model: str = "") -> str:
    """One HTML page of ``explanations`` (one per method, of the same texts), text after text."""
    first = explanations[0]
    sections = "\n".join(_section(i, explanations) for i in range(len(first.texts)))
    about = f"<p class='note'>model {_e(model)}</p>" if model else ""
    return (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head>\n<body><h1>{_e(title)}</h1>{about}\n"
        f"{_legend(sorted({e.signed for e in explanations}))}\n{sections}\n</body></html>\n"
    )


def _section(i: int, explanations: Sequence) -> str:
    first = explanations[0]
    name = first.labels[i] if first.labels[i] is not None else f"class {int(first.targets[i])}"
    if first.positions is not None:
        name = f"“{first.shown(i)[first.positions[i]]}” is {name}"
    cut = " <span class='note'>(truncated)</span>" if first.truncated and first.truncated[i] else ""
    rows = "".join(
        f"<div class='method' data-method='{_e(e.method)}'><span class='name'>{_e(e.method)}</span>"
        f"<p class='tokens'>{_tokens(e, i)}</p></div>"
        for e in explanations
    )
    return (
        f"<section data-text='{i}'><h2>{i}: {_e(name)} <span class='score'>"
        f"(score {float(first.target_scores[i]):.4g})</span>{cut}</h2>{rows}</section>"
    )


def _tokens(e, i: int) -> str:
    """Text ``i``'s tokens as coloured spans, a space where the text has one between them."""
    scores, special, spans = e.scores[i], e.special[i], e.spans[i]
    top = largest(scores, special)
    explained = e.positions[i] if e.positions is not None else -1
    out = []
    for k, token in enumerate(e.shown(i)):
        if k and (spans[k][0] > spans[k - 1][1] or special[k] or special[k - 1]):
            out.append(" ")
        if special[k]:
            out.append(f"<span class='tok special' title='special token, not scored'>{_e(token)}</span>")
            continue
        (r, g, b), alpha = colour(float(scores[k]), top, e.signed)
        kind = "tok explained" if k == explained else "tok"
        out.append(
            f"<span class='{kind}' style='background:rgba({r},{g},{b},{alpha:.3f})' "
            f"title='{_e(token)}: {float(scores[k]):+.4g}'>{_e(token)}</span>"
        )
    return "".join(out)


def _legend(kinds: list[bool]) -> str:
    """A colour bar per kind of method on the page (signed, unsigned)."""
    bars = []
    for signed in kinds:
        stops: list = [AGAINST, None, FOR] if signed else [None, UNSIGNED]
        ends = ["against the class", "0", "for it"] if signed else ["0", "most important"]
        css = ", ".join(
            "rgba(255,255,255,0)" if s is None else f"rgba({s[0]},{s[1]},{s[2]},{STRONGEST})" for s in stops
        )
        labels = "".join(f"<span>{_e(t)}</span>" for t in ends)
        kind = "signed methods" if signed else "unsigned methods"
        bars.append(
            f"<div>{kind}<div class='bar' style='background:linear-gradient(to right, {css})'></div>"
            f"<div class='ends'>{labels}</div></div>"
        )
    note = "<div>each score against the text's largest |score|;<br>special tokens outlined, not scored</div>"
    return f"<div class='legend'>{''.join(bars)}{note}</div>"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def terminal_line(e, i: int, colours: bool) -> str:
    """Text ``i``'s tokens on one line: ANSI backgrounds (``colours``) or ``token(score)``."""
    top = largest(e.scores[i], e.special[i])
    out = []
    for token, score, special in zip(e.shown(i), e.scores[i], e.special[i]):
        shown = printable(token)
        if not colours:
            out.append(shown if special else f"{shown}({float(score):.3g})")
            continue
        if special:
            out.append(f"\x1b[2m{shown}\x1b[0m")
            continue
        hue, alpha = colour(float(score), top, e.signed)
        r, g, b = (round(255 + (c - 255) * alpha) for c in hue)  # the hue over a white background
        out.append(f"\x1b[48;2;{r};{g};{b}m\x1b[30m{shown}\x1b[0m")
    return " ".join(out)


def printable(token: str) -> str:
    """A token with its control characters written as escapes (a text could hold terminal codes)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in token)
