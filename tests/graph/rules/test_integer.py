"""Dynamic int8 quantization (DynamicQuantizeLinear, MatMulInteger, ConvInteger) against numpy.

A dynamically quantized graph is piecewise constant, so finite differences do not apply. Its gradient
is the straight-through estimator, written here independently in float64 numpy: the float network
with each weight replaced by its dequantized value ``(w_q - w_z) w_s``, read from the quantized
model's initializers, and the activations' quantization taken as the identity. The table cases are
written as ``quantize_dynamic`` writes them (and an integer product of two activations, whose
estimator reads the other operand's dequantized value, simulated here from the ONNX spec); the
models are small float networks quantized by onnxruntime's ``quantize_dynamic`` itself, with
per-tensor and per-channel weights of both integer types. The forms onnxruntime fuses into its own
domain, and the ones the rules' checks refuse, are refused with one line naming the op.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.support.errors import UnsupportedModelError

from ...reference_runtime import reference
from .harness import Case, build, node

F = onnx.TensorProto.FLOAT
CPU = ["CPUExecutionProvider"]
SCALE = np.array(0.02, np.float32)


def dynamic(name: str, product, x_shape, consts) -> Case:
    """x -> DynamicQuantizeLinear -> ``product`` (reading q, w, z and w's zero point ``wz``, writing
    p) -> Cast -> times ``s * ws``: the chain quantize_dynamic writes."""
    nodes = [
        node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
        node("Mul", ["s", "ws"], "sw"),
        product,
        node("Cast", ["p"], "pf", to="dtype"),
        node("Mul", ["pf", "sw"]),
    ]
    return Case(name, nodes, {"x": x_shape}, {"ws": SCALE, **consts})


U8_WEIGHTS = np.arange(12, dtype=np.uint8).reshape(4, 3) * 17
CONV_WEIGHTS = (np.arange(54, dtype=np.uint8).reshape(3, 2, 3, 3) * 7) % 251
PER_COLUMN = {"wz": np.array([0, -3, 5], np.int8), "ws": np.array([0.01, 0.02, 0.04], np.float32)}
CASES = [
    dynamic(
        "dynamic_matmul_uint8",
        node("MatMulInteger", ["q", "w", "z", "wz"], "p"),
        (2, 4),
        {"w": U8_WEIGHTS, "wz": np.array(120, np.uint8)},
    ),
    dynamic(
        "dynamic_matmul_int8_per_column",
        node("MatMulInteger", ["q", "w", "z", "wz"], "p"),
        (2, 3, 4),
        {"w": (np.arange(12, dtype=np.int8).reshape(4, 3) - 6) * 9, **PER_COLUMN},
    ),
    dynamic(
        "dynamic_conv_stride_2",
        node("ConvInteger", ["q", "w", "z", "wz"], "p", strides=[2, 2], pads=[1, 1, 1, 1]),
        (1, 2, 5, 5),
        {"w": CONV_WEIGHTS, "wz": np.array(9, np.uint8)},
    ),
    dynamic(
        "dynamic_conv_stride_1_no_weight_zero_point",
        node("ConvInteger", ["q", "w", "z"], "p", pads=[1, 0, 1, 0]),
        (2, 2, 4, 4),
        {"w": CONV_WEIGHTS[:2] % 97},
    ),
    Case(
        "dynamic_matmul_of_two_activations",
        [
            node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
            node("Transpose", ["x"], "t"),
            node("DynamicQuantizeLinear", ["t"], ["tq", "ts", "tz"]),
            node("Mul", ["s", "ts"], "st"),
            node("MatMulInteger", ["q", "tq", "z", "tz"], "p"),
            node("Cast", ["p"], "pf", to="dtype"),
            node("Mul", ["pf", "st"]),
        ],
        {"x": (3, 4)},
    ),
]


def dequantize_activation(x: np.ndarray) -> np.ndarray:
    """DynamicQuantizeLinear then dequantization, by the ONNX spec (float32 arithmetic)."""
    x = x.astype(np.float32)
    low, high = np.float32(min(0.0, x.min())), np.float32(max(0.0, x.max()))
    scale = np.float32((high - low) / np.float32(255))
    zero = np.clip(np.rint(-low / scale), 0, 255)
    q = np.clip(np.rint(x / scale) + zero, 0, 255)
    return (q - zero).astype(np.float64) * np.float64(scale)


def conv_vjp(g: np.ndarray, w: np.ndarray, x_shape, strides, pads) -> np.ndarray:
    """The input cotangent of a 2-D convolution (no groups or dilations), by scattering each tap."""
    (sh, sw), (top, left, bottom, right) = strides, pads
    n, c, h, wd = x_shape
    padded = np.zeros((n, c, h + top + bottom, wd + left + right))
    _, _, oh, ow = g.shape
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            padded[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += np.einsum(
                "nmij,mc->ncij", g, w[:, :, i, j]
            )
    return padded[:, :, top : top + h, left : left + wd]


def table_reference(case: Case, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The straight-through estimator of each table case, in float64."""
    c = {k: np.asarray(v).astype(np.float64) for k, v in case.consts.items()}
    if case.name == "dynamic_matmul_of_two_activations":
        return (g + g.T) @ dequantize_activation(x)  # y = x x^T, each side read dequantized
    w = (c["w"] - c.get("wz", 0.0)) * c["ws"]
    if "Conv" not in case.nodes[2][0]:
        return g @ w.T
    attrs = case.nodes[2][4]
    return conv_vjp(g, w, x.shape, attrs.get("strides", [1, 1]), attrs["pads"])


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    rng = np.random.default_rng(0)
    for opset in case.opsets():
        forward = build(case, opset, np.float32)
        model = vjp_model(forward, "y", ["x"])
        onnx.checker.check_model(model, full_check=True)
        x = rng.uniform(-2, 2, case.wrt["x"]).astype(np.float32)
        y = ort.InferenceSession(forward.SerializeToString(), providers=CPU).run(["y"], {"x": x})[0]
        seed = rng.standard_normal(y.shape).astype(np.float32)
        want = table_reference(case, x.astype(np.float64), seed.astype(np.float64))
        session = ort.InferenceSession(model.SerializeToString(), providers=CPU)
        for runtime in (session, reference(model)):
            (got,) = runtime.run(["xai_grad/x"], {"x": x, "xai_seed": seed})
            assert relative_error(got, want) < 2e-6, f"{case.name} @ {opset}: {relative_error(got, want):.2e}"


