"""``onnx-xai inspect``: the model as the rewriter sees it (inputs, layout, candidates, head, methods),
or the record of a model it already rewrote."""

from __future__ import annotations

import argparse
import json

from .options import add_model_choice


def add_parser(sub) -> None:
    ins = sub.add_parser(
        "inspect",
        help="show inputs, layout, target-layer candidates, head, "
        "supported methods and ops without a gradient rule",
        description="Describe a model as the rewriter sees it.",
    )
    ins.add_argument("model", help="ONNX model, or its export folder")
    ins.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_model_choice(ins)
    ins.set_defaults(run=run)


SCORE_KINDS = {
    "logit": "the output itself",
    "pre-softmax": "before the Softmax, or a linear classifier's SOFTMAX",
    "pre-sigmoid": "before the Sigmoid (multi-label), or a linear classifier's LOGISTIC",
    "pre-probit": "a linear classifier's margin, before its PROBIT",
    "margin": "the trees' margin, before their post-transform",
    "output": "the output as given: probabilities and all",
}


def run(args: argparse.Namespace) -> int:
    from ..runtime.report import inspect_model
    from ..text.files import model_file

    args.model = model_file(args.model)
    r = inspect_model(args.model, args.target_layer, args.input, args.output)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    if r["rewritten"]:
        return _print_rewrite(args.model, r)
    layout = f", input layout {r['layout']}" if r["layout"] else ""
    layout += f" ({r['layout_note']})" if r.get("layout_note") else ""
    print(f"{args.model}: a {r['kind']} model, opset {r['opset']}, {r['nodes']} nodes{layout}")
    for kind, key, mark in (
        ("input", "inputs", r["image_input"]),
        ("output", "outputs", r["explained_output"]),
    ):
        for t in r[key]:
            star = "  <- explained" if t["name"] == mark else ""
            facts = [f for f in (t.get("layout"), t.get("kind"), t.get("detector")) if f]
            shown = f"  ({', '.join(facts)})" if facts else ""
            print(f"  {kind:6s} {t['name']}  {t['shape']}  {t['type']}{shown}{star}")
    if r["differentiated"] != r["image_input"]:
        what, where = (
            ("ids", "their embedding") if r["kind"] == "tokens" else ("pixels", "their first float cast")
        )
        print(f"integer {what}: gradients are taken at {r['differentiated']!r}, {where}")
    if "text" in r:
        _print_text_files(r["text"])
    if "cache" in r:
        past, merged = r["cache"]["inputs"], r["cache"]["merged"]
        flag = ", chosen by use_cache_branch (a merged decoder)" if merged else ""
        print(
            f"cache: {len(past)} past key-value inputs ({past[0]} ...){flag}: generation runs on it; "
            "attributions run the full prefix without it"
        )
    moves = f", then {' -> '.join(r['score_moves'])} as the output" if r.get("score_moves") else ""
    print(f"score: {r['score']!r} ({SCORE_KINDS[r['score_kind']]}{moves})")
    if r.get("trees_unread"):
        print(f"  not the trees' margin: {r['trees_unread']}")
    print(f"target layer: {r['convention']}")
    if r["candidates"]:
        print("target-layer candidates (last first, * = default):")
    for c in r["candidates"]:
        print(
            f"  {'*' if c['name'] in r['target_layers'] else ' '} {c['name']}  {c['shape']}  "
            f"{_layout_words(c)}  ({c['op']})"
        )
    if len(r["scales"]) > 1:
        print(
            f"candidates per scale (grid at a {r['probe_size']}-pixel input; several: --target-layer A B C):"
        )
        for c in r["scales"]:
            print(f"    stride {c['stride']:g}  {c['grid'][0]}x{c['grid'][1]}  {c['name']}  ({c['op']})")
    print(
        f"head: {r['head']} (global average pooling -> linear: CAM applies)"
        if r["cam"]
        else f"head: {r['head']}"
    )
    _print_methods(r)
    if r.get("class_names"):
        names = r["class_names"]
        print(
            f"class names: {names['count']} from the model's metadata ({names['key']!r}: "
            f"{', '.join(names['first'])} ...)"
        )
    problems = r["not_differentiable"]
    print("nodes without a gradient rule: " + (", ".join(problems) if problems else "none"))
    return 0


def _print_methods(r: dict) -> None:
    """Which methods the model takes, and why the others are out."""
    from ..runtime.methods import METHOD_NAMES, REGISTRY

    def applies(m: str) -> bool:  # tree_shap: only where the trees are read back to the columns
        return r["kind"] in REGISTRY[m].kinds and (m != "tree_shap" or r["score_kind"] == "margin")

    if r["not_differentiable"]:
        forward = [m for m in METHOD_NAMES if REGISTRY[m].forward_only and applies(m)]
        on = "the trees' margin" if r["score_kind"] == "margin" else "the output itself"
        print(f"methods: {', '.join(forward)} only, on {on} (no gradient reaches the input)")
        return
    lrp_out = r.get("no_relevance_rule") or []
    methods = [
        m for m in METHOD_NAMES if (r["cam"] or m != "cam") and (m != "lrp" or not lrp_out) and applies(m)
    ]
    no_cam = "" if r["cam"] or r["kind"] != "image" else " (no CAM: the head is not GAP -> linear)"
    print(f"methods: {', '.join(methods)}{no_cam}")
    if lrp_out:
        shown = ", ".join(lrp_out[:3]) + (f" and {len(lrp_out) - 3} more" if len(lrp_out) > 3 else "")
        print(f"no lrp: LRP has no rule for {shown}")


def _print_text_files(found: dict) -> None:
    """The tokenizer beside a text encoder (or that there is none) and its class names."""
    tok = found["tokenizer"]
    if tok is None:
        print("tokenizer: none beside the model (explain --text needs --tokenizer PATH)")
    else:
        special = ", ".join(tok["special"]) or "none"
        print(f"tokenizer: {tok['path']} ({tok['model']}, {tok['vocabulary']} tokens; special: {special})")
    if found["labels"]:
        print(f"class names: {', '.join(found['labels'])} (config.json id2label)")


def _print_rewrite(path: str, report: dict) -> int:
    r = report["rewrite"]
    print(
        f"{path}: rewritten by onnx_xai (format {r['format']}) from a model with sha256 {r['source_sha256']}"
    )
    print(
        f"input: {r['input']} ({r.get('input_type', 'float')}, {r['layout']}); explained output: "
        f"{r['output']}, score {r['score']!r} ({SCORE_KINDS.get(r.get('score_kind'), 'logit')})"
    )
    for target in r.get("layers") or [r.get("target") or {"name": r["target_layer"], "layout": r["layout"]}]:
        print(f"target layer: {target['name']}  {_layout_words(target)}")
    seeded = r.get("objective") == "seed"
    print(f"objective: {'xai_seed (a weighted sum of the output)' if seeded else 'xai_target (a class)'}")
    print(f"output sets: {', '.join(r['output_sets'])}; outputs: {', '.join(r['outputs'])}")
    print(f"head: {r['head']}")
    return 0


def _layout_words(candidate: dict) -> str:
    if candidate["layout"] != "tokens":
        return candidate["layout"]
    if candidate["grid"] is None:
        return f"tokens (the grid of {candidate['grid_from']!r} at run time, the tokens before it dropped)"
    h, w = candidate["grid"]
    return f"tokens ({candidate['prefix']} dropped, {h}x{w} grid)"
