"""Float32 input gradients against float64 autograd, per onnxruntime optimization level, and why
they part when they do.

For a model (default RegNet-Y-400MF, random torchvision init, 224 x 224) and several random inputs,
prints the relative L2 error against torch float64 of: torch float32, the rewritten graph on
onnxruntime at ORT_ENABLE_EXTENDED, and at ORT_ENABLE_ALL (the Explainer's level, where the NCHWc
layout transformer reorders the convolutions). For every input where a level is more than 3x
torch's own error, it lists the ReLU decisions that differ between the two levels, with the values
on each side: pre-activations within float32 rounding of zero that two summation orders settle on
opposite sides, each sending a whole gradient path one way or the other.

    python tools/precision.py [--model regnet_y_400mf] [--inputs 8] [--size 224]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).parent))
from models import exported, torch_model  # noqa: E402

import onnx_xai  # noqa: E402

LEVELS = {
    "EXTENDED": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "ALL": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session(model: onnx.ModelProto, level) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def torch_gradient(net, x: np.ndarray, dtype) -> tuple[np.ndarray, int]:
    net = copy.deepcopy(net).to(dtype)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    out = net(xt)
    target = int(out[0].argmax())
    out[0, target].backward()
    return xt.grad.double().numpy(), target


def relu_flips(model: onnx.ModelProto, x: np.ndarray, target: int) -> list[str]:
    """ReLU outputs whose zero/non-zero pattern differs between the two levels, with the values."""
    relus = [
        n.output[0] for n in model.graph.node if n.op_type == "Relu" and not n.output[0].startswith("xai")
    ]
    probe = copy.deepcopy(model)
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(r, onnx.TensorProto.FLOAT, None) for r in relus
    )
    feeds = {"x": x, "xai_target": np.array([target])}
    extended, full = (session(probe, level).run(relus, feeds) for level in LEVELS.values())
    found = []
    for name, a, b in zip(relus, extended, full):
        flipped = (a > 0) != (b > 0)
        if flipped.any():
            found.append(
                f"{name}: {int(flipped.sum())} of {a.size}, EXTENDED {a[flipped][:3]} vs ALL "
                f"{b[flipped][:3]} (layer RMS {np.sqrt(np.mean(a**2)):.2g})"
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnet_y_400mf", choices=["regnet_y_400mf", "resnet50"])
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    net = torch_model(args.model)
    model = onnx_xai.augment(exported(args.model), outputs=("input_grad",))
    sessions = {name: session(model, level) for name, level in LEVELS.items()}
    print(f"{args.model}, {args.size}x{args.size}: relative L2 error of d logit / d x against torch float64")
    print("input  torch-fp32  EXTENDED  ALL   ALL/torch")
    for seed in range(args.inputs):
        x = np.random.default_rng(seed).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
        exact, target = torch_gradient(net, x, torch.float64)
        errors = [
            np.linalg.norm(g - exact) / np.linalg.norm(exact)
            for g in (
                torch_gradient(net, x, torch.float32)[0],
                *(
                    s.run(["xai_input_grad"], {"x": x, "xai_target": np.array([target])})[0]
                    for s in sessions.values()
                ),
            )
        ]
        print(f"{seed:5d}  {errors[0]:.2e}    {errors[1]:.2e}  {errors[2]:.2e}  {errors[2] / errors[0]:.1f}x")
        if max(errors[1:]) > 3 * errors[0]:
            for line in relu_flips(model, x, target):
                print(f"       ReLU decision flipped: {line}")


if __name__ == "__main__":
    main()
