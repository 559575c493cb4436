"""Generation explained: which prompt tokens (and earlier generated ones) made a causal language model
write each token it wrote (:func:`.explain.explain_generation`), greedy decoding with the ONNX file
(:mod:`.decode`, on the file's cache where it has one: :mod:`.cache`), and the scores of a step
(:mod:`.scores`)."""

from .explain import GenerationExplanation, explain_generation

__all__ = ["GenerationExplanation", "explain_generation"]
