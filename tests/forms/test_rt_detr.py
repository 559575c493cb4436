"""The RT-DETR decoder of :mod:`.rt_detr`, exported by ``torch.onnx`` (TorchScript, opset 17), against
float64 torch autograd: the seeded input gradient of each sample's best query and class.

The reference itself is checked first against torch's own float64 central differences: on this
decoder, PyTorch's eval-mode BatchNorm backward is not the derivative of its forward (see
:mod:`tests.torch_fixes`), and a reference that is wrong makes a right gradient look wrong.
"""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch

import onnx_xai

from ..torch_fixes import exact_batch_norm
from .reference import rel
from .rt_detr import RtDetr

SIZE = 128


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = RtDetr().eval()
    path = tmp_path_factory.mktemp("rtdetr") / "rtdetr.onnx"
    example = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(
        net,
        example,
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "N"}, "output0": {0: "N"}},
    )
    return net, path


def best_seed(rows: np.ndarray) -> np.ndarray:
    """A one-hot seed on each sample's highest class score (columns 4 onwards)."""
    seed = np.zeros_like(rows)
    for i, r in enumerate(rows):
        q, c = np.unravel_index(np.argmax(r[:, 4:]), r[:, 4:].shape)
        seed[i, q, 4 + c] = 1
    return seed


def torch_gradient(net, x: np.ndarray, seed: np.ndarray, dtype) -> np.ndarray:
    net = copy.deepcopy(net).to(dtype)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    with exact_batch_norm():
        (net(xt) * torch.tensor(seed, dtype=dtype)).sum().backward()
    return xt.grad.double().numpy()


def central_differences(net, x: np.ndarray, seed: np.ndarray, directions: np.ndarray, eps=1e-6):
    net = copy.deepcopy(net).double()
    s, x64 = torch.tensor(seed, dtype=torch.float64), torch.tensor(x, dtype=torch.float64)
    with torch.no_grad():
        return [
            float(((net(x64 + eps * t) - net(x64 - eps * t)) * s).sum()) / (2 * eps)
            for t in map(torch.tensor, directions)
        ]


@pytest.mark.parametrize("photo", [3, 4])
def test_input_gradient_matches_float64_torch(exported, photo):
    """Batch 1, as served: the gradient reaching each BatchNorm then has channels-last strides."""
    net, path = exported
    x = np.random.default_rng(photo).uniform(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32)
    rows = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    seed = best_seed(rows)
    exact = torch_gradient(net, x, seed, torch.float64)
    directions = np.random.default_rng(4).standard_normal((3, *x.shape))
    for numeric, t in zip(central_differences(net, x, seed, directions), directions):
        assert abs(numeric - np.sum(exact * t)) <= 1e-5 * max(abs(numeric), 1e-6)  # the reference holds
    own_error = rel(torch_gradient(net, x, seed, torch.float32), exact)
    ours = onnx_xai.Explainer(path).input_gradient(x, objective=seed)
    assert rel(ours, exact) <= max(3 * own_error, 1e-5), (rel(ours, exact), own_error)


def test_the_decoder_has_what_the_real_one_has(exported):
    """The constructs the real decoder's export has, found in this export: inf anchors, the
    query selection by TopK (values unused) and a flattened Gather, the value's Split, Clip,
    GridSample with some points outside the map."""
    import onnx

    model = onnx.load(str(exported[1]))
    ops = {n.op_type for n in model.graph.node}
    assert {"TopK", "Gather", "Clip", "GridSample", "Log", "LayerNormalization", "Where"} <= ops
    assert "Split" in ops or "Slice" in ops  # the value split by level: Slices where the sizes were traced
    values = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    values += [
        onnx.numpy_helper.to_array(a.t) for n in model.graph.node for a in n.attribute if a.type == a.TENSOR
    ]
    assert any(np.isinf(v).any() for v in values if v.dtype.kind == "f")
