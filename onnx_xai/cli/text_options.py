"""``onnx-xai explain`` on a text encoder: the flags that give texts and their tokenizer, the texts
read, explained and written (:mod:`onnx_xai.text.run`), and a line per text said.

A text encoder (integer token ids read by an embedding) explains ``--text`` and ``--text-file`` (``.txt``:
a text per line; ``.jsonl``: ``{"text": ...}`` per line); photos or rows given to one, or texts given to
another model, are usage errors. On a terminal each token is coloured by its score; in a pipe it is
written ``token(score)``. ``audit`` takes the same flags (without ``--words`` and ``--occlude-special``),
texts and usage checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..support.errors import InputError
from .options import UsageError, finite

PHOTO_AND_TABLE_FLAGS = (("background", "--background"), ("baselines", "--baselines"), ("smooth", "--smooth"))


def add_text_flags(p: argparse.ArgumentParser, explaining: bool = True) -> None:
    """The flags of a text encoder's texts (``explaining``: also how tokens are shown and scored)."""
    g = p.add_argument_group("text encoders (a model that takes token ids)")
    g.add_argument("--text", action="append", metavar="TEXT", help="a text to explain (repeat for several)")
    g.add_argument(
        "--text-file",
        metavar="FILE",
        help='texts to explain: .txt, one per line; .jsonl, {"text": ...} per line',
    )
    g.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="tokenizer.json, or a folder holding one (default: beside the model)",
    )
    if not explaining:  # audit: the rationales' sizes
        g.add_argument(
            "--bins",
            type=percent,
            nargs="+",
            metavar="K",
            help="the rationales' sizes, in percent of a text's tokens (default 1 5 10 20 50, as ERASER)",
        )
        return
    g.add_argument("--words", action="store_true", help="merge word pieces into words, summing their scores")
    g.add_argument(
        "--token",
        type=token_index_or_text,
        metavar="TOKEN",
        help="a model that labels every token: the token whose label is explained, its index or its text",
    )
    g.add_argument(
        "--occlude-special",
        action="store_true",
        help="make special tokens ([CLS], [SEP], <s> ...) features too (default: shown, not scored)",
    )


def token_index_or_text(text: str) -> int | str:
    """argparse type: a token's index (an integer) or its text."""
    try:
        return int(text)
    except ValueError:
        return text


def percent(text: str) -> float:
    """argparse type: a number in (0, 100]."""
    value = finite(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be in (0, 100], not {text}")
    return value


def text_asked(args: argparse.Namespace) -> bool:
    return bool(args.text or args.text_file)


def run_text(args: argparse.Namespace, ex) -> int:
    """Explain the texts the flags give with a text encoder (module docstring)."""
    from ..objectives.labels import parse_target, read_labels
    from ..support.files import sha256_of
    from ..text.explain import class_names
    from ..text.run import RECORDS, REPORT, TextOptions, explain_texts
    from ..text.tokenizer import TextTokenizer

    check_text_usage(args, ex)
    texts = given_texts(args)
    tokenizer = TextTokenizer.load(args.tokenizer or args.model)
    labels = read_labels(args.labels, ex.num_classes) if args.labels else class_names(ex, tokenizer)
    if labels and not args.labels and tokenizer.labels == labels:
        print(f"class names: {len(labels)} from {Path(tokenizer.path or args.model).parent / 'config.json'}")
    opts = TextOptions(
        methods=args.method or ["integrated_gradients"],
        objective=parse_target(args.target, labels, ex.num_classes),
        words=args.words,
        occlude_special=args.occlude_special,
        labels=labels,
        batch_size=args.batch_size,
        noise_seed=args.noise_seed,
        steps=args.steps,
        token=args.token,
    )
    out = Path(args.out)
    found = explain_texts(ex, texts, tokenizer, out, opts, sha256_of(args.model))
    _say(found, sys.stdout.isatty())
    counted = f"{len(texts)} text{'s' if len(texts) != 1 else ''}"
    print(f"{counted}, {', '.join(e.method for e in found)} -> {out / RECORDS}/*.json, {out / REPORT}")
    return 0


def given_texts(args: argparse.Namespace) -> list[str]:
    """The texts of ``--text`` and ``--text-file``, in that order."""
    return (args.text or []) + (read_texts(args.text_file) if args.text_file else [])


def check_text_usage(args: argparse.Namespace, ex, refused=PHOTO_AND_TABLE_FLAGS) -> None:
    """Texts for a text encoder only, and nothing else for it: a flag of ``refused`` (``(dest, flag)``)
    given a value other than its default (``args.flag_defaults``, else None) is a usage error."""
    if ex.kind != "tokens":
        if text_asked(args):
            raise UsageError(
                f"--text and --text-file are for text encoders; this model's input is a {ex.kind}"
            )
        return
    if args.images:
        raise UsageError(f"a text encoder explains --text or --text-file, not files ({args.images[0]})")
    if not text_asked(args):
        raise UsageError("a text encoder explains texts: give --text TEXT or --text-file FILE")
    defaults = getattr(args, "flag_defaults", {})
    for name, flag in refused:
        value = getattr(args, name, None)
        if value not in (None, False) and value != defaults.get(name):
            raise UsageError(f"{flag} is for photos and tables, not texts")


def read_texts(path: str) -> list[str]:
    """The texts of a ``.txt`` (one per non-blank line) or ``.jsonl`` (``{"text": ...}`` per line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    texts: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not path.endswith(".jsonl"):
            texts.append(line.strip())
            continue
        try:
            found = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}, line {number}: not JSON ({exc})") from None
        if not isinstance(found, dict) or not isinstance(found.get("text"), str):
            raise InputError(f'{path}, line {number}: want {{"text": "..."}}')
        texts.append(found["text"])
    if not texts:
        raise InputError(f"{path} holds no text")
    return texts


def _say(found, colours: bool) -> None:
    """A line per text and method: the class explained, its score, the tokens by their scores."""
    from ..text.page import printable, terminal_line

    first = found[0]
    for i in range(len(first.texts)):
        name = printable(first.labels[i]) if first.labels[i] is not None else f"class {int(first.targets[i])}"
        if first.positions is not None:
            name = f"{printable(first.shown(i)[first.positions[i]])!r} is {name}"
        cut = " (truncated)" if first.truncated and first.truncated[i] else ""
        for e in found:
            line = terminal_line(e, i, colours)
            print(f"{i}: {name} ({float(first.target_scores[i]):.4g}){cut} {e.method}: {line}")
