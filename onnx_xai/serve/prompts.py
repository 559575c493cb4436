"""Serving a causal language model: prompts in, the greedy continuation and each generated token's
attribution to the tokens before it out.

A model is served as a language model when it takes token ids and its output is logits ``[N, T, V]``
with ``V`` its tokenizer's vocabulary (``inspect``'s next-token logits). A request's instances are
prompts: strings, or ``{"prompt": ..., "max_new_tokens": K, "targets": ..., "contrast": ...,
"score": ...}`` objects (the arguments of :func:`onnx_xai.generation.explain_generation`;
``max_new_tokens`` 10 by default, at most the server's ``--max-new-tokens``). ``:predict`` answers
each prompt's greedy continuation (:func:`onnx_xai.generation.decode.greedy`: its text, tokens and
ids); ``:explain`` the continuation explained (the greedy one, or ``targets``) and one entry per
method holding what ``explain --prompt`` writes in ``generation.json``: the prompt's and the generated
tokens, each step's score and the matrix (``null`` after each step's prefix). Before anything runs, a
request's cost in model runs is admitted against ``--max-runs`` (:func:`.admission.is_long`): per
instance, the greedy decoding's ``K`` forwards (once, every method explains that generation; none
with ``targets``), and per method the ``K`` copies of the shared run and the method's runs on them
(``K`` x integrated gradients' steps, ``K`` x the sequence's positions for occlusion ...). Every
``:explain`` of a prompt is a long request (the long
lane, :mod:`.lanes`); a ``:predict`` is one when its ``K`` forwards pass ``--max-batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kserve.errors import InvalidInput

from ..generation import explain_generation
from ..generation.decode import greedy
from ..generation.explain import eos_id
from ..generation.scores import SCORES
from ..runtime.checks import check_kinds
from ..runtime.methods import plan
from ..support.errors import InputError
from ..text import TextTokenizer
from ..text.files import CONFIG_FILE, read_json
from .admission import WorkLimits, is_long
from .batching import LONG
from .requests import BadRequest, Instance

FIELDS = ("prompt", "max_new_tokens", "targets", "contrast", "score")
NEW_TOKENS = 10  # a prompt's max_new_tokens when it names none (the command line's)
POSITIONS = ("n_positions", "max_position_embeddings")  # config.json's longest sequence


@dataclass(frozen=True)
class Prompt:
    """One instance: the prompt, its token ids, and what to generate and score."""

    text: str
    ids: list[int]
    max_new_tokens: int
    targets: str | None
    steps: int  # the tokens explained: the targets', else at most max_new_tokens
    contrast: str | None
    score: str


class PromptFacts:
    """A served language model's tokenizer and bounds, read once at load."""

    def __init__(self, ex, tok: TextTokenizer, max_new_tokens: int, positions: int | None = None):
        self.ex, self.tok, self.max_new_tokens, self.positions = ex, tok, max_new_tokens, positions
        self.eos = eos_id(tok)

    @classmethod
    def of(cls, ex, model_path: str, config) -> PromptFacts | None:
        """The facts of ``ex``'s model when it is a language model (module docstring), else None
        (``config``: the server's :class:`~.model.ServeConfig`)."""
        tok, max_new_tokens = TextTokenizer.load(config.tokenizer or model_path), config.max_new_tokens
        shape, vocabulary = ex.output_shape, tok.tokenizer.get_vocab_size(with_added_tokens=True)
        if len(shape) != 3 or shape[-1] not in (vocabulary, tok.tokenizer.get_vocab_size(False)):
            return None
        folder = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
        said = read_json(folder / CONFIG_FILE)
        found = [said[k] for k in POSITIONS if isinstance(said.get(k), int) and said[k] > 0]
        return cls(ex, tok, max_new_tokens, found[0] if found else None)

    def read(self, payload: dict, max_instances: int) -> list[Instance]:
        """The request's prompts, one instance each (``array``: the prompt's ids, a batch of one)."""
        found = payload.get("instances", payload.get("inputs"))
        if not isinstance(found, list) or not found:
            raise BadRequest('the body needs "instances": a non-empty list of prompts')
        if len(found) > max_instances:
            raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
        prompts = [self._prompt(item, k) for k, item in enumerate(found)]
        return [Instance(np.asarray([p.ids], np.int64), text=p) for p in prompts]

    def _prompt(self, item, k: int) -> Prompt:
        given = item if isinstance(item, dict) else {"prompt": item}
        unknown = sorted(set(given) - set(FIELDS))
        if unknown:
            raise BadRequest(f"instance {k}: unknown field(s) {unknown}; a prompt's: {', '.join(FIELDS)}")
        text = given.get("prompt")
        if not isinstance(text, str):
            shown = f'instance {k} must be a prompt (a string, or {{"prompt": "..."}}), not {item!r}'
            raise BadRequest(shown[:300])
        if not text.strip():
            raise BadRequest(f"instance {k}: the prompt is empty")
        ids = list(self.tok.tokenizer.encode(text).ids)
        if not ids:
            raise BadRequest(f"instance {k}: the prompt has no tokens")
        new = given.get("max_new_tokens", min(NEW_TOKENS, self.max_new_tokens))
        if isinstance(new, bool) or not isinstance(new, int) or new < 1:
            raise BadRequest(f"instance {k}: max_new_tokens must be a whole number >= 1, not {new!r}")
        score = given.get("score", "probability")
        if score not in SCORES:
            raise BadRequest(f"instance {k}: score must be one of {', '.join(SCORES)}, not {score!r}")
        targets, contrast = (self._text(given, name, k) for name in ("targets", "contrast"))
        steps = (
            new if targets is None else len(self.tok.tokenizer.encode(targets, add_special_tokens=False).ids)
        )
        self._bounded(k, len(ids), new, steps)
        return Prompt(text, ids, new, targets, steps, contrast, score)

    def _bounded(self, k: int, length: int, new: int, steps: int) -> None:
        """The tokens asked within ``--max-new-tokens`` and, where config.json says it, the model's
        positions (the prompt and every generated token but the last are fed)."""
        for count, what in ((new, f"max_new_tokens {new}"), (steps, f"targets has {steps} tokens")):
            if count > self.max_new_tokens:
                raise BadRequest(f"instance {k}: {what}; at most {self.max_new_tokens} (--max-new-tokens)")
        if self.positions is not None and length + max(new, steps) - 1 > self.positions:
            raise BadRequest(
                f"instance {k}: the prompt's {length} tokens and {max(new, steps)} new ones pass the "
                f"model's {self.positions} positions ({CONFIG_FILE})"
            )

    def _text(self, given: dict, name: str, k: int) -> str | None:
        """``targets`` or ``contrast``: absent, or a text of at least one token."""
        value = given.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not self.tok.tokenizer.encode(value, add_special_tokens=False).ids:
            raise BadRequest(f"instance {k}: {name} must be a text of one token or more, not {value!r}"[:300])
        return value

    # -- admission -------------------------------------------------------------------------------------
    def keyed(self, verb: str, key: tuple, work, items: list, params, limits: WorkLimits) -> tuple:
        """The request's run key, once its cost is admitted (refused over ``--max-runs``, 400, before
        any run): every ``:explain``'s starts with :data:`~.batching.LONG` and its work."""
        methods = list(params.methods)
        if verb == "explain":
            try:
                check_kinds(plan(methods, {}), "tokens")
            except InputError as exc:
                raise InvalidInput(str(exc)) from None
        costs = [self.cost(verb, item.text, methods) for item, _ in items]
        long = is_long(
            lambda one: costs[one[0]], [(k,) for k in range(len(costs))], limits, "max_new_tokens, instances"
        )
        return (LONG, work, *key) if verb == "explain" or long else key

    def cost(self, verb: str, p: Prompt, methods: list[str]) -> tuple[int, str]:
        """The model runs (instances) one prompt takes, and what asks for them (module docstring)."""
        if verb == "predict":
            return p.max_new_tokens, f"generation: {p.max_new_tokens} greedy forwards, on 1 sample"
        length = len(p.ids) + p.steps - 1
        greedy_runs = 0 if p.targets is not None else p.steps  # once: every method explains it
        runs = greedy_runs + sum(p.steps + self.ex.cost((p.steps, length), [m])[0] for m in methods)
        asked = self.ex.cost((1, length), methods)[1].rsplit(", on ", 1)[0] or ", ".join(methods)
        return runs, f"generation: {p.steps} tokens, each explained by {asked}, on 1 sample"

    # -- runs ------------------------------------------------------------------------------------------
    def run(self, ex, verb: str, items: list) -> list:
        """Each prompt's continuation (``:predict``), or its continuation and entries (``:explain``)."""
        if verb == "predict":
            prompts = [item.text for item, _ in items]
            return [(self._continuation(p, greedy(ex, p.ids, p.max_new_tokens, self.eos)),) for p in prompts]
        methods, answers = items[0][1].methods, []
        for item, _ in items:
            p: Prompt = item.text
            found = [self._explained(ex, p, methods[0], p.targets)]
            generated = found[0].ids[len(p.ids) :]  # one generation, explained by each method
            found += [self._explained(ex, p, method, generated) for method in methods[1:]]
            answers.append((self._continuation(p, generated), [_entry(e) for e in found]))
        return answers

    def _explained(self, ex, p: Prompt, method: str, targets):
        """One prompt's generation (``targets``: a text, ids, or None to generate) explained by one
        method, as the library explains it."""
        return explain_generation(
            ex, p.text, self.tok, p.max_new_tokens, method, score=p.score, targets=targets,
            contrast=p.contrast,
        )  # fmt: skip

    def _continuation(self, p: Prompt, ids: list[int]) -> dict:
        """A prompt's continuation: its text (special tokens dropped), its tokens and their ids."""
        names = self.tok.tokenizer.id_to_token
        text = self.tok.tokenizer.decode(ids)
        return {"prompt": p.text, "text": text, "tokens": [names(i) for i in ids], "ids": list(ids)}


def _entry(e) -> dict:
    """One method's attribution, as ``explain --prompt`` writes it in ``generation.json``, with the
    tokens and whether its sign means for or against the token."""
    return e.method_record() | {
        "prompt_tokens": e.prompt_tokens,
        "generated_tokens": e.generated_tokens,
        "ids": e.ids,
        "signed": e.signed,
    }
