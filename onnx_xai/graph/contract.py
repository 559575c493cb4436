"""The contract between the rewritten model and whoever runs it: names, output sets and the record.

The graph layer writes it, the runtime reads it, plain-onnxruntime users rely on it; every name lives
here once and this module imports neither onnx nor onnxruntime.

- Inputs added to the model: :data:`TARGET` (int64 ``[N]``, the class per sample, -1 = top-1) for
  the ``class`` objective, or :data:`SEED` (float32, the explained output's shape) for the ``seed``
  objective: the score is then sum(seed * output) per sample (a segmentation mask, one detection
  candidate, a region of a dense map). A rewrite has one of the two. A rewrite *fed at its point*
  (integer ids explained at their embedding) also takes :data:`POINT`, the embedding itself, in place
  of the lookup that reads it from the ids (the ids are still fed for what else reads them).
- Outputs added (float32 whatever the model's float type), grouped in *output sets*, each a pruned
  graph (runtimes execute every node of a graph whatever is fetched): see :data:`OUTPUT_SETS`.
  Every set also gives :data:`SCORE` and, for the class objective, :data:`TARGET_USED`. With several
  target layers, the per-layer outputs (:data:`LAYER_OUTPUTS`) repeat per layer, suffixed ``_1``,
  ``_2`` ... after the first (:func:`layer_output`).
- The record stored in ``metadata_props[METADATA_KEY]``: :class:`RewriteRecord`, JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

TARGET = "xai_target"
SEED = "xai_seed"
SCORE = "xai_score"
TARGET_USED = "xai_target_used"
ACTIVATION = "xai_activation"
ACTIVATION_GRAD = "xai_activation_grad"
GRADCAM = "xai_gradcam"
CAM = "xai_cam"
INPUT_GRAD = "xai_input_grad"
GUIDED_INPUT_GRAD = "xai_guided_input_grad"
DECONV_INPUT_GRAD = "xai_deconv_input_grad"
RELEVANCE = "xai_relevance"
DEEPLIFT = "xai_deeplift"
FULLGRAD = "xai_fullgrad"  # FullGrad's per-layer maps, xai_fullgrad_1 ..., one per bias layer
FULLGRAD_INPUT = "xai_fullgrad_input"
EMBEDDING = "xai_embedding"  # the explained point's value: ids' embedding
POINT = "xai_point"  # the input of a rewrite fed at its point, in place of the embedding lookup
METADATA_KEY = "onnx_xai"
FORMAT = 2

# Output set -> the outputs it adds besides SCORE and TARGET_USED, in contract order.
OUTPUT_SETS: dict[str, tuple[str, ...]] = {
    "score": (),  # the score alone: the forward-only methods' graph where there is no target layer
    "activation": (ACTIVATION,),
    "cam": (ACTIVATION, CAM),
    "gradcam": (ACTIVATION, ACTIVATION_GRAD, GRADCAM),
    "input_grad": (INPUT_GRAD,),
    "guided": (GUIDED_INPUT_GRAD,),
    "deconv": (DECONV_INPUT_GRAD,),
    "relevance": (RELEVANCE,),  # LRP, by the composite the rewrite names (record.composite)
    "deeplift": (DEEPLIFT,),  # DeepLIFT's multipliers of a batch [x; x_ref] (the first half seeded)
    "fullgrad": (FULLGRAD_INPUT,),  # and xai_fullgrad_1 ... (as many as the model has bias layers)
    "embedding": (EMBEDDING,),  # the point's value, where ids are explained at their embedding
}
DEFAULT_SETS = ("cam", "gradcam", "input_grad")  # what `augment` writes unless told otherwise
LAYER_OUTPUTS = (ACTIVATION, ACTIVATION_GRAD, GRADCAM)  # one of each per target layer
LAYERED_SETS = ("activation", "cam", "gradcam")  # the sets that read a target layer
NUMBERED = {"fullgrad": FULLGRAD}  # sets that also give one output per layer found at rewrite, _1, _2 ...


def layer_output(name: str, layer: int) -> str:
    """The name of a per-layer output for the ``layer``-th target layer: ``xai_activation`` for the
    first, ``xai_activation_1`` for the second, and so on."""
    return name if layer == 0 else f"{name}_{layer}"


def numbered_outputs(output_set: str, given: set[str]) -> list[str]:
    """The outputs of ``given`` (a graph's output names) that ``output_set`` numbers per layer
    found at rewrite time (:data:`NUMBERED`: FullGrad's ``xai_fullgrad_1`` ...), in layer order."""
    if output_set not in NUMBERED:
        return []
    prefix = NUMBERED[output_set] + "_"
    found = [n for n in given if n.startswith(prefix) and n[len(prefix) :].isdigit()]
    return sorted(found, key=lambda n: int(n[len(prefix) :]))


def outputs_of(output_set: str, layers: int = 1) -> tuple[str, ...]:
    """The outputs an output set adds for a rewrite with ``layers`` target layers, in contract order."""
    names = OUTPUT_SETS[output_set]
    shared = tuple(n for n in names if layers or n not in LAYER_OUTPUTS)  # the first layer's, or none
    return shared + tuple(layer_output(n, k) for k in range(1, layers) for n in names if n in LAYER_OUTPUTS)


@dataclass(frozen=True)
class LayerView:
    """The target layer and how it reads as channels-first activations ``[N, K, h, w]``.

    ``layout`` is a permutation of ``"NCHW"`` for 4-D tensors, or ``"tokens"`` for a token sequence
    ``[N, prefix + h*w, C]`` of which the first ``prefix`` tokens are dropped and the rest laid on
    the ``grid`` (h, w). A grid known only at run time (position embeddings resized to the input) is
    read then from the patch embedding ``grid_from`` (its h x w; the tokens before the last h*w are
    dropped), ``grid`` and ``prefix`` None. ``sequence_first``: the tokens are ``[T, N, C]``.
    """

    name: str
    layout: str
    prefix: int | None = 0
    grid: tuple[int, int] | None = None
    grid_from: str | None = None
    sequence_first: bool = False  # tokens laid out [T, N, C] (OpenAI CLIP's blocks), not [N, T, C]

    def describe(self) -> dict:
        described = asdict(self) | {"grid": list(self.grid) if self.grid else None}
        for optional in ("grid_from", "sequence_first"):
            if not described[optional]:
                del described[optional]
        return described


@dataclass
class RewriteRecord:
    """What a rewrite did, stored as JSON in the model (format 2); every field is documented in the
    README's contract section."""

    source_sha256: str
    input: str
    input_type: str
    layout: str | None  # the explained input's layout (a permutation of NCHW) for an image, else None
    differentiated: str
    output: str
    score: str
    score_kind: str
    target: dict | None  # the first target layer (None: the model has none)
    cam: bool
    head: str
    outputs: list[str] = field(default_factory=list)
    output_sets: list[str] = field(default_factory=list)
    objective: str = "class"  # "class" (xai_target) or "seed" (xai_seed)
    layers: list[dict] = field(default_factory=list)  # every target layer (the first is ``target``)
    output_layout: str | None = None  # a 4-D explained output's layout as tracked in the graph
    probability_outputs: list[str] = field(default_factory=list)  # outputs all through Sigmoid/Softmax
    composite: str | None = None  # the LRP composite of the relevance output, when there is one
    kind: str = "image"  # what the explained input is: image, table, signal, tokens or tensor
    # DynamicQuantizeLinear: one activation scale per run, so the runtime runs one sample per run
    per_sample_runs: bool = False
    format: int = FORMAT

    @property
    def target_layer(self) -> str | None:
        return self.target["name"] if self.target else None

    @property
    def target_layers(self) -> list[str]:
        return [layer["name"] for layer in self.layers] or ([self.target_layer] if self.target else [])

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"target_layer": self.target_layer})

    @classmethod
    def from_json(cls, text: str) -> RewriteRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
