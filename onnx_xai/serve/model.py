"""The served model: a KServe ``Model`` whose ``:predict`` and ``:explain`` run the rewritten model.

``:predict`` answers ``{"predictions": [...]}``: for a classifier each instance's top-k classes with
their labels and probabilities (the output itself after a Softmax/Sigmoid, else its softmax), for any
other output the output itself. ``:explain`` answers the same predictions and, per instance, one
explanation per method (method, target, label, score, box in photo pixels, the objective, for photos
a transparent PNG overlay of the photo's size in base64 (and on request the map drawn on the photo),
the raw map on request), from one run of the graph per batch: the Explainer's shared run gives the
output, the activations and the gradients together (a language model's prompts: :mod:`.prompts`).
Requests are read by :mod:`.requests`, admitted by :mod:`.admission` (their cost in model runs, their
deadline), batched by :mod:`.batching` or, when they run the model many times, run alone in the long
lane (:mod:`.lanes`); any problem with a request is KServe's ``InvalidInput`` (HTTP 400, one line), a
request stopped before its end (deadline, the server stopping) gets 503.
"""

from __future__ import annotations

import base64
import io
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput
from PIL import Image

from ..imaging.images import Prepared
from ..imaging.png import picture_png
from ..imaging.preprocessing import Preprocessing, preprocessing_for
from ..imaging.visuals import outline, photo_layer, photo_picture
from ..objectives.labels import read_labels
from ..photos.records import picks
from ..photos.run import ExplainOptions, explain_cost, explain_prepared
from ..runtime import Explainer
from ..runtime.methods import METHOD_NAMES, REGISTRY
from ..runtime.work import Work
from ..support.errors import InputError, WorkStopped, XaiError
from . import prompts, requests, signals, tables, texts
from .admission import STOPPING, WorkLimits, bind, is_long, measured_max_runs, refusal
from .batching import LONG, Batcher
from .defaults import default_methods
from .disconnects import REQUEST_WORK
from .lanes import LongLane

