"""``audit`` on text encoders: ERASER's comprehensiveness and sufficiency per bin against a float64 torch
forward of the same model on the masked copies, the rankings (each method's scores with the seeded
tie order, the random baseline's seeded draws), occlusion beating the random ranking on a model whose
class rests on one known token, and the command line end to end: records and report as one set, its
one-line usage errors (exit 2) and a missing tokenizer (exit 1, nothing written); the report renders
in headless Chromium."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil

import numpy as np
import pytest
import torch

import onnx_xai
from onnx_xai.audit.features import RANDOM
from onnx_xai.audit.text_auditor import TextAuditOptions
from onnx_xai.audit.text_run import audit_texts
from onnx_xai.cli import main
from onnx_xai.text import TextTokenizer
from tests.inputs.test_any_input import Mlp
from tests.inputs.test_any_input import export as export_table
from tests.text.conftest import SPECIAL, WORDS, TextModel, export, wordpiece

from .test_report_browser import browse, console_errors

SEED = 3
TEXTS = ["the movie was great!", "i did not like playing it, <script>"]
LONG = {  # 21 to 38 scored tokens: five rationale sizes, within the tiny models' 40 positions
    "distilbert": "the script was good fun and i like the play , but a day of it was boring . "
    "not great , not bad",
    "roberta": "the movie was great and fun, a terrible, boring film",
}


class KeyToken(torch.nn.Module):
    """Class 1's logit is the first embedding dimension summed over the tokens: ``key``'s is 3, every
    other token's near 0, so the class rests on that one token."""

    def __init__(self, key: int):
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = torch.nn.Embedding(100, 4)
        self.head = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.embeddings.weight.mul_(0.05)
            self.embeddings.weight[key] = torch.tensor([3.0, 0, 0, 0])
            self.head.weight.copy_(torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))
            self.head.bias.zero_()

    def forward(self, input_ids, attention_mask):
        kept = self.embeddings(input_ids) * attention_mask.unsqueeze(-1).to(torch.float32)
        return self.head(kept.sum(1))


