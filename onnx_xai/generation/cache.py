"""A causal language model's cache, as exports write it: the past keys and values it takes
(``past_key_values.{i}.key|value``, ``past.{i}`` or ``past_*`` inputs), the present ones it gives back
(``present*`` outputs, in the same order), and the ``use_cache_branch`` flag of a merged decoder.

Generation feeds the cache back (:func:`cached_feeds`): the first run takes the prompt with an empty
cache (length 0 along its one symbolic axis besides the batch) and the flag false, each later run one
token with the cache the run before gave and the flag true; the attention mask covers every token so
far and the positions continue from the cache's length. Attribution runs on the full prefix with the
empty cache (:meth:`Cache.empty`): a merged decoder's copy that is differentiated has no cache inputs
left (:mod:`onnx_xai.graph.branches`), an export that always takes one is fed a cache of length 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.branches import CACHE_FLAG, PAST_PREFIXES, PRESENT_PREFIX
from ..runtime.inputs import ONNXRUNTIME_TYPES
from ..support.errors import ModelError
from ..text.tokenizer import POSITION_INPUTS, prompt_feeds


@dataclass(frozen=True)
class Cache:
    """The cache inputs (name -> declared shape, type) and the present outputs, in order."""

    past: dict[str, tuple]
    present: list[str]
    flag: bool  # whether the model takes ``use_cache_branch``

    def empty(self, batch: int) -> dict[str, np.ndarray]:
        """Each cache input holding nothing (length 0) for ``batch`` sequences."""
        feeds = {}
        for name, (shape, kind) in self.past.items():
            dims = [batch if k == 0 else (d if isinstance(d, int) else 0) for k, d in enumerate(shape)]
            feeds[name] = np.zeros(dims, ONNXRUNTIME_TYPES[kind])
        return feeds


def cache_of(inputs: dict[str, tuple], outputs) -> Cache | None:
    """The model's cache (module docstring), or None where it takes none; a cache whose shape cannot
    be made empty, or without as many present outputs, is refused in one line."""
    past = {n: spec for n, spec in inputs.items() if n.startswith(PAST_PREFIXES)}
    if not past:
        return None
    present = [n for n in outputs if n.startswith(PRESENT_PREFIX)]
    if len(present) != len(past):
        raise ModelError(
            f"the model takes {len(past)} cache inputs ({next(iter(past))!r} ...) but gives "
            f"{len(present)} present outputs: cannot feed its cache back"
        )
    for name, (shape, kind) in past.items():
        free = [d for d in shape[1:] if not isinstance(d, int)]
        if len(free) != 1 or kind not in ONNXRUNTIME_TYPES:
            raise ModelError(
                f"the cache input {name!r} is {kind} {list(shape)}: expected one symbolic length axis "
                "besides the batch, the heads and sizes fixed"
            )
    return Cache(past, present, CACHE_FLAG in inputs)


def plain_inputs(inputs: dict[str, tuple]) -> dict[str, tuple]:
    """The inputs a tokenizer's values fill: all but the cache and its flag."""
    return {n: spec for n, spec in inputs.items() if not n.startswith(PAST_PREFIXES) and n != CACHE_FLAG}


def cached_feeds(inputs: dict[str, tuple], ids_name: str, ids: list[int], fed: int) -> dict[str, np.ndarray]:
    """The inputs besides the ids and the cache for a run that feeds the tokens after the ``fed``
    first of ``ids`` (module docstring): the mask over all of them, their positions, the flag."""
    every = np.asarray([ids], np.int64)
    feeds = prompt_feeds(plain_inputs(inputs), ids_name, every)
    for name in POSITION_INPUTS:
        if name in feeds:
            feeds[name] = np.ascontiguousarray(feeds[name][:, fed:])
    if CACHE_FLAG in inputs:
        shape = (1,) if len(inputs[CACHE_FLAG][0]) == 1 else ()
        feeds[CACHE_FLAG] = np.full(shape, fed > 0, np.bool_)
    return feeds