V2_TYPES = {
    "tensor(string)": "BYTES",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs the model (the ``serve`` command's flags)."""

    methods: tuple[str, ...] = ()  # none: default_methods (Grad-CAM for photos)
    backend: str = "onnxruntime"
    threads: int | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: str | None = None
    target_layer: tuple[str, ...] | None = None
    output: str | None = None
    max_batch: int = 16
    max_latency_ms: float = 0.0
    max_instances: int = 64
    max_body_mb: float = 32.0
    max_pending_mb: float = 64.0  # the bodies of all requests in flight (:mod:`.limits`)
    body_timeout_s: float = 10.0  # a body's grace before it must keep 64 KB/s (:mod:`.limits`)
    max_header_kb: float = 64.0  # a request's head: request line and header fields
    max_pixels: int = 40_000_000  # a photo's, decoded (:mod:`.requests`)
    max_pending_pixels: int = 100_000_000  # the decoded photos in flight, together
    background: str | None = None  # a table model's background rows (.csv, .parquet, .npy)
    tokenizer: str | None = None  # a text encoder's tokenizer.json (default: beside the model)
    max_new_tokens: int = 64  # the most tokens a language model's request may generate or explain
    max_runs: int | None = None  # model runs a request's methods may take; None: measured at load
    timeout_s: float = 60.0  # a request's deadline
    grace_s: float = 30.0  # after SIGTERM, how long requests in flight are given


class ExplainedModel(Model):
    """One ONNX model served with its explanations (module docstring)."""

    def __init__(self, name: str, path: str, config: ServeConfig = ServeConfig()):
        super().__init__(name)
        self.path, self.config = path, config

    def load(self) -> bool:
        c = self.config
        self.ex = self._explainer()
        self.table = self.ex.kind == "table"
        tokens = self.ex.kind == "tokens"  # a language model's prompts, else a text encoder's texts
        self.prompts = prompts.PromptFacts.of(self.ex, self.path, c) if tokens else None
        self.texts = texts.TextFacts(self.ex, self.path, c.tokenizer) if tokens and not self.prompts else None
        self.settings = (
            {}
            if self.ex.kind in ("table", "tokens", "signal")
            else preprocessing_for(self.ex, c.preprocessing)
        )
        self.labels = (
            read_labels(c.labels, self.ex.num_classes, self.ex.metadata) if self.ex.num_classes else []
        )
        self.labels = self.texts.labels if self.texts is not None and not c.labels else self.labels
        self.facts = tables.TableFacts(self.ex, c.background) if self.table else None
        self.signals = signals.SignalFacts(self.ex, self.labels) if self.ex.kind == "signal" else None
        self.methods = c.methods or default_methods(
            self.ex, self.facts is not None and self.facts.background is not None, self.prompts is not None
        )
        self.encoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onnx-xai-encode")
        max_runs, self.max_runs_said = (
            (c.max_runs, "given") if c.max_runs else measured_max_runs(self.ex, c.timeout_s)
        )
        self.limits = WorkLimits(max_runs, c.timeout_s, long_runs=c.max_batch)
        print(f"onnx-xai serve: --max-runs {max_runs} ({self.max_runs_said})", file=sys.stderr, flush=True)
        self.lane = LongLane(self._explainer)
        self.batcher = Batcher(self._run, self.encoders, c.max_batch, c.max_latency_ms / 1000, self._run_long)
        self.ready = True
        return True

    def _explainer(self) -> Explainer:
        c = self.config
        return Explainer(
            self.path,
            target_layer=list(c.target_layer) if c.target_layer else None,
            threads=c.threads,
            backend=c.backend,
            output_name=c.output,
        )

    def stop(self) -> None:
        """Long requests stop at their next run of the model, with 503 (KServe calls this when the
        server stops; :mod:`.shutdown` on the first SIGTERM)."""
        self.lane.stop(STOPPING)

    # -- the two verbs -------------------------------------------------------------------------------
    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            return await self._infer_v2(payload)
        try:
            outputs, params = await self._answered("predict", payload, headers)
        except WorkStopped as exc:
            raise refusal(exc) from None
        return {"predictions": [self._prediction(o[0], params.top_k) for o in outputs]}

    async def explain(self, payload, headers=None):
        try:
            answers, params = await self._answered("explain", payload, headers)
        except WorkStopped as exc:
            raise refusal(exc) from None
        except (InputError, XaiError) as exc:
            raise InvalidInput(str(exc)) from None
        return {
            "predictions": [self._prediction(output, params.top_k) for output, _ in answers],
            "explanations": [entries for _, entries in answers],
        }

    async def _answered(self, verb: str, payload, headers) -> tuple[list, requests.Parameters]:
        """The request read and run with those that share its key (:mod:`.batching`): one answer
        per instance, and its parameters. Its work is the one its connection is watched with."""
        work = REQUEST_WORK.get() or Work()
        return await self.batcher.submit(lambda: self._read_keyed(verb, payload, headers, work))

    def _read_keyed(self, verb: str, payload, headers, work: Work) -> tuple[tuple, list, requests.Parameters]:
        """The request read, its work bound and checked (it may have waited), and its key: a long
        request's starts with :data:`~.batching.LONG` and its work."""
        items, params = self._read(payload, headers)
        bind(work, self.limits, params.timeout_s).check()
        key = _key(verb, params, items)
        if self.prompts is not None:
            return self.prompts.keyed(verb, key, work, items, params, self.limits), items, params
        if verb == "explain":
            shapes = [item.array.shape for item, _ in items]
            if is_long(lambda shape: self._cost(shape, params), shapes, self.limits):
                return (LONG, work, *key), items, params
        return key, items, params

    async def _run_long(self, key: tuple, items: list, params) -> list:
        """A long request, alone, in the long lane, on the lane's own Explainer."""
        _, work, *rest = key
        return await self.lane.run(lambda ex: self._run(tuple(rest), items, ex), work)

    async def _infer_v2(self, request: InferRequest) -> InferResponse:
        """The V2 protocol's infer: the model's input as a tensor, its explained output back."""
        if len(request.inputs) != 1 and (self.facts is None or self.facts.inputs.single):
            raise InvalidInput(
                f"the model takes one input tensor ({self.ex.input_name}), not {len(request.inputs)}"
            )
        answers, _ = await self.batcher.submit(lambda: self._read_tensor(request))
        outputs = np.stack([o[0] for o in answers])
        output = InferOutput(self.ex.record.output, list(outputs.shape), "FP32", outputs.astype(np.float32))
        return InferResponse(request.id or str(uuid.uuid4()), self.name, [output])

    def _read_tensor(self, request: InferRequest) -> tuple[tuple, list, None]:
        try:
            if self.facts is not None and not self.facts.inputs.single:
                tensors = {i.name: i.as_numpy() for i in request.inputs}
                found = self.facts.read_tensors(tensors, self.config.max_instances)
                items = [(item, None) for item in found]
                return _key("predict", None, items), items, None
            array = np.asarray(request.inputs[0].as_numpy())
            found = requests.instances(
                {"instances": list(array)}, self.ex.input_shape, self.ex.input_dtype, self.settings,
                self.config.max_instances,
            )  # fmt: skip
        except (InputError, ValueError, TypeError) as exc:
            raise InvalidInput(str(exc)) from None
        items = [(item, None) for item in found]
        return _key("predict", None, items), items, None

    def get_input_types(self) -> list[dict]:
        if self.facts is not None and not self.facts.inputs.single:  # a split table: every input
            return [
                {"name": name, "datatype": V2_TYPES.get(kind, "FP32"), "shape": _dims(shape)}
                for name, (shape, kind) in self.ex.inputs.items()
            ]
        return [{"name": self.ex.input_name, "datatype": "FP32", "shape": _dims(self.ex.input_shape)}]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": name, "datatype": "FP32", "shape": _dims(shape)}
            for name, shape in self.ex.outputs.items()
        ]

    def _read(self, payload, headers) -> tuple[list, requests.Parameters]:
        if not isinstance(payload, dict):
            raise InvalidInput("the body must be a JSON object")
        length = (headers or {}).get("content-length")
        if length is not None and int(length) > self.config.max_body_mb * 2**20:
            raise InvalidInput(f"the body is {int(length)} bytes; at most {self.config.max_body_mb:g} MB")
        try:
            params = requests.parameters(
                payload, self.methods, METHOD_NAMES, self.labels, self.ex.num_classes
            )
            if self.prompts is not None:
                found = self.prompts.read(payload, self.config.max_instances)
            elif self.texts is not None:
                found = self.texts.read(payload, self.config.max_instances)
            elif self.signals is not None:
                found = self.signals.read(payload, self.config.max_instances)
            elif self.facts is not None:
                found = self.facts.read(payload, self.config.max_instances)
            else:
                found = requests.instances(
                    payload,
                    self.ex.input_shape,
                    self.ex.input_dtype,
                    self.settings,
                    self.config.max_instances,
                )
        except InputError as exc:
            raise InvalidInput(str(exc)) from None
        return [(item, params) for item in found], params

    # -- one batched run -----------------------------------------------------------------------------
    def _run(self, key: tuple, items: list, ex: Explainer | None = None) -> list:
        ex = ex or self.ex
        if self.prompts is not None:
            return self.prompts.run(ex, key[0], items)
        if len({item.array.shape for item, _ in items}) > 1:  # photos at their own sizes: one at a time
            return [answer for one in items for answer in self._run(key, [one], ex)]
        batch = np.concatenate([item.array for item, _ in items])
        held = {n: np.concatenate([item.others[n] for item, _ in items]) for n in items[0][0].others or {}}
        if key[0] == "predict":
            return [(o,) for o in ex.predict(batch, **held)]
        params: requests.Parameters = items[0][1]
        if self.texts is not None:
            return self.texts.answer(ex, batch, params, held, [item for item, _ in items])
        if self.signals is not None:
            return self.signals.answer(ex, batch, params, held)
        if self.facts is not None:
            return tables.explain_rows(ex, batch, params, self.facts, self.labels, held)
        photos = [item.photo or _array_photo(item.array, ex.layout) for item, _ in items]
        results, chosen = explain_prepared(ex, photos, self._options(params))
        shared = next(iter(results.values())).output
        outputs = shared if shared is not None and len(shared) == len(batch) else ex.predict(batch)
        answers = [(results, i, photos[i], chosen[i], items[i][0]) for i in range(len(items))]
        return list(zip(outputs, self.encoders.map(self._entries, answers, [params] * len(answers))))

    def _cost(self, shape: tuple, params: requests.Parameters) -> tuple[int, str]:
        """The model runs an instance of ``shape`` costs beyond its shared run, and what asks for them."""
        if not self.table and self.texts is None and self.signals is None:
            return explain_cost(self.ex, shape, self._options(params))
        given = self.facts.background if self.facts is not None else None
        options = {"background": given} if given is not None else {}
        taken = {n for m in params.methods for n in REGISTRY[m].Options.__dataclass_fields__}
        return self.ex.cost(shape, list(params.methods), **{k: v for k, v in options.items() if k in taken})

    def _options(self, params: requests.Parameters) -> ExplainOptions:
        return ExplainOptions(
            methods=params.methods,
            target=params.target,
            labels=self.labels,
            preprocessing=self.config.preprocessing,
            objective=params.objective,
            region=params.region,
            candidate=params.candidate,
            channel=params.channel,
            threshold=params.threshold,
            smooth=params.smooth,
        )

    def _entries(self, answer: tuple, params: requests.Parameters) -> list[dict]:
        """One instance's explanations, as the response gives them (its boxes found and its pictures
        encoded in the encoding threads, every core on a batch's pictures between two runs: beside a
        run, they would slow every thread of it to the pace of the one they preempt)."""
        results, i, photo, chosen, item = answer
        return [self._entry(m, r, photo, chosen, item, params) for m, r in picks(results, i).items()]

    def _entry(self, method: str, r: dict, p: Prepared, chosen, item, params: requests.Parameters) -> dict:
        box = p.box_to_photo(r["box"]) if r["box"][2] > r["box"][0] else None
        cls = r["target"] if chosen is None else chosen.get("class")
        entry = {
            "method": method,
            "target": r["target"] if chosen is None else None,
            "label": self.labels[cls]
            if self.labels and cls is not None and 0 <= cls < len(self.labels)
            else None,
            "score": round(float(r["score"]), 6),
            "box": list(box) if box else None,
            "objective": chosen or {"kind": "class"},
        } | ({"note": r["note"]} if r.get("note") else {})
        drawn = (r["family"], r["map"], r["signed"], box)
        if params.overlay and item.photo is not None:
            layer = outline(photo_layer(p, *drawn), (chosen or {}).get("photo_box"))
            entry["overlay_png"] = _encoded(layer, "png")
        if params.picture and item.photo is not None:
            picture = outline(photo_picture(p, *drawn), (chosen or {}).get("photo_box"))
            entry[f"picture_{params.picture}"] = _encoded(picture, params.picture)
        if params.raw:
            entry["map"] = np.asarray(r["map"], np.float32).tolist()
        return entry

    def _prediction(self, output, top_k: int) -> dict:
        if isinstance(output, dict):  # a prompt's continuation (:mod:`.prompts`)
            return output
        if output.ndim != 1:
            return {"output": np.asarray(output, np.float32).tolist()}
        probabilities = output if self.ex.record.score_kind != "logit" else _softmax(output)
        best = _top(probabilities, top_k)
        return {
            "top_k": [
                {
                    "class": int(k),
                    "label": self.labels[k] if self.labels else None,
                    "probability": float(probabilities[k]),
                }
                for k in best
            ]
        }


def _dims(shape: tuple) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def _key(verb: str, params: requests.Parameters | None, items: list) -> tuple:
    """What requests must share to share a run: the verb, the instances' shape, and for ``explain``
    the options."""
    return (verb, params, _shape(items)) if verb == "explain" else (verb, _shape(items))


def _shape(items: list) -> tuple:
    shapes = {item.array.shape for item, _ in items}
    return tuple(sorted(shapes))


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest values, largest first (ties: the lower index first), without
    sorting them all."""
    if k >= len(values):
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, len(values) - k)[len(values) - k]
    candidates = np.flatnonzero(values >= kth)
    return candidates[np.argsort(-values[candidates], kind="stable")][:k]


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def _array_photo(array: np.ndarray, layout: str) -> Prepared:
    """An array instance as a :class:`Prepared` whose 'photo' is the input itself (boxes and regions
    in input pixels)."""
    height, width = array.shape[layout.index("H")], array.shape[layout.index("W")]
    return Prepared(
        array,
        Image.new("RGB", (width, height)),
        (0.0, 0.0, float(width), float(height)),
        (height, width),
        "stretch",
    )


def _encoded(picture: Image.Image, image_format: str) -> str:
    """The picture (RGB, RGBA, or palette) as base64 PNG, or JPEG (quality 90)."""
    if image_format == "png":
        return base64.b64encode(picture_png(picture)).decode("ascii")
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
