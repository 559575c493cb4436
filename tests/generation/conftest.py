"""Tiny random-init causal language models with a byte-level BPE tokenizer built offline, each exported
by torch.onnx without a cache into a folder (model.onnx, tokenizer.json, config.json): a GPT-2 and a
Llama-style model (rotary positions, RMSNorm, grouped-query attention). The module kept for the
references is a copy made before the export. Nothing is downloaded."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = ["the capital of france is paris", "a cat sat on the mat", "paris is a city in france"] * 4
EOS = "<|endoftext|>"


@dataclass
class LanguageModel:
    folder: Path
    net: torch.nn.Module  # the float32 module, as exported (a copy made before the export)
    eos: int


def tokenizer(folder: Path) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=160, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(folder / "tokenizer.json"))
    return tok.get_vocab_size()


class Logits(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, ids, mask):
        return self.net(input_ids=ids, attention_mask=mask, use_cache=False).logits


def build(folder: Path, family: str) -> LanguageModel:
    import transformers as hf

    vocab = tokenizer(folder)
    eos = Tokenizer.from_file(str(folder / "tokenizer.json")).token_to_id(EOS)
    torch.manual_seed(0)
    shared = {"vocab_size": vocab, "eos_token_id": eos, "bos_token_id": eos, "pad_token_id": eos}
    if family == "gpt2":
        config = hf.GPT2Config(
            n_positions=64, n_embd=32, n_layer=2, n_head=2, initializer_range=0.2, **shared
        )
        net = hf.GPT2LMHeadModel(config)
    else:
        config = hf.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, **shared,
        )  # fmt: skip
        net = hf.LlamaForCausalLM(config)
    net.eval()
    kept = copy.deepcopy(net)
    names = ["input_ids", "attention_mask"]
    example = (torch.ones(1, 6, dtype=torch.int64), torch.ones(1, 6, dtype=torch.int64))
    torch.onnx.export(
        Logits(net), example, str(folder / "model.onnx"), dynamo=False, input_names=names,
        output_names=["logits"], opset_version=17,
        dynamic_axes={n: {0: "N", 1: "T"} for n in names} | {"logits": {0: "N", 1: "T"}},
    )  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    return LanguageModel(folder, kept, eos)


@pytest.fixture(scope="session")
def gpt2(tmp_path_factory) -> LanguageModel:
    return build(tmp_path_factory.mktemp("gpt2"), "gpt2")


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> LanguageModel:
    return build(tmp_path_factory.mktemp("llama"), "llama")