def read_records(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def expected_ranking(scores: np.ndarray, scored: np.ndarray, method: str, index: int) -> np.ndarray:
    """Scored positions, most relevant first: by score with a seeded jitter, or the random baseline's
    seeded uniform draws."""
    if method == RANDOM:
        return scored[np.argsort(-np.random.default_rng((SEED, index)).random(scored.size), kind="stable")]
    jitter = np.random.default_rng(SEED).random(scored.size)
    return scored[np.lexsort((jitter, -scores[scored]))]


def torch_probabilities(model: TextModel, ids: np.ndarray, mask: np.ndarray, target: int) -> np.ndarray:
    net = copy.deepcopy(model.net).double()
    with torch.no_grad():
        logits = net(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits
    return torch.softmax(logits, dim=-1)[:, target].numpy()


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_each_bin_is_erasers_definition_against_torch(family, request, tmp_path):
    model = request.getfixturevalue(family)
    texts = [*TEXTS, LONG[family]]
    opts = TextAuditOptions(methods=["gradient", "occlusion"], noise_seed=SEED)
    records = read_records(audit_texts(model.folder, texts, tmp_path / "out", opts)["results.jsonl"])
    ex = onnx_xai.Explainer(str(model.folder / "model.onnx"))
    tok = TextTokenizer.load(model.folder)
    batch = tok.encode(texts, ex.inputs, ex.input_name)
    scores = {m: ex.explain_text(texts, m).scores for m in opts.methods}
    mask = batch.feeds["attention_mask"].astype(np.int64)
    assert tok.mask_id is not None and tok.mask_id != tok.pad_id  # RoBERTa: <mask>, never <pad>
    assert len(records) == len(texts) * 3
    for r in records:
        i, n = r["index"], int(batch.lengths[r["index"]])
        scored = np.flatnonzero(~batch.special[i, :n])
        given = scores[r["method"]][i] if r["method"] != RANDOM else None
        order = expected_ranking(given, scored, r["method"], i)
        assert r["ranking"] == order.tolist() and r["scored_tokens"] == scored.size
        copies = [batch.ids[i].copy()]
        for k in r["bins"]:
            size = max(1, math.ceil(k * scored.size / 100))
            for removed in (order[:size], order[size:]):  # comprehensiveness, sufficiency
                copies.append(batch.ids[i].copy())
                copies[-1][removed] = tok.mask_id
        p = torch_probabilities(
            model, np.stack(copies), np.repeat(mask[i : i + 1], len(copies), 0), r["target"]
        )
        comprehensiveness, sufficiency = p[0] - p[1::2], p[0] - p[2::2]
        assert abs(r["probability"] - p[0]) < 1e-5
        assert np.abs(np.array(r["comprehensiveness_curve"]) - comprehensiveness).max() < 1e-5
        assert np.abs(np.array(r["sufficiency_curve"]) - sufficiency).max() < 1e-5
        assert abs(r["comprehensiveness"] - comprehensiveness.mean()) < 1e-5
        assert abs(r["sufficiency"] - sufficiency.mean()) < 1e-5
    long = [r for r in records if r["index"] == 2][0]
    assert long["bins"] == [1, 5, 10, 20, 50] and len(set(long["rationale_sizes"])) == 5
    assert long["protocol"]["removed_to"] == f"{tok.tokenizer.id_to_token(tok.mask_id)} (id {tok.mask_id})"


def test_occlusion_finds_the_one_token_the_class_rests_on(tmp_path):
    folder = tmp_path / "key"
    folder.mkdir()
    wordpiece(folder)
    export(
        KeyToken((SPECIAL + WORDS).index("great")).eval(),
        ["input_ids", "attention_mask"],
        folder / "model.onnx",
    )
    texts = [
        "i did not like it a great day",
        "the movie was great fun and a good play",
        "great , the script was bad",
        "a day i did not like , it was great",
    ]
    opts = TextAuditOptions(methods=["occlusion"], noise_seed=SEED)
    records = read_records(audit_texts(folder, texts, tmp_path / "out", opts)["results.jsonl"])
    occlusion = [r for r in records if r["method"] == "occlusion"]
    random = [r for r in records if r["method"] == RANDOM]
    assert all(r["target"] == 1 and r["probability"] > 0.9 for r in occlusion)
    for r in occlusion:  # "great" first: it carries the class at every bin
        assert r["ranking"][0] == texts[r["index"]].split().index("great") + 1
        assert min(r["comprehensiveness_curve"]) > 0.4 and max(r["sufficiency_curve"]) < 0.01
    comprehensiveness = [np.mean([r["comprehensiveness"] for r in rs]) for rs in (occlusion, random)]
    sufficiency = [np.mean([r["sufficiency"] for r in rs]) for rs in (occlusion, random)]
    assert comprehensiveness[0] > 0.45 and comprehensiveness[0] > comprehensiveness[1] + 0.3, (
        comprehensiveness
    )
    assert sufficiency[0] < 0 and sufficiency[0] < sufficiency[1] - 0.25, sufficiency


def test_the_command_line_writes_records_and_a_report(distilbert, tmp_path, capsys):
    out, texts = tmp_path / "out", tmp_path / "texts.txt"
    texts.write_text(f"{TEXTS[0]}\n\n{TEXTS[1]}\n")
    args = ["audit", str(distilbert.folder), "--text-file", str(texts), "--noise-seed", str(SEED)]
    assert main([*args, "--out", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "methods: integrated_gradients gradient (a text's default; --methods to choose)"
    assert re.fullmatch(r"baseline_random: comprehensiveness -?\d\.\d{3}, sufficiency -?\d\.\d{3}", said[3])
    assert said[-1] == f"wrote {out / 'results.jsonl'}, {out / 'report.html'}"
    records = read_records(out / "results.jsonl")
    assert [(r["index"], r["method"]) for r in records][:3] == [
        (0, "integrated_gradients"), (0, "gradient"), (0, RANDOM)
    ]  # fmt: skip
    assert records[0]["label"] in ("negative", "positive") and records[4]["text"] == TEXTS[1]
    report = (out / "report.html").read_text()
    assert "Comprehensiveness ↑" in report and "Sufficiency ↓" in report and report.count("<polyline") == 6
    assert "Model randomization not run: the sanity checks are not run for texts in this version." in report
    assert report.count('class="text"') == 2 and ">&lt;</span>" in report and "<script>," not in report
    assert main(["audit", str(distilbert.folder), "--text", "a day", "--methods", "occlusion", "--bins", "50",
                 "100", "--out", str(out)]) == 0  # fmt: skip
    records = read_records(out / "results.jsonl")
    assert [r["bins"] for r in records] == [[50, 100]] * 2 and records[0]["sufficiency_curve"][1] == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.jsonl"]
    capsys.readouterr()


def test_flags_for_photos_and_tables_and_bad_inputs_are_one_line(distilbert, tmp_path, capsys):
    folder = str(distilbert.folder)
    mlp = export_table(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(distilbert.folder / "model.onnx", alone / "model.onnx")
    cases = [
        (["--text", "hi", "--background", "b.csv"], 2, "--background is for photos and tables, not texts"),
        (["--text", "hi", "--boxes", "b.json"], 2, "--boxes is for photos and tables, not texts"),
        (["--text", "hi", "--curve-steps", "8"], 2, "--curve-steps is for photos and tables, not texts"),
        (["photo.jpg", "--text", "hi"], 2, "a text encoder explains --text or --text-file, not files"),
        ([], 2, "a text encoder explains texts: give --text TEXT or --text-file FILE"),
        (["--text", ""], 1, "text 0 has no token besides the special ones"),
    ]
    cases = [([folder, *args], status, message) for args, status, message in cases]
    cases += [
        (
            [mlp, "--text", "hi"],
            2,
            "--text and --text-file are for text encoders; this model's input is a table",
        ),
        ([mlp, "rows.csv", "--bins", "5"], 2, "--bins is for texts; this model's input is a table"),
        ([str(alone), "--text", "hi"], 1, "no tokenizer.json at"),
    ]
    for args, status, message in cases:
        assert main(["audit", *args, "--out", str(tmp_path / "o")]) == status, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as refused:  # argparse's own usage error
        main(["audit", folder, "--text", "hi", "--bins", "0", "--out", str(tmp_path / "o")])
    assert (
        refused.value.code == 2 and "argument --bins: must be in (0, 100], not 0" in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_the_report_renders_in_a_browser(distilbert, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["audit", str(distilbert.folder), "--text", TEXTS[1], "--methods", "occlusion", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    done = browse(out / "report.html", tmp_path, "--dump-dom")
    assert done.returncode == 0 and not console_errors(done.stderr), done.stderr[-2000:]
    assert 'data-images="0/0"' in done.stdout and done.stdout.count("<polyline") == 4
    tokens = re.findall(r'<span class="tok[^>]*>([^<]*)</span>', done.stdout)
    assert tokens == [
        "[CLS]",
        "i",
        "did",
        "not",
        "like",
        "play",
        "ing",
        "it",
        ",",
        "&lt;",
        "script",
        "&gt;",
        "[SEP]",
    ]
