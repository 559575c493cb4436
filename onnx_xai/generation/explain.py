"""Which tokens made a causal language model write what it wrote: :func:`explain_generation`.

The prompt is tokenized as its tokenizer does it (its post-processor adds a BOS token or not), the
continuation generated greedily (:mod:`.decode`) or given (``targets``, a text tokenized without
special tokens), and each generated token ``k`` is attributed to the tokens before it: the prompt and
the ``k`` tokens generated before it. All steps are one batch: ``K`` copies of the sequence without
its last token, copy ``k`` scoring the token generated at step ``k`` at the position that predicts it
(:mod:`.scores`); a causal model's later positions do not reach that score, so their attributions are
exactly zero, and each row of ``matrix [K, P + K - 1]`` holds the step's prefix, NaN after it.

Scores per token are the methods' usual ones on tokens (the L2 norm over the embedding of the
gradient, the sum over it of a signed attribution, the value itself for occlusion and KernelSHAP). A
removed token (occlusion, KernelSHAP, LIME) takes the mask token's id, else the pad token's, else the
unknown token's, in that order of availability (``replaced_by`` says which); only the step's prefix is
perturbed. The paths of integrated gradients and DeepLIFT start from zero embeddings, as Captum's
layer methods do without a baseline.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..graph.branches import without_cache_branch
from ..objectives.objective import Objective
from ..runtime.methods import get, plan
from ..support.errors import InputError
from ..text.tokenizer import TextTokenizer, prompt_feeds
from .cache import cache_of, plain_inputs
from .decode import greedy
from .scores import STEP, contrast_seeds, step_model, step_rows

REPLACEMENTS = ("[MASK]", "<mask>", "[PAD]", "<pad>", "<|pad|>", "[UNK]", "<unk>", "<|endoftext|>")
PERTURBING = ("occlusion", "kernel_shap", "lime")
_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class GenerationExplanation:
    """One method's attribution of a generation, step by step (module docstring)."""

    prompt: str
    method: str
    score: str  # probability, logit or log_probability (of the token, or against ``contrast``)
    prompt_tokens: list[str]
    generated_tokens: list[str]
    ids: list[int]  # the prompt's and the generated tokens' ids
    matrix: np.ndarray  # [K, P + K - 1] float64, NaN after each step's prefix
    step_scores: np.ndarray  # [K] each step's score
    replaced_by: str | None = None  # the token a removed token became
    contrast: list[str] | None = None  # per step, the token scored against, where one was given
    signed: bool = True  # whether a value's sign means for or against the token

    def method_record(self) -> dict:
        """This method's part of a JSON record (``generation.json``, the server's answer): the
        method, the score, the contrast tokens, the replacement, each step's score and the matrix,
        ``None`` after each step's prefix."""
        return {
            "method": self.method,
            "score": self.score,
            "contrast": self.contrast,
            "replaced_by": self.replaced_by,
            "step_scores": [float(v) for v in self.step_scores],
            "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in self.matrix],
        }

    @property
    def tokens(self) -> list[str]:
        """The columns' tokens: the prompt's, then every generated token but the last."""
        return self.prompt_tokens + self.generated_tokens[:-1]


def explain_generation(
    ex, prompt: str, tokenizer=None, max_new_tokens: int = 10, method: str = "input_x_gradient",
    score: str = "probability", targets: str | list[int] | None = None, contrast: str | None = None,
    **options,
) -> GenerationExplanation:  # fmt: skip
    """Generate from ``prompt`` (or take ``targets``: a text, or token ids such as another method's
    ``ids`` after the prompt) and attribute each generated token to the tokens before it with
    ``method`` (module docstring); ``contrast``: a text whose tokens, one per step (the last
    repeated), each step's token is scored against."""
    tok = TextTokenizer.load(tokenizer if tokenizer is not None else ex.source_path())
    if ex.kind != "tokens":
        raise InputError(f"explain_generation explains language models; this model's input is a {ex.kind}")
    prompt_ids = list(tok.tokenizer.encode(prompt).ids)
    generated = _continuation(ex, tok, prompt_ids, max_new_tokens, targets)
    matrix, steps, replaced, contrasts = _attribute(
        ex, tok, prompt_ids, generated, method, score, contrast, options
    )
    names = tok.tokenizer.id_to_token
    (chosen, opts), *_ = plan([method], options)
    return GenerationExplanation(
        prompt, method, score, [names(i) for i in prompt_ids], [names(i) for i in generated],
        prompt_ids + generated, matrix, steps, replaced, contrasts, signed=chosen.signed_for(opts),
    )  # fmt: skip


