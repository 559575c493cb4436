"""A tiny Llama-style model whose attention is fused by hand into onnxruntime's RotaryEmbedding and
GroupQueryAttention (layer 0 rotating before the attention, layer 1 inside it) and whose second MLP
runs in 4-bit MatMulNBits, explained against float64 torch autograd of the same weights (the torch
model takes the dequantized weights)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx_xai

from .test_contrib_decoder import FLOAT, INT64, MS, _packed


def _quantized(w, block=16):
    """A torch weight [N, K] as MatMulNBits' 4-bit constants (asymmetric, per block of K), and the
    weight they stand for."""
    n, k = w.shape
    blocks = w.reshape(n, k // block, block)
    low, high = np.minimum(blocks.min(-1), 0), np.maximum(blocks.max(-1), 0)
    scale = ((high - low) / 15).astype(np.float32)
    zero = np.clip(np.round(-low / scale), 0, 15).astype(np.int64)
    q = np.clip(np.round(blocks / scale[..., None]) + zero[..., None], 0, 15).astype(np.int64)
    consts = {
        "B": _packed(q.reshape(n, -1), 4).reshape(n, k // block, -1),
        "scales": scale,
        "zp": _packed(zero, 4),
    }
    return consts, ((q - zero[..., None]) * scale[..., None].astype(np.float64)).reshape(n, k)


class _Fused:
    """The ONNX graph of a LlamaForCausalLM with its attention fused as onnxruntime's tools fuse it:
    layer 0 turns Q and K by RotaryEmbedding before GroupQueryAttention, layer 1 rotates inside it
    (``do_rotary``) and runs its MLP in MatMulNBits (4 bits; :attr:`dequantized` holds the weights the
    torch model must take to be the same model)."""

    def __init__(self, net):
        self.net, self.config = net, net.config
        self.weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
        self.nodes, self.inits, self.dequantized = [], {}, {}
        angles = np.arange(64)[:, None] * net.model.rotary_emb.inv_freq.double().numpy()[None]
        self.inits |= {"cos": np.cos(angles), "sin": np.sin(angles), "start": np.array([0], np.int64)}
        self.inits |= {"emb": self.weights["model.embed_tokens.weight"], "one": np.array(1, np.int64)}
        self._lengths()
        h = self._node("Gather", ["emb", "input_ids"], "h0")
        for layer in range(self.config.num_hidden_layers):
            h = self._layer(layer, h)
        self._linear(self._norm(h, "model.norm.weight", "final"), "lm_head.weight", "logits")

    def _node(self, op_type, inputs, out, domain="", **attrs):
        self.nodes.append(onnx.helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def _lengths(self):
        """seqlens_k (length - 1 per row) and total_sequence_length from the ids' shape."""
        shape = self._node("Shape", ["input_ids"], "ids_shape")
        length = self._node("Gather", [shape, "one"], "length")
        self._node("Cast", [length], "total", to=onnx.TensorProto.INT32)
        rows = self._node("Slice", [shape, "start", self._const("second", np.array([1], np.int64))], "rows")
        last = self._node("Expand", [self._node("Sub", [length, "one"], "last"), rows], "lasts")
        self._node("Cast", [last], "seqlens", to=onnx.TensorProto.INT32)

    def _const(self, name, value):
        self.inits[name] = value
        return name

    def _norm(self, x, key, name):
        eps = self.config.rms_norm_eps
        return self._node(
            "SimplifiedLayerNormalization", [x, self._const(key, self.weights[key])], name, epsilon=eps
        )

    def _linear(self, x, key, out, quantize=False):
        if not quantize:
            return self._node("MatMul", [x, self._const(key, self.weights[key].T.copy())], out)
        consts, self.dequantized[key] = _quantized(self.weights[key])
        names = [self._const(f"{key}.{part}", value) for part, value in consts.items()]
        n, k = self.weights[key].shape
        return self._node("MatMulNBits", [x, *names], out, MS, K=k, N=n, bits=4, block_size=16)

    def _layer(self, i, h):
        p = f"model.layers.{i}."
        x = self._norm(h, p + "input_layernorm.weight", f"x{i}")
        q, k, v = (self._linear(x, p + f"self_attn.{t}_proj.weight", f"{t}{i}") for t in "qkv")
        heads = {
            "num_heads": self.config.num_attention_heads,
            "kv_num_heads": self.config.num_key_value_heads,
        }
        if i == 0:
            q, k = (
                self._node("RotaryEmbedding", [t, "start", "cos", "sin"], f"{t}_turned", MS) for t in (q, k)
            )
            attention = self._node(
                "GroupQueryAttention", [q, k, v, "", "", "seqlens", "total"], f"att{i}", MS, **heads
            )
        else:
            inputs = [q, k, v, "", "", "seqlens", "total", "cos", "sin"]
            attention = self._node("GroupQueryAttention", inputs, f"att{i}", MS, do_rotary=1, **heads)
        r = self._node("Add", [h, self._linear(attention, p + "self_attn.o_proj.weight", f"o{i}")], f"r{i}")
        y = self._norm(r, p + "post_attention_layernorm.weight", f"y{i}")
        gate, up = (
            self._linear(y, p + f"mlp.{t}_proj.weight", f"{t}{i}", quantize=i == 1) for t in ("gate", "up")
        )
        silu = self._node("Mul", [gate, self._node("Sigmoid", [gate], f"sg{i}")], f"silu{i}")
        act = self._node("Mul", [silu, up], f"act{i}")
        return self._node(
            "Add",
            [r, self._linear(act, p + "mlp.down_proj.weight", f"down{i}", quantize=i == 1)],
            f"h{i + 1}",
        )

    def model(self) -> onnx.ModelProto:
        tensors = [
            onnx.numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k)
            for k, v in self.inits.items()
        ]
        ids = onnx.helper.make_tensor_value_info("input_ids", INT64, ["N", "T"])
        logits = onnx.helper.make_tensor_value_info("logits", FLOAT, ["N", "T", self.config.vocab_size])
        graph = onnx.helper.make_graph(self.nodes, "llama", [ids], [logits], tensors)
        imports = [onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid(MS, 1)]
        return onnx.helper.make_model(graph, opset_imports=imports, ir_version=10)


