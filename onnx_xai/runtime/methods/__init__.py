"""The saliency methods, one class each, in one registry (see :mod:`.base` for the contract).

Importing this package registers every method; :data:`METHOD_NAMES` lists them in the order of the
method table of the Python API page, which :func:`method_table` generates.
"""

from collections.abc import Sequence

from ...errors import InputError

# registration order is the order of METHOD_NAMES, the CLI's choices and the method table
# isort: off
from . import gradients, relevance, smooth, cams, feature_cams, mosaics, perturbation, surrogates  # noqa: F401

# isort: on
from .base import REGISTRY, BatchedOptions, Context, Method, Options, chunk_size, get

BATCHING = tuple(BatchedOptions.__dataclass_fields__)  # batch_size, max_batch_bytes

METHOD_NAMES = tuple(REGISTRY)


def method_table() -> str:
    """The README's method table in Markdown: name, what it computes, options, reference."""
    rows = ["| method | attribution | options | matches |", "|---|---|---|---|"]
    for name, method in REGISTRY.items():
        names = sorted(method.Options.__dataclass_fields__, key=lambda f: f in BATCHING)  # its own first
        options = ", ".join(f"`{f}`" for f in names) or "-"
        family = (
            "map on the target layer"
            if method.family == "cam"
            else ("signed, input-shaped" if method.signed else "input-shaped")
        )
        rows.append(f"| `{name}` | {method.summary}; {family} | {options} | {method.reference or '-'} |")
    return "\n".join(rows)


def plan(methods: Sequence[str], options: dict) -> list[tuple[Method, Options]]:
    """The methods named, with their options parsed, each option given to every method that takes it
    (an option no method takes is an error)."""
    if isinstance(methods, str) or not methods or not all(isinstance(m, str) for m in methods):
        raise InputError(f"methods must be a non-empty list of method names, not {methods!r}")
    chosen = [get(name) for name in dict.fromkeys(methods)]
    taken = {name for m in chosen for name in m.Options.__dataclass_fields__}
    unknown = sorted(set(options) - taken)
    if unknown:
        names = ", ".join(m.name for m in chosen)
        raise InputError(
            f"unknown option(s) {unknown} for {names}"
            if len(chosen) > 1
            else f"method {names!r} takes no options (got {unknown})"
            if not taken
            else f"unknown {names} option(s) {unknown}; valid: {', '.join(sorted(taken))}"
        )
    return [
        (
            m,
            m.Options.parse(
                m.name, {k: v for k, v in options.items() if k in m.Options.__dataclass_fields__}
            ),
        )
        for m in chosen
    ]


def options_for(methods, noise_seed: int = 0, n_steps: int | None = None, fuse: str = "mean") -> dict:
    """The options one ``explain_many`` call of ``methods`` takes from a command's flags: the noise
    seed of the sampling methods (SmoothGrad, RISE), integrated gradients' points, how the CAM family
    fuses several layers."""
    options: dict = {}
    if any("noise_seed" in get(m).Options.__dataclass_fields__ for m in methods):
        options["noise_seed"] = noise_seed
    if n_steps and "integrated_gradients" in methods:
        options["n_steps"] = n_steps
    if any("fuse" in get(m).Options.__dataclass_fields__ for m in methods):
        options["fuse"] = fuse
    return options


__all__ = [
    "METHOD_NAMES",
    "REGISTRY",
    "Context",
    "Method",
    "Options",
    "chunk_size",
    "get",
    "method_table",
    "options_for",
    "plan",
]
