"""A causal language model exported the way Optimum's merged decoder is written: a no-cache graph
(the prompt's first run) and a with-cache graph (each next token), both exported by torch.onnx with
the cache as flat ``past_key_values.{i}.key|value`` inputs and ``present.{i}.key|value`` outputs, joined
by one ``If`` on a ``use_cache_branch`` input, with the weights they share stored once in the outer
graph (deduplicated by content, as Optimum's ``merge_decoders`` does)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper

NAMES = ("key", "value")


class Decoder(torch.nn.Module):
    """ids, mask and the flat cache in; logits and the flat new cache out."""

    def __init__(self, net, layers: int):
        super().__init__()
        self.net, self.layers = net, layers

    def forward(self, ids, mask, *past):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(len(past) // 2):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.net(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        flat = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
        return (out.logits, *flat)


def _export(net, layers: int, heads: int, size: int, with_past: bool, path: Path) -> onnx.ModelProto:
    cache = [f"past_key_values.{i}.{k}" for i in range(layers) for k in NAMES] if with_past else []
    present = [f"present.{i}.{k}" for i in range(layers) for k in NAMES]
    past = [torch.randn(1, heads, 3, size) for _ in cache]
    ids = torch.ones(1, 2 if with_past else 6, dtype=torch.int64)
    mask = torch.ones(1, ids.shape[1] + (3 if with_past else 0), dtype=torch.int64)
    axes = {"input_ids": {0: "N", 1: "T"}, "attention_mask": {0: "N", 1: "S"}, "logits": {0: "N", 1: "T"}}
    axes |= {n: {0: "N", 2: "P"} for n in cache} | {n: {0: "N", 2: "S"} for n in present}
    torch.onnx.export(
        Decoder(net, layers), (ids, mask, *past), str(path), dynamo=False, opset_version=17,
        input_names=["input_ids", "attention_mask", *cache], output_names=["logits", *present],
        dynamic_axes=axes,
    )  # fmt: skip
    return onnx.load(str(path))


def export_merged(net, layers: int, heads: int, size: int, folder: Path) -> Path:
    """``folder/decoder_model_merged.onnx`` of ``net`` (``heads`` cache heads of ``size``)."""
    plain = _export(net, layers, heads, size, False, folder / "merging_no_past.onnx")
    cached = _export(net, layers, heads, size, True, folder / "merging_with_past.onnx")
    (folder / "merging_no_past.onnx").unlink()
    (folder / "merging_with_past.onnx").unlink()
    shared = _share_weights([plain.graph, cached.graph])
    branches = [_branch(g, f"{side}_") for g, side in ((cached.graph, "with_past"), (plain.graph, "no_past"))]
    flag = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    merged = helper.make_node(
        "If", ["use_cache_branch"], [o.name for o in plain.graph.output], name="optimum::if",
        then_branch=branches[0], else_branch=branches[1],
    )  # fmt: skip
    graph = helper.make_graph(
        [merged], "merged", [*cached.graph.input, flag], list(cached.graph.output), shared
    )
    model = helper.make_model(graph, opset_imports=list(cached.opset_import), ir_version=cached.ir_version)
    path = folder / "decoder_model_merged.onnx"
    onnx.save(model, str(path))
    return path


def _share_weights(graphs) -> list[onnx.TensorProto]:
    """The graphs' initializers stored once (by content), each graph's uses renamed to the kept one."""
    kept: dict[bytes, onnx.TensorProto] = {}
    for graph in graphs:
        renamed = {}
        for tensor in graph.initializer:
            digest = hashlib.sha256(tensor.SerializeToString(deterministic=True).replace(
                tensor.name.encode(), b"")).digest()  # fmt: skip
            if digest not in kept:
                copy = onnx.TensorProto()
                copy.CopyFrom(tensor)
                copy.name = f"shared_{len(kept)}"
                kept[digest] = copy
            renamed[tensor.name] = kept[digest].name
        del graph.initializer[:]
        for node in graph.node:
            node.input[:] = [renamed.get(n, n) for n in node.input]
    return list(kept.values())


def _branch(graph: onnx.GraphProto, prefix: str) -> onnx.GraphProto:
    """``graph`` as an ``If`` branch: no inputs (it reads the outer graph's), its own values prefixed
    so that they cannot clash with the other branch's, its outputs as they were."""
    outputs = {o.name for o in graph.output}
    inner = {out for node in graph.node for out in node.output if out and out not in outputs}
    for node in graph.node:
        node.input[:] = [prefix + n if n in inner else n for n in node.input]
        node.output[:] = [prefix + n if n in inner else n for n in node.output]
        node.name = prefix + node.name
    return helper.make_graph(list(graph.node), graph.name, [], list(graph.output))
