"""The page of token scores: one self-contained file (no script, nothing fetched) where every token,
label and text is escaped, each token coloured by its score against the text's largest (red for,
blue against, amber for unsigned methods), special tokens outlined; the terminal line coloured or
written ``token(score)``, control characters escaped."""

from __future__ import annotations

import re

import numpy as np

from onnx_xai.text import TextExplanation
from onnx_xai.text.page import page, terminal_line

HOSTILE = "<script>alert(1)</script>"


def explanation(signed: bool, method: str = "integrated_gradients") -> TextExplanation:
    texts = [f"good {HOSTILE}", "bad\x1b[2J day"]
    return TextExplanation(
        texts=texts,
        method=method,
        signed=signed,
        tokens=[["[CLS]", "good", HOSTILE, "[SEP]"], ["[CLS]", "bad\x1b[2J", "day", "[SEP]"]],
        spans=[[(0, 0), (0, 4), (5, 5 + len(HOSTILE)), (0, 0)], [(0, 0), (0, 7), (8, 11), (0, 0)]],
        scores=[np.array([0.0, 2.0, -1.0, 0.0]), np.array([0.0, 0.5, 0.25, 0.0])],
        special=[np.array([True, False, False, True])] * 2,
        targets=np.array([1, 0]),
        labels=['"pos" <b>', None],
        target_scores=np.array([3.5, -1.25]),
        raw=[np.zeros((4, 8))] * 2,
        truncated=[False, True],
    )


def test_every_token_is_escaped_and_the_page_stands_alone():
    text = explanation(signed=True).html()
    assert "<script" not in text.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;pos&quot; &lt;b&gt;" in text and "class 0" in text and "(truncated)" in text
    assert not re.search(r"https?:|<link|src=|@import|url\(", text)
    for token in ("[CLS]", "good", "day", "[SEP]"):
        assert f">{token}</span>" in text
    assert text.count("class='tok special'") == 4 and text.startswith("<!doctype html>")


def test_colours_follow_the_sign_and_the_text_largest_score():
    text = explanation(signed=True).html()
    assert "background:rgba(214,39,40,0.850)' title='good: +2'" in text  # the largest: full strength
    assert "background:rgba(31,119,180,0.425)" in text  # -1 against 2: half, blue
    assert "background:rgba(214,39,40,0.425)' title='day: +0.25'" in text  # 0.25 against 0.5 in text 1
    unsigned = explanation(signed=False, method="gradient").html()
    assert "rgba(230,126,34,0.850)" in unsigned and "rgba(214,39,40" not in unsigned.split("<section")[1]
    both = page([explanation(True), explanation(False, "gradient")])
    assert (
        both.count("data-method='gradient'") == 2 and "signed methods" in both and "unsigned methods" in both
    )


def test_the_terminal_line_is_coloured_only_when_asked():
    e = explanation(signed=True)
    plain = terminal_line(e, 0, colours=False)
    assert plain == f"[CLS] good(2) {HOSTILE}(-1) [SEP]"
    assert terminal_line(e, 1, colours=False) == "[CLS] bad\\x1b[2J(0.5) day(0.25) [SEP]"
    coloured = terminal_line(e, 0, colours=True)
    assert "\x1b[48;2;" in coloured and coloured.count("\x1b[0m") == 4
    assert "\x1b[2J" not in terminal_line(e, 1, colours=True)
