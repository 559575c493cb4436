"""Tiny random-init Hugging Face text encoders with tokenizers built offline, each exported to ONNX in
an Optimum-like folder (model.onnx, tokenizer.json, config.json): a DistilBERT with a WordPiece
tokenizer and two labels, a BERT taking token types, a RoBERTa with a byte-level BPE tokenizer and
three labels, and a BERT that labels every token (four entity tags). Nothing is downloaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the movie was great terrible fun boring i did not like it a day good bad play script don t "
    "##ing ##ed ##s , . ' < > !"
).split()
CORPUS = [
    "the movie was great and fun",
    "a terrible, boring film",
    "what a lovely day",
    "i did not like it at all",
    "playing the script was good",
]
LABELS = {"distilbert": ["negative", "positive"], "bert": ["no", "yes"], "roberta": ["sad", "calm", "glad"]}
LABELS["bert_tokens"] = ["O", "B-PER", "I-PER", "B-LOC"]


@dataclass
class TextModel:
    folder: Path
    net: torch.nn.Module  # the float32 module exported
    embeddings: str  # its word embedding module's path (the reference's hook)
    inputs: list[str]


def wordpiece(path: Path) -> None:
    vocab = {token: k for k, token in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL)
    tok.save(str(path / "tokenizer.json"))


def byte_level_bpe(path: Path) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    tok.save(str(path / "tokenizer.json"))
    return tok.get_vocab_size()


def export(net, names: list[str], path: Path, per_token: bool = False) -> None:
    examples = tuple(torch.ones(2, 7, dtype=torch.int64) for _ in names)
    axes = {n: {0: "N", 1: "T"} for n in names} | {"logits": {0: "N", 1: "T"} if per_token else {0: "N"}}
    torch.onnx.export(
        net, examples, str(path), dynamo=False, input_names=names, output_names=["logits"],
        dynamic_axes=axes, opset_version=17,
    )  # fmt: skip


def build(folder: Path, family: str) -> TextModel:
    import transformers as hf

    torch.manual_seed(0)
    shared = {"num_labels": len(LABELS[family]), "id2label": dict(enumerate(LABELS[family]))}
    shared |= {"initializer_range": 0.1, "max_position_embeddings": 40}
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    if family == "distilbert":
        wordpiece(folder)
        config = hf.DistilBertConfig(vocab_size=100, dim=32, hidden_dim=64, n_layers=2, n_heads=2, **shared)
        net, names = hf.DistilBertForSequenceClassification(config), ["input_ids", "attention_mask"]
    elif family in ("bert", "bert_tokens"):
        wordpiece(folder)
        config = hf.BertConfig(vocab_size=100, **small, **shared)
        head = hf.BertForTokenClassification if family == "bert_tokens" else hf.BertForSequenceClassification
        net, names = head(config), ["input_ids", "attention_mask", "token_type_ids"]
    else:
        vocab = byte_level_bpe(folder)
        shared["max_position_embeddings"] = 42  # RoBERTa's positions start after the pad id
        config = hf.RobertaConfig(
            vocab_size=vocab, pad_token_id=1, bos_token_id=0, eos_token_id=2, **small, **shared
        )
        net, names = hf.RobertaForSequenceClassification(config), ["input_ids", "attention_mask"]
    net.eval()
    export(net, names, folder / "model.onnx", per_token=family == "bert_tokens")
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    embeddings = {"distilbert": "distilbert", "roberta": "roberta"}.get(family, "bert")
    return TextModel(folder, net, f"{embeddings}.embeddings.word_embeddings", names)


@pytest.fixture(scope="session")
def distilbert(tmp_path_factory) -> TextModel:
    return build(tmp_path_factory.mktemp("distilbert"), "distilbert")


@pytest.fixture(scope="session")
def bert(tmp_path_factory) -> TextModel:
    return build(tmp_path_factory.mktemp("bert"), "bert")


@pytest.fixture(scope="session")
def roberta(tmp_path_factory) -> TextModel:
    return build(tmp_path_factory.mktemp("roberta"), "roberta")


@pytest.fixture(scope="session")
def bert_tokens(tmp_path_factory) -> TextModel:
    """A BERT that labels every token (named-entity tags)."""
    return build(tmp_path_factory.mktemp("bert_tokens"), "bert_tokens")