def _continuation(ex, tok: TextTokenizer, prompt_ids, max_new_tokens: int, targets) -> list[int]:
    if targets is None:
        return greedy(ex, prompt_ids, max_new_tokens, eos_id(tok))
    if isinstance(targets, str):
        given = list(tok.tokenizer.encode(targets, add_special_tokens=False).ids)
    else:  # token ids: another method's generation, explained again
        given = [int(i) for i in targets]
    if not given:
        raise InputError("targets has no tokens")
    return given


def eos_id(tok: TextTokenizer) -> int | None:
    """The end-of-sequence token's id: the tokenizer config's ``eos_token``, else ``</s>`` or
    ``<|endoftext|>``."""
    for name in (getattr(tok, "eos_token", None), "</s>", "<|endoftext|>", "<|im_end|>"):
        found = tok.tokenizer.token_to_id(name) if isinstance(name, str) else None
        if found is not None:
            return int(found)
    return None


def _attribute(ex, tok, prompt_ids, generated, method, score, contrast, options) -> tuple:
    """The matrix, the steps' scores, the replacement token and the contrast tokens."""
    sequence = np.asarray(prompt_ids + generated[:-1], np.int64)
    steps, prompt_length = len(generated), len(prompt_ids)
    ids = np.tile(sequence, (steps, 1))
    positions = prompt_length - 1 + np.arange(steps)
    scorer = _scorer(ex, score)
    inputs = {name: spec for name, spec in scorer.inputs.items() if name != STEP}
    feeds = prompt_feeds(plain_inputs(inputs), ex.input_name, ids)
    cache = cache_of(inputs, scorer.outputs)  # an export that always takes one: empty
    feeds |= (cache.empty(steps) if cache else {}) | {STEP: step_rows(steps, ids.shape[1], positions)}
    objective, contrasts = _objective(scorer, tok, generated, contrast)
    replaced = None
    if method in PERTURBING and "baseline" not in options:
        replaced, options["baseline"] = _removed_tokens(tok, ids, positions)
    r = scorer.explain(ids, method, objective, extra_inputs=feeds, **options)
    values = np.asarray(r.feature_scores if r.feature_scores is not None else r.raw, np.float64)
    matrix = np.full((steps, ids.shape[1]), np.nan)
    for k, position in enumerate(positions):
        matrix[k, : position + 1] = values[k, : position + 1]
    return matrix, np.asarray(r.scores, np.float64), replaced, contrasts


def _scorer(ex, score: str):
    """An Explainer (of ``ex``'s class) of ``ex``'s model with one step's ``score`` as its output, made
    once."""
    made = _SCORERS.setdefault(ex, {})
    if score not in made:
        source = ex.source_model()
        without_cache_branch(source)  # a merged decoder: its no-cache branch
        model, output = step_model(source, ex.output_name, score)
        made[score] = type(ex)(
            model, input_name=ex.input_name, output_name=output, objective="probability",
            providers=ex.providers, backend=ex.backend,
        )  # fmt: skip
    return made[score]


def _objective(scorer, tok: TextTokenizer, generated: list[int], contrast: str | None):
    if contrast is None:
        return Objective.of_class(np.asarray(generated, np.int64)), None
    others = list(tok.tokenizer.encode(contrast, add_special_tokens=False).ids)
    if not others:
        raise InputError("contrast has no tokens")
    others = (others + others[-1:] * len(generated))[: len(generated)]
    vocabulary = scorer.output_shape[-1]
    if not isinstance(vocabulary, int):
        raise InputError("the model does not declare its vocabulary's size: contrast needs it")
    names = tok.tokenizer.id_to_token
    return Objective.weighted(contrast_seeds(vocabulary, generated, others)), [names(i) for i in others]


def _removed_tokens(tok: TextTokenizer, ids: np.ndarray, positions) -> tuple[str, np.ndarray]:
    """What a removed token becomes in each copy's prefix (the tokens after it are kept, no features)."""
    replacement = next((t for t in REPLACEMENTS if tok.tokenizer.token_to_id(t) is not None), None)
    if replacement is None:
        raise InputError("the tokenizer has no mask, pad or unknown token: give a baseline (a token id)")
    baseline = ids.copy()
    for k, position in enumerate(positions):
        baseline[k, : position + 1] = tok.tokenizer.token_to_id(replacement)
    return replacement, baseline


def takes_baseline(method: str) -> bool:
    return "baseline" in get(method).Options.__dataclass_fields__
