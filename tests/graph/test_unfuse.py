"""onnxruntime's transformer optimizer fuses a BERT's embeddings into ``EmbedLayerNormalization``; the
analysis writes it back as standard ops so the ids are explained at their word embedding. On a tiny
random-init BERT (eager attention, the pattern the optimizer fuses) optimized with that fusion (and
the attention and layer normalization it fuses only beside it), and with every fusion the optimizer
makes (SkipLayerNormalization and BiasGelu too: the graph as served): the fused ops are there, the model's
output through the unfused copy equals onnxruntime's fused kernel's, and the gradient at the word
embedding equals the unoptimized model's, which equals float64 autograd; the explained point is the
word lookup, the mask index the mask's row sums."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnx_xai
from onnx_xai.graph.unfuse import unfuse_embeddings

transformers = pytest.importorskip("transformers")
T = 8


@pytest.fixture(scope="module", params=[("bert", "embeddings"), ("bert", "served"), ("distilbert", "served")])
def models(request, tmp_path_factory):
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    family, fusions = request.param
    folder = tmp_path_factory.mktemp("fused")
    torch.manual_seed(4)
    model, names = encoder(family)
    plain = str(folder / "bert.onnx")
    torch.onnx.export(
        model, tuple(torch.ones(1, T, dtype=torch.int64) for _ in names), plain, dynamo=False,
        input_names=names, output_names=["logits"], dynamic_axes={n: {0: "N", 1: "T"} for n in names},
        opset_version=17,  # the optimizer's fusions match the patterns of this opset (Gelu as Erf)
    )  # fmt: skip
    options = FusionOptions("bert")  # "served": every fusion the optimizer makes for BERT
    for name in vars(options) if fusions == "embeddings" else ():
        if name.startswith("enable_") and name not in (
            "enable_embed_layer_norm",
            "enable_layer_norm",
            "enable_attention",
            "enable_shape_inference",
        ):  # the optimizer fuses the embeddings only beside the attention it fuses
            setattr(options, name, False)
    fused = str(folder / "bert_fused.onnx")
    optimize_model(
        plain, model_type="bert", num_heads=2, hidden_size=32, optimization_options=options
    ).save_model_to_file(fused)
    fused_ops = {n.op_type for n in onnx.load(fused).graph.node}
    served = "SkipLayerNormalization" in fused_ops and fused_ops & {"Gelu", "BiasGelu", "FastGelu"}
    assert fusions == "embeddings" or served, fused_ops
    return plain, fused, model.double(), names


def encoder(family: str) -> tuple[torch.nn.Module, list[str]]:
    """A tiny random-init BERT (with token types) or DistilBERT (without), eager attention."""
    common = dict(vocab_size=50, max_position_embeddings=32, num_labels=2, initializer_range=0.3)
    if family == "distilbert":  # no token types; the optimizer leaves its unfused word lookup for a Shape
        config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)
        config._attn_implementation = "eager"
        return transformers.DistilBertForSequenceClassification(config).eval(), [
            "input_ids",
            "attention_mask",
        ]
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        attn_implementation="eager", **common,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    return model, ["input_ids", "attention_mask", "token_type_ids"]


def feeds(names: list[str]) -> tuple[np.ndarray, dict]:
    ids = np.random.default_rng(2).integers(5, 50, (2, T))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    types = {"token_type_ids": (np.arange(T) >= 4).astype(np.int64)[None].repeat(2, 0)}
    return ids, {"attention_mask": mask} | (types if "token_type_ids" in names else {})


def test_the_fused_embeddings_are_explained_at_the_word_lookup(models):
    plain, fused, model, names = models
    ops = [n.op_type for n in onnx.load(fused).graph.node]
    assert {"EmbedLayerNormalization", "Attention"} <= set(ops)
    ids, extra = feeds(names)
    session = ort.InferenceSession(fused, providers=["CPUExecutionProvider"])
    (served,) = session.run(None, {"input_ids": ids, **extra})
    ex = onnx_xai.Explainer(fused)
    assert ex.kind == "tokens" and ex.record.differentiated.endswith("_words")
    np.testing.assert_allclose(ex.predict(ids, **extra), served, rtol=1e-5, atol=1e-6)
    got = ex.explain(ids, "gradient", 1, extra_inputs=extra).raw
    want = onnx_xai.Explainer(plain).explain(ids, "gradient", 1, extra_inputs=extra).raw
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    found = {}

    def keep(module, inputs, out):
        out.retain_grad()
        found["e"] = out

    hook = model.base_model.embeddings.word_embeddings.register_forward_hook(keep)
    logits = model(input_ids=torch.as_tensor(ids), **{k: torch.as_tensor(v) for k, v in extra.items()}).logits
    hook.remove()
    logits[:, 1].sum().backward()
    assert np.abs(got - found["e"].grad.numpy()).max() <= 1e-4 * np.abs(want).max()


def test_the_mask_index_is_each_rows_mask_sum(models):
    _, fused, _, names = models
    model = onnx.load(fused)
    node = next(n for n in model.graph.node if n.op_type == "EmbedLayerNormalization")
    if len(node.output) < 2 or not node.output[1]:
        raise AssertionError("the optimizer wrote no mask index for the fused Attention")
    assert unfuse_embeddings(model)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(node.output[1], onnx.TensorProto.INT32, None)
    )
    ids, extra = feeds(names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    index = session.run([node.output[1]], {"input_ids": ids, **extra})[0]
    np.testing.assert_array_equal(index, extra["attention_mask"].sum(1))