def test_conv_integer_per_channel_weight_zero_point():
    """The spec allows a zero point per output channel, which onnxruntime's CPU kernel does not run:
    checked on the ONNX reference evaluator."""
    case = CASES[2]
    case = Case(case.name, case.nodes, case.wrt, {**case.consts, "wz": np.array([3, 200, 77], np.uint8)})
    model = vjp_model(build(case, 13, np.float32), "y", ["x"])
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, case.wrt["x"]).astype(np.float32)
    seed = rng.standard_normal((1, 3, 3, 3)).astype(np.float32)
    (got,) = reference(model).run(["xai_grad/x"], {"x": x, "xai_seed": seed})
    consts = {k: v.astype(np.float64) for k, v in case.consts.items()}
    w = (consts["w"] - consts["wz"].reshape(-1, 1, 1, 1)) * consts["ws"]
    assert relative_error(got, conv_vjp(seed.astype(np.float64), w, x.shape, [2, 2], [1, 1, 1, 1])) < 2e-6


# -- models quantized by onnxruntime's quantize_dynamic ---------------------------------------------
KINDS = ("matmul_chain", "gemm", "conv", "mlp")
X_SHAPES = {
    "matmul_chain": (3, 8),
    "gemm": (3, 8),
    "two_heads": (3, 8),
    "lstm": (5, 1, 3),
    "conv": (2, 3, 7, 7),
    "mlp": (4, 8),
}
N = helper.make_node


