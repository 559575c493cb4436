"""Greedy generation with a causal language model's ONNX file, as Hugging Face's ``generate`` does it
with ``do_sample=False``: the token with the largest logit at the last position, appended, until
``max_new_tokens`` or the end-of-sequence token (which is kept, and ends the text).

Each step runs the whole prefix (the file needs no cache inputs; a model whose file takes
``past_key_values`` is refused in one line for now). The model's other inputs are what a tokenizer
gives a single unpadded text: an attention mask of ones, positions ``0 .. T-1``, token types 0.
"""

from __future__ import annotations

import numpy as np

from ..support.errors import InputError, ModelError
from ..text.tokenizer import prompt_feeds

CACHE_PREFIXES = ("past_key_values", "past.", "past_")


def check_no_cache(inputs: dict) -> None:
    cached = [n for n in inputs if n.startswith(CACHE_PREFIXES) or n == "use_cache_branch"]
    if cached:
        raise ModelError(
            f"the model takes a cache ({cached[0]!r} ...): explain its export without past key values "
            "(Optimum's model.onnx, or torch.onnx with use_cache=False)"
        )


def greedy(ex, prompt_ids: list[int], max_new_tokens: int, eos: int | None = None) -> list[int]:
    """The tokens greedy decoding appends to ``prompt_ids`` (at most ``max_new_tokens``)."""
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be 1 or more, not {max_new_tokens}")
    if not prompt_ids:
        raise InputError("the prompt has no tokens")
    check_no_cache(ex.inputs)
    ids, generated = list(prompt_ids), []
    for _ in range(max_new_tokens):
        batch = np.asarray([ids], np.int64)
        logits = np.asarray(ex.predict(batch, **prompt_feeds(ex.inputs, ex.input_name, batch)))
        if logits.ndim != 3 or logits.shape[:2] != batch.shape:
            raise ModelError(f"the output is {list(logits.shape)}, not a language model's logits [N, T, V]")
        token = int(logits[0, -1].argmax())
        generated.append(token)
        ids.append(token)
        if eos is not None and token == eos:
            break
    return generated
