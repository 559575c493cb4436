"""The generation export table: each tiny random-init family (GPT-2, Llama-style) in each export form,
its generated tokens against torch's ``generate`` and each step's gradient at the word embeddings
against float64 torch autograd of that token's probability on its prefix (the largest difference
over the steps, relative to the step's largest value).

Forms: torch.onnx without a cache; torch.onnx always taking past key values (fed an empty cache);
Optimum's merged decoder (an ``If`` on ``use_cache_branch``, built as Optimum's ``merge_decoders``
writes it); for GPT-2, onnxruntime's transformer optimizer (``model_type="gpt2"``: fused attention,
skip layer norms and GELU, in ``com.microsoft`` ops).

    python tools/generation_forms_table.py [--new 4]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))

PROMPT = "the capital of france is"
CACHE = {"gpt2": (2, 16), "llama": (2, 8)}


def forms(family: str, folder: Path):
    """(form name, model file) of one family, the torch module kept before the exports."""
    from tests.generation.conftest import build
    from tests.generation.merged import _export, export_merged

    lm = build(folder, family)
    heads, size = CACHE[family]
    found = [("torch.onnx, no cache", folder / "model.onnx")]
    _export(copy.deepcopy(lm.net), 2, heads, size, True, folder / "with_past.onnx")
    found.append(("torch.onnx, past key values", folder / "with_past.onnx"))
    found.append(("merged decoder (If)", export_merged(copy.deepcopy(lm.net), 2, heads, size, folder)))
    if family == "gpt2":
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(str(folder / "model.onnx"), model_type="gpt2", num_heads=2, hidden_size=32)
        fused.save_model_to_file(str(folder / "fused.onnx"))
        ops = sorted({n.op_type for n in fused.model.graph.node if n.domain == "com.microsoft"})
        found.append((f"onnxruntime optimizer ({', '.join(ops) or 'nothing fused'})", folder / "fused.onnx"))
    return lm, found


def errors(lm, path: Path, new: int) -> tuple[bool, float]:
    """Whether the tokens are torch's, and the gradient's largest relative error over the steps."""
    import onnx_xai

    r = onnx_xai.Explainer(str(path)).explain_generation(
        PROMPT, tokenizer=str(path.parent), max_new_tokens=new, method="gradient"
    )
    prompt = len(r.prompt_tokens)
    with torch.no_grad():
        want = lm.net.generate(torch.as_tensor([r.ids[:prompt]]), max_new_tokens=new, do_sample=False)
    net = copy.deepcopy(lm.net).double()
    worst = 0.0
    for k, token in enumerate(r.ids[prompt:]):
        prefix = r.ids[: prompt + k]
        embeds = net.get_input_embeddings()(torch.as_tensor([prefix])).detach().requires_grad_(True)
        torch.softmax(net(inputs_embeds=embeds).logits[0, -1], -1)[token].backward()
        exact = embeds.grad[0].norm(dim=-1).numpy()
        worst = max(worst, float(np.abs(r.matrix[k, : len(prefix)] - exact).max() / exact.max()))
    return r.ids == want[0].tolist(), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new", type=int, default=4)
    args = parser.parse_args()
    print("| family | form | tokens = torch's generate | gradient: largest error against float64 |")
    print("|---|---|---|---|")
    for family in ("gpt2", "llama"):
        with tempfile.TemporaryDirectory() as tmp:
            lm, found = forms(family, Path(tmp))
            for name, path in found:
                same, worst = errors(lm, path, args.new)
                print(f"| {family} | {name} | {'yes' if same else 'NO'} | {worst:.1e} |", flush=True)


if __name__ == "__main__":
    main()
