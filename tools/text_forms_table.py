"""The export-form table of text encoders: family x exporter x optimized x quantized, each the error
of our gradient at the word embeddings against torch's float64 autograd of the same model.

Tiny random-init Hugging Face classifiers (DistilBERT, BERT, RoBERTa, XLM-R; hidden 32, 2 layers,
eager attention so that onnxruntime's transformer optimizer fuses them) exported by torch.onnx
(TorchScript, and dynamo where it exports), then as exported, optimized by onnxruntime's transformer
optimizer (``--model_type bert``: EmbedLayerNormalization, Attention, SkipLayerNormalization, the
Gelu family, whatever it fuses for the family), and quantized by ``quantize_dynamic`` (int8
weights). For each file: the fused ops found, the largest error of the gradient at the word
embeddings relative to the largest entry (quantized files: against the float model's autograd, so
the quantization's own effect), and, for the quantized files, Spearman's rho of integrated
gradients' per-token scores against the float file's (the tokens' order of importance).

    python tools/text_forms_table.py [--families distilbert bert roberta xlm-roberta]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
import onnx_xai  # noqa: E402

T = 12
FAMILIES = ("distilbert", "bert", "roberta", "xlm-roberta")


def model_of(family: str):
    """A tiny random-init classifier of ``family``, its input names, and its word embeddings."""
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=80, max_position_embeddings=40, num_labels=3, initializer_range=0.2)
    if family == "distilbert":
        config = tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)
        model = tf.DistilBertForSequenceClassification(config)
    else:
        kind = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig, "xlm-roberta": tf.XLMRobertaConfig}[
            family
        ]
        config = kind(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      pad_token_id=1, **common)  # fmt: skip
        model = {
            "bert": tf.BertForSequenceClassification,
            "roberta": tf.RobertaForSequenceClassification,
            "xlm-roberta": tf.XLMRobertaForSequenceClassification,
        }[family](config)
    config._attn_implementation = "eager"
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if family == "bert" else [])
    return model.eval(), names, model.base_model.embeddings.word_embeddings


def export(model, names: list[str], path: str, dynamo: bool) -> bool:
    examples = tuple(torch.ones(2, T, dtype=torch.int64) for _ in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if dynamo:
                dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}
                shapes = tuple(dims for _ in names)
                torch.onnx.export(
                    model, examples, path, dynamo=True, input_names=names, output_names=["logits"],
                    dynamic_shapes=shapes,
                )  # fmt: skip
            else:
                axes = {n: {0: "N", 1: "T"} for n in names}
                torch.onnx.export(
                    model, examples, path, dynamo=False, input_names=names, output_names=["logits"],
                    dynamic_axes=axes, opset_version=17,
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an exporter that cannot export this family: said in the table
            print(
                f"  ({'dynamo' if dynamo else 'torchscript'} export failed: {str(exc).splitlines()[0][:80]})"
            )
            return False
    return True


def forms(path: str, folder: Path, tag: str) -> dict[str, str]:
    """The file as exported, optimized and quantized."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    found = {"as exported": path}
    optimized, quantized = str(folder / f"{tag}_opt.onnx"), str(folder / f"{tag}_int8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimize_model(path, model_type="bert", num_heads=2, hidden_size=32).save_model_to_file(optimized)
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
    return found | {"optimized": optimized, "quantized": quantized}


def reference(model, embeddings, ids: np.ndarray, extra: dict, target: int) -> np.ndarray:
    model = model.double()
    found = {}

    def keep(module, inputs, out):
        out.retain_grad()
        found["e"] = out

    hook = embeddings.register_forward_hook(keep)
    logits = model(input_ids=torch.as_tensor(ids), **{k: torch.as_tensor(v) for k, v in extra.items()}).logits
    hook.remove()
    logits[:, target].sum().backward()
    model.float()
    return found["e"].grad.numpy()


def row(family: str, exporter: str, form: str, path: str, want: np.ndarray, ids, extra, ig_float) -> str:
    from scipy.stats import spearmanr

    fused = sorted({n.op_type for n in onnx.load(path).graph.node if n.domain == "com.microsoft"})
    ex = onnx_xai.Explainer(path)
    got = ex.explain(ids, "gradient", 1, extra_inputs=extra).raw
    error = np.abs(got - want).max() / np.abs(want).max()
    rho = ""
    if ig_float is not None:
        base = np.where(extra["attention_mask"] == 0, ids, 1)
        ig = ex.explain(
            ids, "integrated_gradients", 1, extra_inputs=extra, baseline=base, n_steps=16
        ).feature_scores
        rho = f"{min(spearmanr(ig[i], ig_float[i]).statistic for i in range(len(ids))):.3f}"
    return f"| {family} | {exporter} | {form} | {', '.join(fused) or '-'} | {error:.1e} | {rho} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args()
    print(
        "| family | exporter | form | fused ops | gradient error vs float64 | IG token order rho vs float |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for family in args.families:
            model, names, embeddings = model_of(family)
            ids = np.random.default_rng(1).integers(5, 80, (2, T))
            ids[:, 0] = 0
            extra = {"attention_mask": np.ones_like(ids)} | (
                {"token_type_ids": np.zeros_like(ids)} if len(names) > 2 else {}
            )
            extra["attention_mask"][1, 9:] = 0
            want = reference(model, embeddings, ids, extra, 1)
            for exporter in ("torchscript", "dynamo"):
                tag = f"{family}_{exporter}"
                path = str(folder / f"{tag}.onnx")
                if not export(model, names, path, exporter == "dynamo"):
                    continue
                files = forms(path, folder, tag) if exporter == "torchscript" else {"as exported": path}
                base = np.where(extra["attention_mask"] == 0, ids, 1)
                options = dict(extra_inputs=extra, baseline=base, n_steps=16)
                ig_float = (
                    onnx_xai.Explainer(path).explain(ids, "integrated_gradients", 1, **options).feature_scores
                )
                for form, file in files.items():
                    print(
                        row(
                            family,
                            exporter,
                            form,
                            file,
                            want,
                            ids,
                            extra,
                            ig_float if form == "quantized" else None,
                        )
                    )


if __name__ == "__main__":
    main()