def _layers(kind: str, w) -> tuple[list, dict]:
    """The nodes and weights of each float network (``w(*shape)`` draws a weight)."""
    if kind == "matmul_chain":
        nodes = [N("MatMul", ["x", "w1"], ["h"]), N("MatMul", ["h", "w2"], ["y"])]
        return nodes, {"w1": w(8, 6), "w2": w(6, 4)}
    if kind == "two_heads":  # two products of one quantized input
        nodes = [
            N("MatMul", ["x", "w1"], ["a"]),
            N("MatMul", ["x", "w2"], ["b"]),
            N("Add", ["a", "b"], ["y"]),
        ]
        return nodes, {"w1": w(8, 4), "w2": w(8, 4)}
    if kind == "lstm":
        return [N("LSTM", ["x", "W", "R"], ["y"], hidden_size=4)], {"W": w(1, 16, 3), "R": w(1, 16, 4)}
    if kind == "gemm":
        return [N("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"w": w(5, 8), "b": w(5)}
    if kind == "conv":
        nodes = [
            N("Conv", ["x", "w1", "b1"], ["h"], strides=[2, 2], pads=[1, 1, 1, 1]),
            N("Conv", ["h", "w2"], ["y"], pads=[1, 1, 1, 1]),
        ]
        return nodes, {"w1": w(4, 3, 3, 3), "b1": w(4), "w2": w(2, 4, 3, 3)}
    nodes = [  # mlp: biases of +-2 keep every hidden unit clear of ReLU's kink
        N("MatMul", ["x", "w1"], ["h0"]),
        N("Add", ["h0", "b1"], ["h"]),
        N("Relu", ["h"], ["r"]),
        N("MatMul", ["r", "w2"], ["y0"]),
        N("Add", ["y0", "b2"], ["y"]),
    ]
    b1 = np.where(np.arange(16) % 3 == 0, -2.0, 2.0).astype(np.float32)
    return nodes, {"w1": w(8, 16) * 0.3, "b1": b1, "w2": w(16, 3), "b2": w(3)}


def float_model(kind: str) -> onnx.ModelProto:
    """A small float network with a free batch axis, its weights drawn from a fixed seed."""
    rng = np.random.default_rng(7)
    nodes, weights = _layers(kind, lambda *shape: rng.standard_normal(shape).astype(np.float32) / 2)
    x = ["N", *X_SHAPES[kind][1:]]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", F, x)],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model)


def quantized(kind: str, per_channel: bool, weight_type: QuantType, folder) -> onnx.ModelProto:
    path = folder / f"{kind}.onnx"
    quantize_dynamic(float_model(kind), path, per_channel=per_channel, weight_type=weight_type)
    return onnx.load(path)


def dequantized_weights(model: onnx.ModelProto) -> list[np.ndarray]:
    """Each integer product's weight ``(w_q - w_z) w_s`` in graph order, read off the initializers:
    ``w_s`` is the initializer of the Mul that forms the scale the product's Cast is multiplied by."""
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    reader = {i: n for n in model.graph.node for i in n.input}  # one reader per tensor in these models
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for product in (n for n in model.graph.node if n.op_type in ("MatMulInteger", "ConvInteger")):
        cast = reader[product.output[0]]
        mul = reader[cast.output[0]]
        scales = producer[next(i for i in mul.input if i != cast.output[0])]
        w_scale = next(inits[i] for i in scales.input if i in inits)
        w_q, w_zero = inits[product.input[1]], inits[product.input[3]]
        if product.op_type == "ConvInteger":  # per output channel, along axis 0
            w_scale, w_zero = (v.reshape((-1, 1, 1, 1)) if v.ndim else v for v in (w_scale, w_zero))
        found.append((w_q - w_zero) * w_scale)
    return found


def straight_through(kind: str, model: onnx.ModelProto, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The float64 gradient of each network with its dequantized weights, activations unrounded."""
    weights = dequantized_weights(model)
    if kind == "conv":
        w1, w2 = weights
        hidden = (x.shape[0], 4, 4, 4)
        return conv_vjp(conv_vjp(g, w2, hidden, [1, 1], [1] * 4), w1, x.shape, [2, 2], [1] * 4)
    if kind == "mlp":
        w1, w2 = weights
        b1 = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "b1")
        h = x @ w1 + b1
        assert np.abs(h).min() > 0.5  # no unit near the kink: rounding cannot flip a ReLU
        return ((g @ w2.T) * (h > 0)) @ w1.T
    for w in weights[::-1]:  # matmul_chain, gemm (quantize_dynamic stores Gemm's weight transposed)
        g = g @ w.T
    return g


def run_gradient(model: onnx.ModelProto, x: np.ndarray, seed: np.ndarray | None = None, rng=None):
    """The quantized model's output and the input gradient of its rewrite, on onnxruntime."""
    y = ort.InferenceSession(model.SerializeToString(), providers=CPU).run(["y"], {"x": x})[0]
    seed = rng.standard_normal(y.shape).astype(np.float32) if seed is None else seed
    rewritten = vjp_model(model, "y", ["x"])
    onnx.checker.check_model(rewritten, full_check=True)
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=CPU)
    return y, seed, session.run(["xai_grad/x"], {"x": x, "xai_seed": seed})[0]


@pytest.mark.parametrize("weight_type", [QuantType.QUInt8, QuantType.QInt8], ids=lambda t: t.name)
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("kind", KINDS)
def test_quantize_dynamic(kind, per_channel, weight_type, tmp_path):
    model = quantized(kind, per_channel, weight_type, tmp_path)
    ops = {n.op_type for n in model.graph.node}
    assert "DynamicQuantizeLinear" in ops and ops & {"MatMulInteger", "ConvInteger"}, ops
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, X_SHAPES[kind]).astype(np.float32)
    _, seed, got = run_gradient(model, x, rng=rng)
    want = straight_through(kind, model, x.astype(np.float64), seed.astype(np.float64))
    assert relative_error(got, want) < 1e-5, f"{kind}: {relative_error(got, want):.2e}"


def test_all_zero_input_keeps_the_gradient():
    """An input that is zero everywhere has no range: the spec's scale would be 0, onnxruntime writes
    1 and the reference evaluator 1/255; either way the gradient is the estimator's, not NaN."""
    model = vjp_model(build(CASES[0], 13, np.float32), "y", ["x"])
    x, seed = np.zeros((2, 4), np.float32), np.ones((2, 3), np.float32)
    want = table_reference(CASES[0], x.astype(np.float64), seed.astype(np.float64))
    for runtime in (ort.InferenceSession(model.SerializeToString(), providers=CPU), reference(model)):
        (got,) = runtime.run(["xai_grad/x"], {"x": x, "xai_seed": seed})
        assert relative_error(got, want) < 2e-6


# -- what is refused -----------------------------------------------------------------------------
def problems(model: onnx.ModelProto, output: str = "y") -> list[str]:
    with pytest.raises(UnsupportedModelError) as caught:
        vjp_model(model, output, ["x"])
    return caught.value.problems


def optimized(model: onnx.ModelProto, folder) -> onnx.ModelProto:
    """The model as onnxruntime's graph optimizer saves it (its fusions into com.microsoft ops)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=CPU)
    return onnx.load(options.optimized_model_filepath)


def test_fused_forms_are_refused_by_name(tmp_path):
    """onnxruntime's fused forms are com.microsoft ops: DynamicQuantizeMatMul (its optimizer on one
    quantized MatMul), MatMulIntegerToFloat (on MatMuls sharing a quantized input) and
    DynamicQuantizeLSTM (what quantize_dynamic writes for an LSTM): one line each, naming the op."""
    single = optimized(quantized("gemm", False, QuantType.QInt8, tmp_path), tmp_path)
    lstm = quantized("lstm", False, QuantType.QInt8, tmp_path)
    for model, op in ((single, "DynamicQuantizeMatMul"), (lstm, "DynamicQuantizeLSTM")):
        (line,) = problems(model)
        assert f"({op})" in line and "com.microsoft" in line, line
    found = problems(optimized(quantized("two_heads", False, QuantType.QInt8, tmp_path), tmp_path))
    assert len(found) == 2 and all("(MatMulIntegerToFloat)" in line for line in found), found


DQL = node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])
PRODUCT = [node("MatMulInteger", ["q", "w", "z", "wz"], "p"), node("Cast", ["p"], "pf", to="dtype")]
U8 = {"w": np.full((3, 2), 140, np.uint8), "wz": np.array(128, np.uint8), "z": np.array(128, np.uint8)}
MIXED = {  # the problem named -> the nodes and constants that break the convention
    "(DynamicQuantizeLinear): 'q' read by DequantizeLinear": (
        [DQL, node("DequantizeLinear", ["q", "s", "z"])],
        {},
    ),
    "(MatMulInteger): A not quantized by DynamicQuantizeLinear": (
        [node("QuantizeLinear", ["x", "s", "z"], "q"), *PRODUCT, node("Mul", ["pf", "s"])],
        {**U8, "s": SCALE},
    ),
    "(MatMulInteger): 'p' read by Add": (
        [
            DQL,
            PRODUCT[0],
            node("Add", ["p", "b"], "pb"),
            node("Cast", ["pb"], "pf", to="dtype"),
            node("Mul", ["pf", "s"]),
        ],
        {"w": U8["w"], "wz": U8["wz"], "b": np.array([5, -5], np.int32)},
    ),
}


@pytest.mark.parametrize("expected", MIXED)
def test_checks_refuse_what_breaks_the_convention(expected):
    """An integer read where its cotangent would stop or change units is refused, not dropped."""
    nodes, consts = MIXED[expected]
    found = problems(build(Case("mixed", nodes, {"x": (2, 3)}, consts), 13, np.float32))
    assert any(line.endswith(expected) for line in found), found


def test_batching_effect_is_measured(tmp_path):
    """Reported, not asserted: DynamicQuantizeLinear takes one scale per run, so a row's output and
    gradient depend on the rows batched with it. One row alone, then batched with rows 50x larger."""
    rng = np.random.default_rng(5)
    row, others = rng.uniform(-1, 1, (1, 8)), rng.uniform(-50, 50, (7, 8))
    batch = np.concatenate([row, others]).astype(np.float32)
    for kind in ("matmul_chain", "mlp"):
        model = quantized(kind, False, QuantType.QInt8, tmp_path)
        exact = ort.InferenceSession(float_model(kind).SerializeToString(), providers=CPU)
        alone_y, seed, alone_g = run_gradient(model, batch[:1], rng=rng)
        seeds = np.concatenate([seed, np.zeros((7, seed.shape[1]), np.float32)])
        batched_y, _, batched_g = run_gradient(model, batch, seeds)
        float_y = exact.run(["y"], {"x": batch[:1]})[0]
        print(
            f"\n{kind}: quantization alone changes the row's output by "
            f"{relative_error(alone_y, float_y):.1e}; "
            f"batching by {relative_error(batched_y[:1], alone_y):.1e} (output), "
            f"{relative_error(batched_g[:1], alone_g):.1e} (gradient), relative to the largest entry"
        )
        assert np.isfinite(batched_y).all() and np.isfinite(batched_g).all()
