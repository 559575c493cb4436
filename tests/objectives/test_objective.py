"""The objective is one typed value: a class, a regression value, a seed over the output, or each
sample's top class; plain values are read as the same objectives. Checked against torch float64
autograd on a regression MLP with a 2-D and a 3-D output, and against the classes' own scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onnx_xai
from onnx_xai.objectives.objective import Objective
from onnx_xai.support.errors import InputError

from ..forms.reference import rel


class Regressor(nn.Module):
    """Six columns in, three values out, as ``[N, 3]`` or reshaped to ``[N, 1, 3]``."""

    def __init__(self, nested: bool):
        super().__init__()
        torch.manual_seed(3)
        self.nested = nested
        self.layers = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))

    def forward(self, x):
        y = self.layers(x)
        return y.reshape(-1, 1, 3) if self.nested else y


def explainer(tmp_path, nested: bool) -> tuple[onnx_xai.Explainer, nn.Module]:
    net = Regressor(nested).eval()
    path = str(tmp_path / f"regressor{int(nested)}.onnx")
    axes = {"X": {0: "N"}, "y": {0: "N"}}
    torch.onnx.export(
        net,
        (torch.zeros(1, 6),),
        path,
        dynamo=False,
        input_names=["X"],
        output_names=["y"],
        dynamic_axes=axes,
    )
    return onnx_xai.Explainer(path), net.double()


def torch_gradient(net: nn.Module, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (net(xt).reshape(len(x), -1) * torch.as_tensor(weights, dtype=torch.float64)).sum().backward()
    return xt.grad.numpy()


X = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)


@pytest.mark.parametrize("nested", [False, True])
def test_a_regression_value_is_explained_by_its_index(tmp_path, nested):
    ex, net = explainer(tmp_path, nested)
    indices = np.array([2, 0, 1, 2])
    got = ex.input_gradient(X, Objective.of_value(indices))
    want = torch_gradient(net, X, np.eye(3)[indices])
    assert rel(got, want) < 1e-5
    one = ex.explain(X, "gradient", Objective.of_value(1))
    assert rel(one.raw, torch_gradient(net, X, np.eye(3)[[1] * 4])) < 1e-5
    with torch.no_grad():
        values = net(torch.tensor(X, dtype=torch.float64)).reshape(4, 3)[:, 1].numpy()
    np.testing.assert_allclose(one.scores, values, rtol=1e-5, atol=1e-6)


def test_plain_values_are_read_as_the_typed_objectives(tmp_path):
    ex, net = explainer(tmp_path, nested=False)
    seed = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    assert rel(ex.input_gradient(X, seed), torch_gradient(net, X, seed)) < 1e-5
    assert rel(ex.input_gradient(X, Objective.weighted(seed)), torch_gradient(net, X, seed)) < 1e-5
    classes = ex.input_gradient(X, [0, 2, 1, 0])
    np.testing.assert_array_equal(classes, ex.input_gradient(X, Objective.of_class([0, 2, 1, 0])))
    assert rel(classes, torch_gradient(net, X, np.eye(3)[[0, 2, 1, 0]])) < 1e-5
    with torch.no_grad():
        top = net(torch.tensor(X, dtype=torch.float64)).numpy().argmax(1)
    np.testing.assert_array_equal(ex.input_gradient(X), ex.input_gradient(X, top))
    np.testing.assert_array_equal(ex.input_gradient(X, Objective.top()), ex.input_gradient(X, -1))


@pytest.mark.parametrize(
    "given,message",
    [
        (Objective.of_value(3), "value 3 is out of range for an output of 3 values"),
        ([0, 1], "gives 2 classes for 4 samples"),
        (True, "a class is an int or a list of ints"),
        ("cat", "a class is an int or a list of ints"),
        (np.zeros((4, 3), np.int64), "a class is an int"),
        (np.full((4, 3), np.nan, np.float32), "finite values"),
        (np.zeros((4, 5), np.float32), "the seed has shape"),
    ],
)
def test_a_bad_objective_is_refused_in_one_line(tmp_path, given, message):
    ex, _ = explainer(tmp_path, nested=False)
    with pytest.raises(InputError, match=message):
        ex.explain(X, "gradient", given)


def test_the_objective_says_what_it_is():
    assert Objective.of_class(-1).kind == "top"
    assert Objective.of_class([1, 2]).describe() == {"kind": "class", "index": [1, 2]}
    assert Objective.weighted(np.ones((2, 3))).describe() == {"kind": "seed", "shape": [2, 3]}
    assert repr(Objective.of_value(0)) == "Objective(kind='value', index=0)"
    with pytest.raises(InputError, match="0 or more"):
        Objective.of_value(-1)