def _float64_llama(monkeypatch):
    """Hugging Face's Llama keeps its RMSNorm and rotary angles in float32 even in a float64 model:
    both are computed in the model's type here, so that the reference is float64 throughout."""
    import torch
    from transformers.models.llama import modeling_llama as llama

    def rms_norm(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def rotary(self, x, position_ids):
        freqs = position_ids[..., None].to(torch.float64) * self.inv_freq.to(torch.float64)
        angles = torch.cat((freqs, freqs), -1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    monkeypatch.setattr(llama.LlamaRMSNorm, "forward", rms_norm)
    monkeypatch.setattr(llama.LlamaRotaryEmbedding, "forward", rotary)


def test_a_fused_llama_is_explained_as_float64_autograd(monkeypatch):
    torch, hf = pytest.importorskip("torch"), pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = hf.LlamaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, attn_implementation="eager",
    )  # fmt: skip
    net = hf.LlamaForCausalLM(config).eval()
    fused = _Fused(net)
    with torch.no_grad():
        for key, weight in fused.dequantized.items():
            net.get_parameter(key).copy_(torch.as_tensor(weight))
    ops = {node.op_type for node in fused.nodes}
    assert {"GroupQueryAttention", "RotaryEmbedding", "MatMulNBits"} <= ops
    rng = np.random.default_rng(1)
    ids, seed = rng.integers(0, 100, (1, 7)), rng.standard_normal((1, 7, 100))
    got = onnx_xai.Explainer(fused.model()).input_gradient(ids, objective=seed.astype(np.float32))
    _float64_llama(monkeypatch)
    net = net.double()
    embeds = net.model.embed_tokens(torch.as_tensor(ids)).detach().requires_grad_(True)
    (torch.as_tensor(seed) * net(inputs_embeds=embeds).logits).sum().backward()
    want = embeds.grad.numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
