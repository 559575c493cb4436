"""Texts made into a text encoder's inputs: ids padded with the pad id, the mask, token types and
positions in the types the model declares, special tokens from the tokenizer's added tokens, the pad
and mask ids, truncation at the tokenizer's longest sequence; word pieces grouped into words by
offsets, else by their marks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from onnx_xai.support.errors import InputError
from onnx_xai.text import TextTokenizer
from onnx_xai.text.files import config_labels, model_file, tokenizer_file
from onnx_xai.text.words import merge, word_groups

BERT_INPUTS = {
    "input_ids": (("N", "T"), "tensor(int64)"),
    "attention_mask": (("N", "T"), "tensor(float)"),
    "token_type_ids": (("N", "T"), "tensor(int32)"),
    "position_ids": (("N", "T"), "tensor(int64)"),
}


def test_a_batch_is_padded_to_the_longest_with_every_input_the_model_declares(distilbert):
    tok = TextTokenizer.load(distilbert.folder / "model.onnx")  # beside the model file
    assert (tok.pad_id, tok.mask_id, tok.special_ids, tok.labels) == (
        0,
        4,
        {0, 1, 2, 3, 4},
        ["negative", "positive"],
    )
    b = tok.encode(["the movie", "a bad day !"], BERT_INPUTS, "input_ids")
    assert b.ids.tolist() == [[2, 5, 6, 3, 0, 0], [2, 17, 20, 18, 33, 3]]  # a bad day !
    assert b.tokens[0] == ["[CLS]", "the", "movie", "[SEP]"] and b.spans[0][1:3] == [(0, 3), (4, 9)]
    assert b.feeds["attention_mask"].dtype == np.float32 and b.feeds["attention_mask"].tolist() == [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
    ]
    assert b.feeds["token_type_ids"].dtype == np.int32 and not b.feeds["token_type_ids"].any()
    assert b.feeds["position_ids"].tolist() == [list(range(6))] * 2
    assert b.special.tolist() == [
        [True, False, False, True, False, False],
        [True, False, False, False, False, True],
    ]
    assert b.padded.tolist() == [[False] * 4 + [True] * 2, [False] * 6]


def test_the_roberta_tokenizer_marks_its_own_specials(roberta):
    tok = TextTokenizer.load(roberta.folder)
    assert (tok.pad_id, tok.mask_id, tok.labels) == (1, 4, ["sad", "calm", "glad"])
    b = tok.encode(["the movie", "a day"], {"input_ids": (("N", "T"), "tensor(int64)")}, "input_ids")
    assert b.tokens[0][0] == "<s>" and b.tokens[0][-1] == "</s>" and b.ids[0, 0] == 0
    assert np.all(b.ids[b.padded] == 1) and b.special[0, 0] and b.special[0, len(b.tokens[0]) - 1]


def test_truncation_at_the_tokenizers_limit_or_a_fixed_length(distilbert, tmp_path):
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(distilbert.folder / name, tmp_path / name)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 5}))
    tok = TextTokenizer.load(tmp_path)
    b = tok.encode(
        ["the movie was great fun", "a day"], {"input_ids": (("N", "T"), "tensor(int64)")}, "input_ids"
    )
    assert b.tokens[0] == ["[CLS]", "the", "movie", "was", "[SEP]"] and b.truncated == [True, False]
    fixed = {"input_ids": (("N", 8), "tensor(int64)")}
    b = TextTokenizer.load(distilbert.folder).encode(["a day"], fixed, "input_ids")
    assert b.ids.shape == (1, 8) and b.truncated == [False]


def test_inputs_a_tokenizer_cannot_fill_are_named(distilbert):
    tok = TextTokenizer.load(distilbert.folder)
    inputs = {"input_ids": (("N", "T"), "tensor(int64)"), "pixel_values": (("N", 3), "tensor(float)")}
    with pytest.raises(
        InputError, match="the model also takes 'pixel_values', which a tokenizer does not give"
    ):
        tok.encode(["a"], inputs, "input_ids")


def test_files_of_an_export_folder(distilbert, tmp_path):
    assert model_file(distilbert.folder) == str(distilbert.folder / "model.onnx")
    assert tokenizer_file(distilbert.folder / "model.onnx") == distilbert.folder / "tokenizer.json"
    assert tokenizer_file(tmp_path) is None and config_labels(tmp_path) is None
    with pytest.raises(InputError, match="holds no .onnx file: name the model file"):
        model_file(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"1": "b", "0": "a"}}))
    assert config_labels(tmp_path) == ["a", "b"]
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the tokenizer"):
        TextTokenizer.load(tmp_path)


@pytest.mark.parametrize(
    "tokens, spans, words",
    [
        (["[CLS]", "play", "##ing", "it", "[SEP]"], [(0, 0)] * 5, ["[CLS]", "playing", "it", "[SEP]"]),
        (["<s>", "▁play", "ing", "▁it", "</s>"], [(0, 0)] * 5, ["<s>", "playing", "it", "</s>"]),
        (["<s>", "Ġplay", "ing", "Ġit", "</s>"], [(0, 0)] * 5, ["<s>", "playing", "it", "</s>"]),
        (
            ["[CLS]", "it", "'", "s", "ok", "[SEP]"],
            [(0, 0), (0, 2), (2, 3), (3, 4), (5, 7), (0, 0)],
            ["[CLS]", "it's", "ok", "[SEP]"],
        ),
    ],
)
def test_pieces_group_into_words_by_offsets_else_by_their_marks(tokens, spans, words):
    special = np.array([t.startswith(("[", "<")) for t in tokens])
    scores = np.arange(len(tokens), dtype=np.float64)
    found, _, flags, summed = merge("it's ok", tokens, spans, special, scores)
    assert word_groups(tokens, spans, list(special))[1][0] == 1
    assert found == words and flags[0] and flags[-1] and summed.sum() == scores.sum()


def test_a_transformers_tokenizer_or_one_that_pads_itself_encodes_the_same(distilbert):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    ids_only = {"input_ids": (("N", "T"), "tensor(int64)"), "attention_mask": (("N", "T"), "tensor(int64)")}
    texts = ["the movie was great fun", "a day"]
    expected = TextTokenizer.load(distilbert.folder).encode(texts, ids_only, "input_ids")
    padding = Tokenizer.from_file(str(distilbert.folder / "tokenizer.json"))
    padding.enable_padding(pad_id=0, pad_token="[PAD]", length=16)
    found = TextTokenizer.load(padding).encode(texts, ids_only, "input_ids")
    assert np.array_equal(found.ids, expected.ids) and found.lengths.tolist() == [7, 4]
    assert np.array_equal(found.feeds["attention_mask"], expected.feeds["attention_mask"])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_file=str(distilbert.folder / "tokenizer.json"), model_max_length=5
    )
    tok = TextTokenizer.load(wrapped)
    assert (tok.max_length, tok.pad_id, tok.mask_id) == (5, 0, 4)
    assert tok.encode(texts, ids_only, "input_ids").ids.tolist() == [
        expected.ids[0, :4].tolist() + [3],
        expected.ids[1, :5].tolist(),
    ]
