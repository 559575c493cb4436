"""Language models exported with a cache: Optimum's merged decoder (an ``If`` on ``use_cache_branch``
joining the no-cache and the cached graphs) and a torch.onnx export that always takes past key
values. Greedy decoding runs on the cache (one token per run after the prompt) and gives torch's
``generate`` tokens; the attribution, on the full prefix, equals the no-cache file's; the inlined
no-cache branch computes what onnxruntime computes running the ``If``."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnx_xai
from onnx_xai.graph.branches import has_cache_branch, without_cache_branch
from onnx_xai.support.errors import ModelError

from .merged import _export, export_merged
from .test_generation import PROMPT, prompt_ids

CACHE = {"gpt2": (2, 16), "llama": (2, 8)}  # the tiny configs' key-value heads and head size


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def exports(request, tmp_path_factory):
    """The no-cache model, and its merged and always-cached exports in a folder with its tokenizer."""
    model = request.getfixturevalue(request.param)
    folder = tmp_path_factory.mktemp(f"{request.param}_cached")
    shutil.copy(model.folder / "tokenizer.json", folder)
    heads, size = CACHE[request.param]
    merged = export_merged(copy.deepcopy(model.net), 2, heads, size, folder)
    cached = folder / "with_past.onnx"
    _export(copy.deepcopy(model.net), 2, heads, size, True, cached)
    return model, {"merged": merged, "cached": cached}, request.param


@pytest.mark.parametrize("form", ["merged", "cached"])
def test_decoding_runs_on_the_cache_and_gives_torchs_tokens(exports, form):
    model, files, _ = exports
    ex = onnx_xai.Explainer(str(files[form]))
    lengths = []
    run = ex.predict_outputs
    ex.predict_outputs = lambda x, names, **feeds: lengths.append(x.shape[1]) or run(x, names, **feeds)
    r = ex.explain_generation(PROMPT, tokenizer=str(files[form].parent), max_new_tokens=5, method="gradient")
    with torch.no_grad():
        want = model.net.generate(torch.as_tensor([prompt_ids(model)]), max_new_tokens=5, do_sample=False)
    assert r.ids == want[0].tolist()
    assert lengths == [len(r.prompt_tokens)] + [1] * (len(r.generated_tokens) - 1)


@pytest.mark.parametrize("form", ["merged", "cached"])
@pytest.mark.parametrize("method", ["gradient", "occlusion"])
def test_the_attribution_is_the_no_cache_files(exports, form, method):
    model, files, _ = exports
    plain = onnx_xai.Explainer(str(model.folder / "model.onnx"))
    want = plain.explain_generation(PROMPT, max_new_tokens=3, method=method)
    ex = onnx_xai.Explainer(str(files[form]))
    got = ex.explain_generation(PROMPT, tokenizer=str(files[form].parent), max_new_tokens=3, method=method)
    assert got.ids == want.ids
    known = ~np.isnan(want.matrix)
    assert (np.isnan(got.matrix) == ~known).all()
    scale = np.abs(want.matrix[known]).max()
    assert np.abs(got.matrix[known] - want.matrix[known]).max() <= 1e-5 * scale
    np.testing.assert_allclose(got.step_scores, want.step_scores, rtol=1e-5)


def test_the_inlined_no_cache_branch_computes_what_the_if_computes(exports):
    model, files, family = exports
    merged = onnx.load(str(files["merged"]))
    assert has_cache_branch(merged)
    inlined = onnx.ModelProto()
    inlined.CopyFrom(merged)
    assert without_cache_branch(inlined) and not has_cache_branch(inlined)
    assert [i.name for i in inlined.graph.input] == ["input_ids", "attention_mask"]
    onnx.checker.check_model(inlined, full_check=True)
    ids = np.asarray([prompt_ids(model)], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    heads, size = CACHE[family]
    empty = {i.name: np.zeros((1, heads, 0, size), np.float32) for i in merged.graph.input[2:-1]}
    original = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    want = original.run(None, feeds | empty | {"use_cache_branch": np.array([False])})
    got = ort.InferenceSession(inlined.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    assert [o.name for o in inlined.graph.output] == [o.name for o in merged.graph.output]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_a_cache_whose_length_axis_cannot_be_told_is_refused(gpt2):
    from onnx import TensorProto, helper

    model = onnx.load(str(gpt2.folder / "model.onnx"))
    model.graph.input.append(helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, [1]))
    model.graph.output.append(helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT, [1]))
    model.graph.node.append(helper.make_node("Identity", ["past_key_values.0.key"], ["present.0.key"]))
    with pytest.raises(ModelError, match="expected one symbolic length axis"):
        onnx_xai.Explainer(model).explain_generation(PROMPT, tokenizer=str(gpt2.folder), max_new_tokens=1)


def test_the_cli_explains_an_optimum_folder_by_its_merged_file_and_inspect_names_the_cache(
    exports, tmp_path, capsys
):
    from onnx_xai.cli import main

    model, files, _ = exports
    folder = files["merged"].parent
    shutil.copy(model.folder / "model.onnx", folder / "decoder_model.onnx")  # Optimum's other halves
    shutil.copy(files["cached"], folder / "decoder_with_past_model.onnx")
    out = tmp_path / "out"
    assert main(["explain", str(folder), "--prompt", PROMPT, "--max-new-tokens", "2", "--out", str(out)]) == 0
    record = json.loads((out / "generation.json").read_text())
    want = onnx_xai.Explainer(str(model.folder / "model.onnx")).explain_generation(
        PROMPT, max_new_tokens=2, method=record["explanations"][0]["method"]
    )
    assert record["ids"] == want.ids
    matrix = np.array(
        [[np.nan if v is None else v for v in row] for row in record["explanations"][0]["matrix"]]
    )
    np.testing.assert_allclose(matrix, want.matrix, rtol=1e-5, atol=1e-7 * np.nanmax(np.abs(want.matrix)))
    capsys.readouterr()
    assert main(["inspect", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "decoder_model_merged.onnx: a tokens model" in said
    assert "cache: 4 past key-value inputs (past_key_values.0.key ...), chosen by use_cache_branch" in said
