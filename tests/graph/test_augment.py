"""augment(): the contract, pruning, errors, batch freeing, layouts and never touching the input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import onnx_xai
from onnx_xai.graph import save_model
from onnx_xai.graph.contract import METADATA_KEY, RewriteRecord
from onnx_xai.support.errors import CamNotApplicableError, InputError, ModelError, UnsupportedModelError


def export(net: nn.Module, shape, path=None, dynamic=True, opset=17) -> onnx.ModelProto:
    import io

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(),
            torch.randn(*shape),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}} if dynamic else None,
        )
    return onnx.load_from_string(buf.getvalue())


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )


def run(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def test_contract_outputs_and_metadata():
    model = onnx_xai.augment(export(small_cnn(), (1, 3, 8, 8)))
    names = [o.name for o in model.graph.output]
    assert names == [
        "y",
        "xai_score",
        "xai_target_used",
        "xai_activation",
        "xai_activation_grad",
        "xai_gradcam",
        "xai_cam",
        "xai_input_grad",
    ]
    target = next(i for i in model.graph.input if i.name == "xai_target")
    assert target.type.tensor_type.elem_type == TensorProto.INT64
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert meta["format"] == 2 and meta["layout"] == "NCHW" and meta["cam"] is True
    assert meta["score_kind"] == "logit" and meta["input_type"] == "float"
    assert meta["target"] == {"name": meta["target_layer"], "layout": "NCHW", "prefix": 0, "grid": None}
    assert set(meta) >= {"source_sha256", "target_layer", "score", "input", "outputs", "output_sets"}
    assert meta["outputs"] == names[1:]
    record = RewriteRecord.from_json(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    assert RewriteRecord.from_json(record.to_json()) == record and record.target_layer == meta["target_layer"]
    assert record.output_sets == ["cam", "gradcam", "input_grad"] and record.cam


def test_guided_and_activation_sets():
    model = onnx_xai.augment(export(small_cnn(), (1, 3, 8, 8)), outputs=("activation", "guided"))
    assert [o.name for o in model.graph.output] == [
        "y",
        "xai_score",
        "xai_target_used",
        "xai_activation",
        "xai_guided_input_grad",
    ]
    # the guided sweep's ReLU rule clips the cotangent itself: a Relu among the ReLU's backward nodes
    assert any(n.op_type == "Relu" and n.doc_string.startswith("vjp of Relu") for n in model.graph.node)


def test_output_sets_prune_the_graph():
    source = export(small_cnn(), (1, 3, 8, 8))
    cam = onnx_xai.augment(source, outputs=("cam",))
    gradcam = onnx_xai.augment(source, outputs=("gradcam",))
    full = onnx_xai.augment(source)
    assert "xai_input_grad" not in [o.name for o in gradcam.graph.output]
    assert not any(n.doc_string.startswith("vjp of") for n in cam.graph.node)
    assert not any("Conv" in n.doc_string for n in gradcam.graph.node)  # head-only backward
    assert len(cam.graph.node) < len(gradcam.graph.node) < len(full.graph.node)


def test_input_model_is_never_modified(tmp_path):
    source = export(small_cnn(), (1, 3, 8, 8), dynamic=False)
    before = source.SerializeToString()
    onnx_xai.augment(source)
    assert source.SerializeToString() == before
    path = tmp_path / "m.onnx"
    onnx.save(source, path)
    with pytest.raises(ModelError, match="refusing to write over"):
        save_model(onnx_xai.augment(path), path, source=path)
    assert path.read_bytes() == before


def test_already_rewritten_is_refused():
    with pytest.raises(ModelError, match="already rewritten"):
        onnx_xai.augment(onnx_xai.augment(export(small_cnn(), (1, 3, 8, 8))))


def test_cam_on_other_heads_names_the_head_and_suggests_gradcam():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    with pytest.raises(CamNotApplicableError, match=r"Flatten -> Gemm.*gradcam"):
        onnx_xai.augment(export(net, (1, 3, 8, 8)), outputs=("cam",))


def test_every_unsupported_node_is_listed_once():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.ones((4, 2), np.float32), "fc")
    nodes = [
        helper.make_node("Atan", ["x"], ["p"], name="arctan"),
        helper.make_node("Conv", ["p", "w"], ["c"], name="conv"),
        helper.make_node("Cos", ["c"], ["a"], name="cosine"),
        helper.make_node("FusedGelu", ["a"], ["g"], domain="com.microsoft", name="fused"),
        helper.make_node("GlobalAveragePool", ["g"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, fc]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(UnsupportedModelError) as err:
        onnx_xai.augment(model, target_layer="c", outputs=("input_grad",))
    message = str(err.value)
    assert message.startswith("cannot differentiate 3 nodes:")
    assert "'arctan' (Atan)" in message
    assert "'cosine' (Cos)" in message
    assert "'fused' (FusedGelu): op from non-standard domain 'com.microsoft'" in message
    assert "supported: Abs, Add" in message


def test_bad_arguments():
    source = export(small_cnn(), (1, 3, 8, 8))
    with pytest.raises(InputError, match="unknown output set"):
        onnx_xai.augment(source, outputs=("saliency",))
    with pytest.raises(ModelError, match="no tensor named 'missing'"):
        onnx_xai.augment(source, target_layer="missing")
    with pytest.raises(ModelError, match="must be a 4-D"):
        onnx_xai.augment(source, target_layer="y")
    with pytest.raises(ModelError, match="not an ONNX model"):
        onnx_xai.augment(b"definitely not a protobuf of a model")


def test_an_old_opset_is_upgraded_and_keeps_its_outputs():
    """A model at opset 10 (converters write 8 and 9) is rewritten from a private upgraded copy:
    its outputs and gradients those of the same model at its own opset; the user's model unchanged."""
    source = export(small_cnn(), (1, 3, 8, 8))
    old = onnx.ModelProto()
    old.CopyFrom(source)
    old.opset_import[0].version = 10
    kept = old.SerializeToString()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    feeds = {"x": x, "xai_target": np.array([0, 2], np.int64)}
    new, upgraded = run(onnx_xai.augment(source), feeds), run(onnx_xai.augment(old), feeds)
    assert old.SerializeToString() == kept
    for name in ("y", "xai_score", "xai_input_grad", "xai_gradcam"):
        assert np.allclose(new[name], upgraded[name], atol=1e-6), name


