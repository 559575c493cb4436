"""Greedy generation with a causal language model's ONNX file, as Hugging Face's ``generate`` does it
with ``do_sample=False``: the token with the largest logit at the last position, appended, until
``max_new_tokens`` or the end-of-sequence token (which is kept, and ends the text).

A file with a cache (:mod:`.cache`: past key values in, present ones out, a merged decoder's
``use_cache_branch``) runs the prompt once and then one token per step on the cache it gave back; a
file without one runs the whole prefix at each step. The model's other inputs are what a tokenizer
gives a single unpadded text: an attention mask of ones, positions ``0 .. T-1``, token types 0.
"""

from __future__ import annotations

import numpy as np

from ..support.errors import InputError, ModelError
from .cache import cache_of, cached_feeds


def greedy(ex, prompt_ids: list[int], max_new_tokens: int, eos: int | None = None) -> list[int]:
    """The tokens greedy decoding appends to ``prompt_ids`` (at most ``max_new_tokens``)."""
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be 1 or more, not {max_new_tokens}")
    if not prompt_ids:
        raise InputError("the prompt has no tokens")
    cache = cache_of(ex.inputs, ex.outputs)
    names = [ex.output_name, *(cache.present if cache else [])]
    ids, generated, fed = list(prompt_ids), [], 0
    past = cache.empty(1) if cache else {}
    for _ in range(max_new_tokens):
        step = np.asarray([ids[fed:]], np.int64)
        feeds = cached_feeds(ex.inputs, ex.input_name, ids, fed) | past
        logits, *present = ex.predict_outputs(step, names, **feeds)
        logits = np.asarray(logits)
        if logits.ndim != 3 or logits.shape[:2] != step.shape:
            raise ModelError(f"the output is {list(logits.shape)}, not a language model's logits [N, T, V]")
        token = int(logits[0, -1].argmax())
        generated.append(token)
        if cache:
            past, fed = dict(zip(cache.past, present)), len(ids)
        ids.append(token)
        if eos is not None and token == eos:
            break
    return generated
