"""The methods that run the head only, against their definitions in float64 torch on the same nets:
ReciproCAM (one-hot and Gaussian masks; each copy's class probability) and Ablation-CAM
(pytorch-grad-cam's rule) on the method table's CNN, ViT-ReciproCAM on a torchvision-style ViT (the
last block's LayerNorm output and the residual stream beside it masked alike, the class token kept),
and the head's graph holding none of the body's convolutions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onnx_xai
from onnx_xai.runtime.methods.mosaics import reciprocam_masks

from ..forms.reference import rel
from .test_method_references import onnx_bytes, setup  # noqa: F401  (the module's fixture)


def _features(net, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return net.features(torch.tensor(x, dtype=torch.float64))


@pytest.mark.parametrize("gaussian", [False, True])
def test_reciprocam_is_each_positions_class_probability(setup, gaussian):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "reciprocam", objective=targets, gaussian=gaussian, batch_size=10).raw
    features = _features(net, x)
    masks = torch.tensor(reciprocam_masks(*features.shape[2:], gaussian), dtype=torch.float64)
    for i in range(len(x)):
        with torch.no_grad():
            logits = net.fc((features[i : i + 1] * masks[:, None]).mean((2, 3)))
        want = F.softmax(logits, dim=1)[:, targets[i]].reshape(features.shape[2:])
        assert rel(ours[i], want.numpy()) < 1e-5


def test_reciprocam_masks_are_one_hot_or_a_gaussian_cut_at_the_edges():
    plain, smooth = reciprocam_masks(3, 4, False), reciprocam_masks(3, 4, True)
    assert (plain.sum((1, 2)) == 1).all() and plain[5, 1, 1] == 1
    assert smooth[5, 1, 1] == 0.25 and smooth[5, 0, 1] == 0.125 and smooth[5, 0, 0] == 0.0625
    assert smooth[0].sum() == pytest.approx((4 + 2 + 2 + 1) / 16)  # a corner keeps 4 of 9 cells


def test_ablationcam_matches_pytorch_grad_cams_definition(setup):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "ablationcam", objective=targets, batch_size=5).raw
    features = _features(net, x)
    for i in range(len(x)):
        a = features[i : i + 1]
        value = 0.0 if float(a.min()) == 0 else float(a.min()) - 1e7
        with torch.no_grad():
            score = float(net.fc(a.mean((2, 3)))[0, targets[i]])
            ablated = a.repeat(a.shape[1], 1, 1, 1)
            ablated[torch.arange(a.shape[1]), torch.arange(a.shape[1])] = value
            scores = net.fc(ablated.mean((2, 3)))[:, targets[i]]
        weights = (score - scores) / score
        want = torch.relu((weights[:, None, None] * a[0]).sum(0))
        assert rel(ours[i], want.numpy()) < 1e-5


def test_the_head_holds_none_of_the_bodys_convolutions(setup):  # noqa: F811
    from onnx_xai.graph.augment import augment
    from onnx_xai.graph.contract import RewriteRecord
    from onnx_xai.graph.split import split

    _, net, _, _ = setup
    model = augment(onnx_bytes(copy.deepcopy(net).float()), outputs=("activation",))
    record = RewriteRecord.from_json({p.key: p.value for p in model.metadata_props}["onnx_xai"])
    cut = split(model, record.target_layer, record.output, record.input)

    def convolutions(m) -> int:
        return sum(n.op_type == "Conv" for n in m.graph.node)

    assert convolutions(model) == 4 == convolutions(cut.body) and convolutions(cut.head) == 0
    assert cut.boundary == [record.target_layer] and {"Gemm", "ReduceMean"} & {
        n.op_type for n in cut.head.graph.node
    }


def test_vit_reciprocam_masks_the_layer_and_the_residual_stream():
    from ..forms.transformer_nets import TorchvisionViT

    torch.manual_seed(2)
    net = TorchvisionViT().eval()
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ex = onnx_xai.Explainer(onnx_bytes_32(net))
    ours = ex.explain(x, "reciprocam", objective=[1, 3])
    net = net.double()
    masks = torch.tensor(reciprocam_masks(4, 4, True), dtype=torch.float64)
    keep = torch.cat([torch.ones(16, 1), masks.reshape(16, 16)], 1)[:, :, None]  # class token kept
    block = net.layers[-1]
    for i, target in enumerate([1, 3]):
        with torch.no_grad():
            xi = torch.tensor(x[i : i + 1], dtype=torch.float64)
            tokens = net.conv_proj(xi).reshape(1, 32, -1).permute(0, 2, 1)
            stream = torch.cat([net.class_token.expand(1, -1, -1), tokens], 1) + net.pos_embedding
            stream = net.layers[:-1](stream)
            normed = block.ln_1(stream)
            y, _ = block.self_attention(normed * keep, normed * keep, normed * keep, need_weights=False)
            h = stream * keep + y
            h = h + block.mlp(block.ln_2(h))
            probability = F.softmax(net.head(net.ln(h)[:, 0]), 1)[:, target]
        assert rel(ours.raw[i], probability.reshape(4, 4).numpy()) < 1e-5


def onnx_bytes_32(net) -> bytes:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, torch.zeros(1, 3, 32, 32), buffer, dynamo=False, opset_version=17,
            input_names=["x"], dynamic_axes={"x": {0: "N"}},
        )  # fmt: skip
    return buffer.getvalue()
