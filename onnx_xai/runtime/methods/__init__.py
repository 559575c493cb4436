"""The saliency methods, one class each, in one registry (see :mod:`.base` for the contract).

Importing this package registers every method; :data:`METHOD_NAMES` lists them in the order of the
README's method table, which :func:`method_table` generates.
"""
from . import gradients, smooth, cams  # noqa: F401  (registration, in the README table's order)
from .base import REGISTRY, Context, Method, Options, chunk_size, get

METHOD_NAMES = tuple(REGISTRY)


def method_table() -> str:
    """The README's method table in Markdown: name, what it computes, options, reference."""
    rows = ["| method | attribution | options | matches |", "|---|---|---|---|"]
    for name, method in REGISTRY.items():
        options = ", ".join(f"`{f}`" for f in method.Options.__dataclass_fields__) or "-"
        family = "map on the target layer" if method.family == "cam" else (
            "signed, input-shaped" if method.signed else "input-shaped")
        rows.append(f"| `{name}` | {method.summary}; {family} | {options} | {method.reference or '-'} |")
    return "\n".join(rows)


__all__ = ["METHOD_NAMES", "REGISTRY", "Context", "Method", "Options", "chunk_size", "get", "method_table"]
