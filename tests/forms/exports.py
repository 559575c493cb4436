"""The export forms under test, each an ONNX file made once per session in a temp folder.

A form is a net from :mod:`.nets` exported the way production teams ship it: TorchScript at some
opset with static or dynamic batch and spatial axes, in float16, with the preprocessing baked in
(uint8 input), statically quantized to QDQ int8 by onnxruntime's own quantizer, or with an ``If``
on the gradient path.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from . import nets

SIZE = 32
_DIR = Path(tempfile.mkdtemp(prefix="onnx_xai_forms_"))


@dataclass(frozen=True)
class Form:
    """How one form is made: the net, the opset, which axes are dynamic, dtype and batch."""

    net: str
    opset: int = 17
    dynamic: tuple[str, ...] = ("batch",)  # any of "batch", "spatial"
    dtype: str = "float32"  # "float32", "float16" or "qdq"
    batch: int = 1
    exporter: str = "torchscript"  # or "dynamo" (torch.export, through onnxscript)

    def build(self) -> nets.FormNet:
        return nets.build(self.net)


FORMS = {
    "keras_nhwc": Form("keras_nhwc", opset=13),
    "minimal_nhwc": Form("minimal_nhwc", dynamic=()),
    "paddle_dynamic": Form("paddle_dynamic", opset=11, dynamic=("batch", "spatial")),
    "shufflenet_dynamic": Form("shufflenet", opset=13, dynamic=("batch", "spatial")),
    "convnext_head": Form("convnext_head"),
    "vit": Form("vit"),
    "vit_layernorm_spelled_out": Form("vit", opset=13),  # LayerNormalization is an op from opset 17
    "vit_torchvision": Form("vit_torchvision"),  # nn.MultiheadAttention: sequence-first [T, N, C] inside
    "vit_registers_dynamo": Form("vit_registers", opset=18, exporter="dynamo"),  # Where(IsNaN) guards
    "vit_runtime_grid": Form("vit_runtime_grid", dynamic=("batch", "spatial")),  # grid from Shape
    "vit_sequence_first": Form("vit_sequence_first"),  # OpenAI CLIP: blocks on [T, N, C]
    "vit_distilled": Form("vit_distilled"),  # DeiT: class and distillation tokens
    "swin_torchvision": Form("swin_torchvision"),  # [N, H, W, C] maps, shifted windows (roll)
    "swin_hf": Form("swin_hf"),  # [N, L, C] tokens between blocks, the grid halved by patch merging
    "swin_torchvision_dynamo": Form("swin_torchvision", opset=18, exporter="dynamo"),
    "vit_torchvision_dynamo": Form("vit_torchvision", opset=18, exporter="dynamo"),
    "uint8_pixels": Form("uint8_pixels", opset=13),
    "sigmoid_head": Form("sigmoid_head"),
    "grayscale": Form("grayscale"),
    "fixed_batch4": Form("fixed_batch", opset=13, dynamic=(), batch=4),
    "regnety": Form("regnety"),
    "float16": Form("smooth", dtype="float16"),
    "qdq_int8": Form("regnety", opset=13, dtype="qdq"),
}


def input_shape(net, batch: int, size: int = SIZE) -> tuple[int, ...]:
    if net.input_layout == "NHWC":
        return (batch, size, size, net.channels)
    return (batch, net.channels, size, size)


def example_input(net, batch: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A batch the net takes: uint8 pixels for pixel nets, else standard normal float32."""
    rng = np.random.default_rng(seed)
    shape = input_shape(net, batch, size)
    if net.pixels:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


def _dynamic_axes(net, form: Form) -> dict | None:
    axes = {}
    if "batch" in form.dynamic:
        axes[0] = "N"
    if "spatial" in form.dynamic:
        axes.update({1: "H", 2: "W"} if net.input_layout == "NHWC" else {2: "H", 3: "W"})
    return {"x": axes, "y": {0: "N"} if "batch" in form.dynamic else {}} if axes else None


@functools.cache
def export(name: str) -> Path:
    """The ONNX file of form ``name``."""
    form = FORMS[name]
    net = form.build()
    example = torch.from_numpy(example_input(net, form.batch))
    if form.dtype == "float16":
        net, example = copy.deepcopy(net).half(), example.half()
    path = _DIR / f"{name}.onnx"
    if form.exporter == "dynamo":
        return _export_dynamo(net, example, path, form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            opset_version=form.opset,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes=_dynamic_axes(net, form),
        )
    if form.dtype == "qdq":
        path = quantize(path, net, form)
    return path


def _export_dynamo(net, example: torch.Tensor, path: Path, form: Form) -> Path:
    """torch.export's ONNX exporter (dynamic batch when the form says), its weights inside the file."""
    batch = {"x": {0: torch.export.Dim("N")}} if "batch" in form.dynamic else None
    example = torch.cat([example, example]) if batch else example  # a batch of 1 would be specialized
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, (example,), dynamo=True, opset_version=form.opset, input_names=["x"], output_names=["y"],
            dynamic_shapes=batch, verbose=False,
        )  # fmt: skip
    program.save(str(path), external_data=False)
    return path


def quantize(path: Path, net, form: Form) -> Path:
    """onnxruntime's static QDQ quantization (int8 weights and activations), calibrated on noise."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": example_input(net, 1, seed)} for seed in range(8)])

        def get_next(self):
            return next(self.batches, None)

    out = path.with_name(path.stem + ".qdq.onnx")
    quantize_static(
        str(path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return out


@functools.cache
def if_on_path() -> Path:
    """x -> Conv -> If(sum(x) > 0){Relu}{Identity} -> GlobalAveragePool -> Flatten -> Gemm: a
    data-dependent branch (as a scripted export writes it) between the input and the score."""
    rng = np.random.default_rng(0)
    then_branch = helper.make_graph(
        [helper.make_node("Relu", ["conv"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["conv"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["flag"]),
        helper.make_node(
            "If", ["flag"], ["a"], then_branch=then_branch, else_branch=else_branch, name="branch"
        ),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "if_on_path",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    path = _DIR / "if_on_path.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path
