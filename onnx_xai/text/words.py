"""Word pieces merged back into words, their scores summed.

Where the tokenizer gives character offsets, a word is a run of tokens with no gap between them in the
text (``play`` ``##ing`` and ``Ġplay`` ``ing`` alike; ``don't`` stays one word), its text the
characters it covers. Without offsets the pieces' own marks say it: ``##`` continues a WordPiece word,
``Ġ`` (byte-level BPE) and ``▁`` (SentencePiece) start one. A special token is always a word of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CONTINUES = "##"
STARTS = ("Ġ", "▁")


def word_groups(
    tokens: Sequence[str], spans: Sequence[tuple[int, int]], special: Sequence[bool]
) -> list[list[int]]:
    """The tokens' indices grouped into words, in order (module docstring)."""
    offsets = any(end > start for (start, end), s in zip(spans, special) if not s)
    marked = any(t.startswith(STARTS) for t in tokens)
    groups: list[list[int]] = []
    for k, token in enumerate(tokens):
        if k == 0 or special[k] or special[k - 1]:
            starts = True
        elif offsets:
            starts = spans[k][0] > spans[k - 1][1]
        elif marked:
            starts = token.startswith(STARTS)
        else:
            starts = not token.startswith(CONTINUES)
        if starts:
            groups.append([k])
        else:
            groups[-1].append(k)
    return groups


def word_text(text: str, tokens: Sequence[str], spans: Sequence[tuple[int, int]], group: list[int]) -> str:
    """A word's text: the characters its pieces cover, else the pieces without their marks."""
    start, end = spans[group[0]][0], spans[group[-1]][1]
    if end > start:
        return text[start:end]
    pieces = [tokens[k] for k in group]
    return "".join(p.removeprefix(CONTINUES) if k else p for k, p in enumerate(pieces)).lstrip(
        "".join(STARTS)
    )


def merge(
    text: str,
    tokens: Sequence[str],
    spans: Sequence[tuple[int, int]],
    special: np.ndarray,
    scores: np.ndarray,
) -> tuple[list[str], list[tuple[int, int]], np.ndarray, np.ndarray]:
    """One text's words: their texts, spans, special flags and summed scores."""
    groups = word_groups(tokens, spans, list(map(bool, special)))
    words = [word_text(text, tokens, spans, g) for g in groups]
    covered = [(spans[g[0]][0], spans[g[-1]][1]) for g in groups]
    return (
        words,
        covered,
        np.array([bool(special[g[0]]) for g in groups], bool),
        np.array([float(np.sum(scores[g])) for g in groups], np.float64),
    )
