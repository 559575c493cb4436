"""The core explains what a model takes, not only pictures: a table's rows, ids read by an
embedding, several inputs with one explained and the others held; gradients against float64 torch
autograd, the explained point and kind said by the record, no maps where there is no picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onnx_xai
from onnx_xai.support.errors import InputError

from ..forms.reference import rel


def export(net: nn.Module, examples: tuple, names: list[str], path) -> str:
    axes = {n: {0: "N"} for n in names} | {"y": {0: "N"}}
    torch.onnx.export(
        net, examples, str(path), dynamo=False, input_names=names, output_names=["y"], dynamic_axes=axes
    )
    return str(path)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.layers(x)


class Bag(nn.Module):
    """Ids [N, T] read from a [V, D] embedding, a mask input held, mean-pooled to 2 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.embedding, self.head = nn.Embedding(20, 5), nn.Linear(5, 2)

    def forward(self, ids, mask):
        vectors = self.embedding(ids) * mask[..., None]
        return self.head(torch.tanh(vectors).sum(1) / mask.sum(1, keepdim=True))


def torch_gradient(net, inputs: list, point, target) -> np.ndarray:
    out = net(*inputs)
    out[torch.arange(len(out)), torch.as_tensor(target)].sum().backward()
    return point.grad.numpy()


def test_a_table_is_explained_by_its_gradients(tmp_path):
    net = Mlp().eval()
    path = export(net, (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    ex = onnx_xai.Explainer(path)
    assert (ex.kind, ex.layout, ex.target_layers) == ("table", None, [])
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    r = ex.explain(x, "gradient")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    assert rel(r.raw, torch_gradient(net.double(), [xt], xt, r.targets)) < 1e-6
    assert r.maps is None and r.boxes is None and r.raw.shape == (5, 6)
    ig = ex.explain(x, "integrated_gradients", n_steps=64).raw
    scores = net(torch.tensor(x, dtype=torch.float64))[np.arange(5), r.targets].detach().numpy()
    at_zero = net(torch.zeros(5, 6, dtype=torch.float64))[np.arange(5), r.targets].detach().numpy()
    assert np.allclose(ig.sum(1), scores - at_zero, atol=1e-3)  # completeness
    with pytest.raises(
        InputError,
        match=r"input is a table; these methods explain other inputs only: gradcam \(image and signal\)",
    ):
        ex.explain(x, "gradcam")


def test_ids_are_explained_at_their_embedding(tmp_path):
    net = Bag().eval()
    ids, mask = torch.zeros(1, 7, dtype=torch.int64), torch.ones(1, 7)
    path = export(net, (ids, mask), ["ids", "mask"], tmp_path / "bag.onnx")
    ex = onnx_xai.Explainer(path)
    assert ex.kind == "tokens" and ex.record.differentiated != ex.record.input
    rng = np.random.default_rng(2)
    x = rng.integers(0, 20, size=(3, 7)).astype(np.int64)
    held = np.ones((3, 7), np.float32)
    held[0, 5:] = 0
    r = ex.explain(x, "gradient", extra_inputs={"mask": held})
    vectors = net.embedding.weight.double()[torch.tensor(x)].detach().requires_grad_(True)
    net = net.double()
    out = net.head(
        torch.tanh(vectors * torch.tensor(held, dtype=torch.float64)[..., None]).sum(1)
        / torch.tensor(held, dtype=torch.float64).sum(1, keepdim=True)
    )
    out[torch.arange(3), torch.as_tensor(r.targets)].sum().backward()
    assert r.raw.shape == (3, 7, 5) and rel(r.raw, vectors.grad.numpy()) < 1e-6
    assert np.abs(r.raw[0, 5:]).max() == 0  # the masked positions get exactly zero
