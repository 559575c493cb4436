"""The sanity checks: cascading model randomization and the random-target check.

Both compare what a method gives per sample (:class:`Likeness`): a photo's maps by Spearman's rho and
SSIM (:mod:`.similarity`), a table row's attributions by Spearman's rho of their magnitudes (the
features' ranking the curves use) and of their signed values. Cascading randomization
(:mod:`.randomization`, :mod:`.learned` for tables) explains the same samples for the same classes on
copies of the model whose top layers are re-drawn, one more group of layers each step; the
random-target check explains each sample for a class drawn at random among the others. A method
passes when the similarity falls: maps that survive the loss of the weights, or that do not change
with the class, show the input, not the model's reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..runtime.methods import get
from ..support.errors import XaiError
from .randomization import groups, parameter_layers, randomized
from .similarity import spearman, ssim


def compare(original: np.ndarray, other: np.ndarray | None) -> dict:
    """Per photo Spearman and SSIM of two ``(N, H, W)`` map stacks (None where ``other`` is missing)."""
    if other is None:
        return {"spearman": [None] * len(original), "ssim": [None] * len(original)}
    return {
        "spearman": [spearman(a, b) for a, b in zip(original, other)],
        "ssim": [ssim(a, b) for a, b in zip(original, other)],
    }


def compare_attributions(original: np.ndarray, other: np.ndarray | None) -> dict:
    """Per row Spearman of two ``(N, F)`` attribution stacks: of their magnitudes, and signed."""
    if other is None:
        return {"spearman": [None] * len(original), "spearman_signed": [None] * len(original)}
    return {
        "spearman": [spearman(np.abs(a), np.abs(b)) for a, b in zip(original, other)],
        "spearman_signed": [spearman(a, b) for a, b in zip(original, other)],
    }


@dataclass(frozen=True)
class Likeness:
    """What the checks compare: a result's ``field`` per sample, and the measures of two stacks."""

    field: str  # an Explanation's attribute: "maps" (photos) or "raw" (table rows)
    compare: Callable[[np.ndarray, np.ndarray | None], dict]


MAPS = Likeness("maps", compare)
ATTRIBUTIONS = Likeness("raw", compare_attributions)


def cascading_randomization(
    model,
    make_explainer: Callable,
    x: np.ndarray,
    methods: Sequence[str],
    targets: np.ndarray,
    original: dict,
    steps: int,
    noise_seed: int,
    options: dict,
    on_step: Callable[[], None] | None = None,
    likeness: Likeness = MAPS,
    layers: list | None = None,
    randomize: Callable = randomized,
) -> list:
    """One entry per step (step 0: the model itself): the layers randomized so far, the lowest of
    them, and per method the per-sample measures of ``likeness`` with ``original`` (``{method: (N,
    ...)}``). ``layers`` (default: :func:`.randomization.parameter_layers`) are re-drawn top first by
    ``randomize(model, keys, noise_seed)``. A step whose results are not finite (a re-drawn model can
    overflow) records None for them."""
    layers = parameter_layers(model) if layers is None else layers
    entries = [
        {
            "step": 0,
            "layers": 0,
            "down_to": None,
            "methods": {m: likeness.compare(original[m], original[m]) for m in methods},
        }
    ]
    chosen, count = set(), 0
    for k, group in enumerate(groups(layers, steps), start=1):
        chosen.update(t for layer in group for t in layer.tensors)
        count += len(group)
        explainer = make_explainer(randomize(model, chosen, noise_seed + k))
        found = _results(explainer, x, methods, targets, options, likeness.field)
        entries.append(
            {
                "step": k,
                "layers": count,
                "down_to": f"{group[-1].node} ({group[-1].op_type})",
                "methods": {m: likeness.compare(original[m], found.get(m)) for m in methods},
            }
        )
        if on_step:
            on_step()
    return entries


def random_targets(targets: np.ndarray, classes: int, noise_seed: int) -> np.ndarray:
    """For each class, another drawn uniformly from the rest (seeded)."""
    drawn = np.random.default_rng(noise_seed).integers(0, classes - 1, size=len(targets))
    return np.where(drawn >= targets, drawn + 1, drawn).astype(np.int64)


def random_target_check(
    explainer,
    x: np.ndarray,
    methods: Sequence[str],
    targets: np.ndarray,
    original: dict,
    classes: int,
    noise_seed: int,
    options: dict,
    likeness: Likeness = MAPS,
) -> tuple[np.ndarray, dict]:
    """The classes drawn, and per method the per-sample likeness of their results with ``original``."""
    others = random_targets(targets, classes, noise_seed)
    found = _results(explainer, x, methods, others, options, likeness.field)
    return others, {m: likeness.compare(original[m], found.get(m)) for m in methods}


def _results(
    explainer, x: np.ndarray, methods: Sequence[str], targets: np.ndarray, options: dict, field: str
) -> dict:
    """Each method's ``field`` for ``x``; a method that fails (overflows) is left out."""
    try:  # one run for all the methods that share a graph
        found = explainer.explain_many(x, methods, objective=targets, **options)
        return {m: getattr(e, field) for m, e in found.items()}
    except XaiError:
        pass
    out = {}
    for method in methods:  # one at a time: one overflowing method must not hide the others
        try:
            taken = {k: v for k, v in options.items() if k in get(method).Options.__dataclass_fields__}
            out[method] = getattr(explainer.explain(x, method, objective=targets, **taken), field)
        except XaiError:
            pass
    return out
