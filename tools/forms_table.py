"""The README's "Supported models" numbers: per export form of the test suite, how far the rewritten
graph's outputs are from float64 autograd, beside torch's own error at the model's precision.

Runs the forms of ``tests/forms`` (channels-last, dynamic size, ViT, uint8, float16, ...) on
onnxruntime at its default optimization level, 3 inputs each (at two sizes for dynamic-size forms),
and prints a Markdown table of relative L2 errors: the input gradient (ours, and torch float32 or
float16), the target activation's gradient, Grad-CAM and CAM. The QDQ form is compared with its
float original instead (Pearson correlation per image, the lowest of 8).

    python tools/forms_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import onnx_xai  # noqa: E402
from tests.forms.exports import FORMS, example_input, export  # noqa: E402
from tests.forms.reference import cam, rel  # noqa: E402
from tests.forms.test_forms import reference_pair, run, sizes  # noqa: E402
from tests.forms.test_quantized import correlations  # noqa: E402


def errors(name: str) -> list[float]:
    """Worst over sizes of: ours, torch's own, activation gradient, Grad-CAM, CAM (NaN: no CAM)."""
    form, net = FORMS[name], FORMS[name].build()
    model = onnx_xai.augment(export(name))
    worst = np.zeros(5)
    for size in sizes(form):
        x = example_input(net, 3, seed=size, size=size)
        x = x.astype(np.float16) if form.dtype == "float16" else x
        got = run(model, x, [-1, 1, 0])
        exact, own, _ = reference_pair(name, x, got["xai_target_used"])
        cam_error = (
            rel(got["xai_cam"], cam(net, exact, got["xai_target_used"])) if "xai_cam" in got else np.nan
        )
        row = [
            rel(got["xai_input_grad"], exact["input_grad"]),
            rel(own["input_grad"], exact["input_grad"]),
            rel(got["xai_activation_grad"], exact["activation_grad"]),
            rel(got["xai_gradcam"], exact["gradcam"]),
            cam_error,
        ]
        worst = np.fmax(worst, row)
    if "xai_cam" not in got:
        worst[4] = np.nan
    return list(worst)


def quantized_row() -> str:
    quantized, original = onnx_xai.Explainer(export("qdq_int8")), onnx_xai.Explainer(export("regnety"))
    x = example_input(FORMS["regnety"].build(), 8, seed=21)
    targets = original.explain(x, "gradcam").targets
    methods = ["gradient", "gradcam", "cam"]
    q, f = (
        quantized.explain_many(x, methods, objective=targets),
        original.explain_many(x, methods, objective=targets),
    )
    low = {m: correlations(q[m].raw, f[m].raw).min() for m in methods}
    return (
        f"| qdq_int8 (vs its float original) | correlation {low['gradient']:.3f} | - | - | "
        f"correlation {low['gradcam']:.3f} | correlation {low['cam']:.3f} |"
    )


def main() -> None:
    print("| form | input gradient | torch's own | activation gradient | Grad-CAM | CAM |")
    print("|---|---|---|---|---|---|")
    for name, form in FORMS.items():
        if form.dtype == "qdq":
            continue
        ours, own, activation, gradcam, cam_error = errors(name)
        cam_text = "no CAM head" if np.isnan(cam_error) else f"{cam_error:.1e}"
        print(f"| {name} | {ours:.1e} | {own:.1e} | {activation:.1e} | {gradcam:.1e} | {cam_text} |")
    print(quantized_row())


if __name__ == "__main__":
    main()
