"""The sanity checks: cascading model randomization and the random-target check.

Both compare maps with :mod:`.similarity` (Spearman's rho and SSIM, per photo). Cascading
randomization (:mod:`.randomization`) explains the same photos for the same classes on copies of the
model whose top layers are re-drawn, one more group of layers each step; the random-target check
explains each photo for a class drawn at random among the others. A method passes when the
similarity falls: maps that survive the loss of the weights, or that do not change with the class,
show the image, not the model's reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import XaiError
from ..runtime.methods import get
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


def cascading_randomization(
    model,
    make_explainer: Callable,
    x: np.ndarray,
    methods: Sequence[str],
    targets: np.ndarray,
    original: dict,
    steps: int,
    seed: int,
    options: dict,
    on_step: Callable[[], None] | None = None,
) -> list:
    """One entry per step (step 0: the model itself): the layers randomized so far, the lowest of
    them, and per method the per-photo Spearman and SSIM with ``original`` (``{method: (N, H, W)}``).
    A step whose maps are not finite (a re-drawn model can overflow) records None for them."""
    layers = parameter_layers(model)
    entries = [
        {
            "step": 0,
            "layers": 0,
            "down_to": None,
            "methods": {m: compare(original[m], original[m]) for m in methods},
        }
    ]
    chosen, count = set(), 0
    for k, group in enumerate(groups(layers, steps), start=1):
        chosen.update(t for layer in group for t in layer.tensors)
        count += len(group)
        maps = _maps(make_explainer(randomized(model, chosen, seed + k)), x, methods, targets, options)
        entries.append(
            {
                "step": k,
                "layers": count,
                "down_to": f"{group[-1].node} ({group[-1].op_type})",
                "methods": {m: compare(original[m], maps.get(m)) for m in methods},
            }
        )
        if on_step:
            on_step()
    return entries


def random_targets(targets: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """For each class, another drawn uniformly from the rest (seeded)."""
    drawn = np.random.default_rng(seed).integers(0, classes - 1, size=len(targets))
    return np.where(drawn >= targets, drawn + 1, drawn).astype(np.int64)


def random_target_check(
    explainer,
    x: np.ndarray,
    methods: Sequence[str],
    targets: np.ndarray,
    original: dict,
    classes: int,
    seed: int,
    options: dict,
) -> tuple[np.ndarray, dict]:
    """The classes drawn, and per method the per-photo similarity of their maps with ``original``."""
    others = random_targets(targets, classes, seed)
    maps = _maps(explainer, x, methods, others, options)
    return others, {m: compare(original[m], maps.get(m)) for m in methods}


def _maps(explainer, x: np.ndarray, methods: Sequence[str], targets: np.ndarray, options: dict) -> dict:
    try:  # one run for all the methods that share a graph
        return {m: e.maps for m, e in explainer.explain_many(x, methods, target=targets, **options).items()}
    except XaiError:
        pass
    out = {}
    for method in methods:  # one at a time: one overflowing method must not hide the others
        try:
            taken = {k: v for k, v in options.items() if k in get(method).Options.__dataclass_fields__}
            out[method] = explainer.explain(x, method, target=targets, **taken).maps
        except XaiError:
            pass
    return out
