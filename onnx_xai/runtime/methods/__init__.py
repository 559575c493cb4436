"""The saliency methods, one class each, in one registry (see :mod:`.base` for the contract).

Importing this package registers every method; :data:`METHOD_NAMES` lists them in the order of the
method table of the Python API page, which :func:`method_table` generates.
"""

from collections.abc import Sequence

from ...support.errors import InputError

# registration order is the order of METHOD_NAMES, the CLI's choices and the method table
# isort: off
from . import gradients, deeplift, relevance, smooth, cams, feature_cams, mosaics  # noqa: F401
from . import perturbation, surrogates, trees  # noqa: F401

# isort: on
from .base import KINDS, REGISTRY, BatchedOptions, Context, Facts, Method, Options, chunk_size, get

BATCHING = tuple(BatchedOptions.__dataclass_fields__)  # batch_size, max_batch_bytes

METHOD_NAMES = tuple(REGISTRY)


def method_table(with_options: bool = True) -> str:
    """The method table in Markdown: name, what it computes, its options (not in the README's
    shorter table), reference, tested agreement (relative L2 at most, and with what)."""
    columns = (
        ["method", "attribution", "inputs"] + (["options"] if with_options else []) + ["matches", "agreement"]
    )
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, method in REGISTRY.items():
        names = sorted(method.Options.__dataclass_fields__, key=lambda f: f in BATCHING)  # its own first
        shaped = "per column" if tuple(method.kinds) == ("table",) else "input-shaped"
        family = (
            "map on the target layer"
            if method.family == "cam"
            else (f"signed, {shaped}" if method.signed else shaped)
        )
        inputs = (
            "any"
            if set(method.kinds) == set(KINDS)
            else ", ".join(k if k.endswith("s") else k + "s" for k in method.kinds)
        )
        cells = [f"`{name}`", f"{method.summary}; {family}", inputs]
        cells += [", ".join(f"`{f}`" for f in names) or "-"] if with_options else []
        cells += [method.reference or "-", method.agreement or "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def readme_method_table() -> str:
    """:func:`method_table` without the options (the README's)."""
    return method_table(with_options=False)


def anchor_table() -> str:
    """The image attribution methods of Captum, pytorch-grad-cam and OpenVINO-XAI, each with the
    method here that computes it, or why there is none yet (:data:`.anchors.ANCHORS`)."""
    from .anchors import ANCHORS

    rows = ["| library | method | here |", "|---|---|---|"]
    for library, method, here in ANCHORS:
        if here in REGISTRY:
            here = f"`{here}`"
        rows.append(f"| {library} | {method} | {here} |")
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


def plan_cost(plan: Sequence[tuple[Method, Options]], facts: Facts) -> tuple[int, str]:
    """The model runs (instances) the planned methods add to their shared run for a batch, and what
    asks for them, in one line (``smoothgrad: 50 noisy copies of gradient, on 2 samples``)."""
    costs = [(method.name, *method.cost(opts, facts)) for method, opts in plan]
    asked = [f"{name}: {why}" if why else name for name, runs, why in costs if runs]
    samples = f"{facts.batch} sample{'s' if facts.batch != 1 else ''}"
    return sum(runs for _, runs, _ in costs), f"{'; '.join(asked)}, on {samples}"


def options_for(methods, noise_seed: int = 0, n_steps: int | None = None, fuse: str = "mean") -> dict:
    """The options one ``explain_many`` call of ``methods`` takes from a command's flags, each given
    where a method's options have it: the noise seed of the sampling methods (SmoothGrad, RISE), the
    points of an integral (integrated gradients), how the CAM family fuses several layers."""
    flags = {"noise_seed": noise_seed, "n_steps": n_steps, "fuse": fuse}
    taken = {name for m in methods for name in get(m).Options.__dataclass_fields__}
    return {name: value for name, value in flags.items() if name in taken and value is not None}


__all__ = [
    "METHOD_NAMES",
    "REGISTRY",
    "Context",
    "Facts",
    "Method",
    "Options",
    "chunk_size",
    "get",
    "method_table",
    "anchor_table",
    "readme_method_table",
    "options_for",
    "plan",
    "plan_cost",
]
