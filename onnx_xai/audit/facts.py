"""What every audit says of the model it audited, in its records and its report: the file and its
hash, the explained input and output, the classes, the target layers, the score and what the curves
read, and where it ran; each kind of input adds its own (a table's features and background rows, a
text encoder's tokenizer)."""

from __future__ import annotations

from pathlib import Path

from ..support.files import sha256_of


def model_facts(ex, model_path, curve: str, **more) -> dict:
    """The facts of ``ex`` (an Explainer of ``model_path``); ``curve``: what the audit's curves read;
    ``more``: the facts its kind of input adds."""
    record = ex.record
    return {
        "file": str(model_path),
        "name": Path(model_path).name,
        "sha256": sha256_of(model_path),
        "input": record.input,
        "input_shape": [str(d) for d in ex.input_shape],
        "input_type": str(ex.input_dtype),
        "layout": ex.layout,
        **more,
        "output": record.output,
        "output_shape": [str(d) for d in ex.output_shape],
        "classes": ex.num_classes,
        "target_layers": list(ex.target_layers),
        "score": record.score_kind,
        "curve": curve,
        "backend": ", ".join(ex.providers),
        **({"backend_choices": ex.backend_choices} if ex.backend == "auto" else {}),
    }
