"""``onnx-xai explain`` on a causal language model: ``--prompt``, generation and its attribution written
as ``generation.json`` and ``generation.html`` (:mod:`onnx_xai.generation.page`), and a line per
generated token said.

``--prompt TEXT`` (with ``--max-new-tokens K``, 10 by default, or ``--targets TEXT`` to explain a given
continuation) explains each generated token with each ``--method`` (default ``input_x_gradient``,
said); ``--score`` is what a token's score is (``probability``, ``logit``, ``log_probability``) and
``--contrast TEXT`` scores each token against that text's tokens. The JSON holds the prompt, the
tokens, and per method the score, the matrix (``null`` after each step's prefix), each step's score
and the token a removed token became. Both files are written as one set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .options import UsageError, at_least

GENERATION = "generation"


def add_generation_flags(p: argparse.ArgumentParser) -> None:
    from ..generation.scores import SCORES

    g = p.add_argument_group("language models (a generation explained token by token)")
    g.add_argument("--prompt", metavar="TEXT", help="the prompt to generate from and explain")
    g.add_argument("--max-new-tokens", type=at_least(1), default=10, metavar="K", help="default 10")
    g.add_argument("--targets", metavar="TEXT", help="explain this continuation instead of generating one")
    g.add_argument(
        "--score", choices=SCORES, default="probability", help="a token's score (default probability)"
    )
    g.add_argument("--contrast", metavar="TEXT", help="score each token against this text's tokens")


def run_generation(args: argparse.Namespace, ex) -> int:
    """Generate from ``--prompt`` and explain each token with each method (module docstring)."""
    from ..generation import explain_generation
    from ..generation.page import generation_page
    from ..support.files import commit_set, output_folder, sha256_of
    from ..text.tokenizer import TextTokenizer

    if args.images or args.text or args.text_file:
        raise UsageError("--prompt explains a generation; give no files or --text with it")
    if ex.kind != "tokens":
        raise UsageError(f"--prompt is for language models; this model's input is a {ex.kind}")
    tokenizer = TextTokenizer.load(args.tokenizer or args.model)
    methods = args.method or ["input_x_gradient"]
    if not args.method:
        print("methods: input_x_gradient (--method to choose)")
    found: list = []
    for method in dict.fromkeys(methods):  # one generation: the first method's, explained by each
        targets = args.targets if not found else found[0].ids[len(found[0].prompt_tokens) :]
        found.append(
            explain_generation(
                ex,
                args.prompt,
                tokenizer,
                args.max_new_tokens,
                method,
                score=args.score,
                targets=targets,
                contrast=args.contrast,
                **_options(method, args),
            )  # fmt: skip
        )
    sha256 = sha256_of(args.model)
    record = json.dumps(_record(found, sha256), indent=1, ensure_ascii=False)
    page = generation_page(found, model=f"sha256 {sha256}")
    writers = {
        f"{GENERATION}.json": lambda path: path.write_text(record, encoding="utf-8"),
        f"{GENERATION}.html": lambda path: path.write_text(page, encoding="utf-8"),
    }
    out = Path(args.out)
    commit_set(output_folder(out), writers, [])
    _say(found[0])
    print(f"{len(found[0].generated_tokens)} tokens, {', '.join(methods)} -> {out}/{GENERATION}.json, .html")
    return 0


def _options(method: str, args: argparse.Namespace) -> dict:
    from ..runtime.methods import options_for

    return options_for([method], args.noise_seed, args.steps)


def _record(found, sha256: str) -> dict:
    first = found[0]
    return {
        "prompt": first.prompt,
        "model_sha256": sha256,
        "prompt_tokens": first.prompt_tokens,
        "generated_tokens": first.generated_tokens,
        "ids": first.ids,
        "explanations": [e.method_record() for e in found],
    }


def _say(e) -> None:
    """Each generated token with the three tokens that counted most for it."""
    from ..generation.page import shown_token
    from ..text.page import printable

    print(f"prompt: {printable(e.prompt)}")
    for k, token in enumerate(e.generated_tokens):
        row = np.nan_to_num(e.matrix[k], nan=0.0)
        top = np.argsort(-(row if e.signed else np.abs(row)), kind="stable")[:3]
        most = ", ".join(f"{printable(shown_token(e.tokens[j]))!r} {row[j]:+.3g}" for j in top)
        print(f"{k}: {printable(shown_token(token))!r} ({e.score} {float(e.step_scores[k]):.3g}): {most}")
