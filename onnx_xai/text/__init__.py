"""Text: token attributions for text encoders exported with integer ids, with their tokenizer.

:func:`explain_text` (also :meth:`onnx_xai.Explainer.explain_text`) explains texts token by token and
returns a :class:`TextExplanation` (tokens, scores, classes, an HTML page); :mod:`.run` writes a
record per text and the page as one set, for the command line. The tokenizer comes from Hugging
Face's ``tokenizers`` (the ``text`` extra), imported only when one is loaded.
"""

from .explain import TextExplanation, baseline_ids, explain_text
from .tokenizer import Encoded, TextTokenizer

__all__ = ["Encoded", "TextExplanation", "TextTokenizer", "baseline_ids", "explain_text"]