def test_static_batch_of_one_is_freed_and_samples_stay_independent():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    head = nn.Linear(4 * 3 * 3, 5)
    full = nn.Sequential(net, nn.Flatten(), head)
    model = export(full, (1, 3, 8, 8), dynamic=False)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    rewritten = onnx_xai.augment(model, outputs=("gradcam", "input_grad"))
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    batch = run(rewritten, {"x": x, "xai_target": np.array([-1, 0, 4])})
    for i, t in enumerate([-1, 0, 4]):
        one = run(rewritten, {"x": x[i : i + 1], "xai_target": np.array([t])})
        for name in ("xai_score", "xai_input_grad", "xai_gradcam"):
            np.testing.assert_allclose(batch[name][i], one[name][0], rtol=1e-5, atol=1e-6)


def test_rewritten_file_shares_weights(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 64, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    source = tmp_path / "m.onnx"
    onnx.save(export(net, (1, 3, 16, 16)), source)
    save_model(onnx_xai.augment(source), tmp_path / "m.xai.onnx")
    assert (tmp_path / "m.xai.onnx").stat().st_size <= 1.02 * source.stat().st_size


def test_names_stay_unique_when_the_model_uses_the_prefix():
    model = export(small_cnn(), (1, 3, 8, 8))
    squatters = [f"xai/{hint}_{i}" for hint in ("const", "mul", "n_mul", "relu") for i in range(1, 40)]
    model.graph.initializer.extend(numpy_helper.from_array(np.zeros(1, np.float32), n) for n in squatters)
    rewritten = onnx_xai.augment(model)
    onnx.checker.check_model(rewritten, full_check=True)
    new = [o for n in rewritten.graph.node for o in n.output]
    assert len(new) == len(set(new)) and not set(new) & set(squatters)


def test_existing_public_name_is_refused():
    model = export(small_cnn(), (1, 3, 8, 8))
    model.graph.output[0].name = "xai_score"
    model.graph.node[-1].output[0] = "xai_score"
    with pytest.raises(ModelError, match="xai_score"):
        onnx_xai.augment(model)


class ChannelsLast(nn.Module):
    """A TensorFlow-style graph: NHWC input, transposes around the conv, NHWC activation."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(3, 6, 3, padding=1), nn.Linear(6, 4)

    def forward(self, x):
        a = torch.relu(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        self.activation = a
        return self.fc(a.mean((1, 2)))


def test_channels_last_model():
    net = ChannelsLast().eval()
    model = onnx_xai.augment(export(net, (1, 8, 8, 3)))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert meta["layout"] == "NHWC" and meta["cam"]
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    got = run(model, {"x": x, "xai_target": np.array([1, 3])})
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    net64 = net.double()
    logits = net64(xt)
    net64.activation.retain_grad()
    logits[[0, 1], [1, 3]].sum().backward()
    a = net64.activation.detach().numpy().transpose(0, 3, 1, 2)
    da = net64.activation.grad.numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got["xai_activation"], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["xai_activation_grad"], da, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["xai_input_grad"], xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    w = net64.fc.weight.detach().numpy()[[1, 3]]
    np.testing.assert_allclose(got["xai_cam"], np.einsum("nk,nkhw->nhw", w, a), rtol=1e-5, atol=1e-6)
