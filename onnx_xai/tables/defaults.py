"""The methods a table model gets when none is named, and why (said by every front end, never
silently): a tree ensemble whose trees are read back to the input's columns, TreeSHAP (and, in an
audit, KernelSHAP beside it); a tree ensemble whose trees cannot be, KernelSHAP on its output; any
other model, KernelSHAP against background rows (and the gradient beside it in an audit), or the
gradient where there are none. A tree ensemble has no gradient, so it needs background rows.
"""

from __future__ import annotations

from ..support.errors import InputError


def table_methods(ex, background: bool, audit: bool = False) -> tuple[list[str], str]:
    """The methods for table model ``ex`` and why; ``background``: background rows were given."""
    trees = ex.record.score_kind == "margin"
    if trees and not background:
        raise InputError("a tree ensemble is explained against background rows: give --background ROWS")
    if ex.tree_model() is not None:
        return ["tree_shap"] + (["kernel_shap"] if audit else []), "the model is a tree ensemble"
    if trees:
        return ["kernel_shap"], "the model's trees cannot be read back to its columns"
    if background:
        chosen = ["kernel_shap"] + (["gradient"] if audit else [])
        return chosen, "background rows were given" if not audit else "the model is not a tree ensemble"
    return ["gradient"], "no background rows were given (--background for kernel_shap)"
