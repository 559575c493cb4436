"""Which graphs a model is rewritten into: the key of each session (:class:`GraphKey`: its output
sets, its objective's input, an LRP graph's composite, whether it is fed at its point), the tiers of
output sets an original model's graphs hold (:data:`TIERS`, cheapest first) and the memory modes
that decide how many of them are held (:mod:`.sessions` builds them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..graph.contract import OUTPUT_SETS

FORWARD = "forward"


@dataclass(frozen=True)
class GraphKey:
    """Which graph a session runs: the output sets it gives (none: the model's own forward), whether
    it takes a seed (``xai_seed``) or a class (``xai_target``), for an LRP graph its composite, and
    whether it is fed at its point (ids' embedding given as ``xai_point``: :mod:`onnx_xai.graph.point`)."""

    sets: tuple[str, ...] = ()
    seeded: bool = False
    composite: object = None
    fed: bool = False


FORWARD_KEY = GraphKey()
# The graphs an original model is rewritten into, cheapest first: a request is served by the first
# that holds every output set it needs (the whole set as a last resort). A graph costs its most
# expensive set (runtimes execute every node whatever is fetched): the light one about a forward
# (ResNet-50: 1.0-1.15x), the others a full backward more. Few graphs, few copies of the weights:
# each session holds its own reordered convolution kernels (the weights themselves are shared).
MEMORY_MODES = ("fast", "lean")
TIERS = (
    ("activation", "cam", "gradcam", "embedding"),
    ("activation", "cam", "gradcam", "input_grad", "embedding"),
    ("activation", "cam", "gradcam", "guided"),
    ("activation", "cam", "gradcam", "deconv"),
    tuple(s for s in OUTPUT_SETS if s not in ("relevance", "deeplift", "fullgrad")),  # LRP: relevance()
    ("deeplift",),  # on a batch of inputs and references: a graph of its own
    ("fullgrad",),  # a sweep to every bias layer: a graph of its own
)
SEPARATE = (("deeplift",), ("fullgrad",))  # graphs that never join another, lean or not


def fixed_batch(shape) -> bool:
    """Whether an input's declared shape fixes its batch size."""
    return len(shape) > 1 and isinstance(shape[0], int)


def predicts(key: GraphKey) -> bool:
    """Whether a built graph can serve predictions: a class-objective graph of a tier, not the
    DeepLIFT graph (it runs on pairs of samples) nor an LRP graph."""
    return (
        bool(key.sets)
        and not key.seeded
        and key.composite is None
        and not key.fed
        and key.sets != ("deeplift",)
    )
