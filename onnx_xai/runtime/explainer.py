"""The ``Explainer``: every registered saliency method, with maps and boxes, on a model's ONNX file.

Usage::

    ex = onnx_xai.Explainer("resnet50.onnx")        # original or rewritten; path, bytes or ModelProto
    result = ex.explain(x, "gradcam")  # x: the preprocessed batch the model takes; each sample's top class
    result.maps, result.boxes

Methods come from the registry (:mod:`onnx_xai.runtime.methods`); what they return is described in
:mod:`onnx_xai.runtime.explanation`. One call runs the model once for every method whose primitives
one graph gives (``explain_many``), then once more per noisy copy, integration point or mask for the
sampling and perturbation methods, all for the classes that first run resolved.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..graph import contract as c
from ..objectives.objective import Objective
from ..support.errors import InputError, UnsupportedModelError
from .checks import (
    check_kinds,
    check_threshold,
    layer_shapes,
    other_inputs,
    seeds_for,
    targets_for,
    values_for,
)
from .explanation import Explanation, explanation, feature_scores
from .forward_only import forward_only, output_scores
from .head import layer_head
from .inputs import InputSpec, held_inputs, per_sample
from .margins import EnsembleMargins
from .methods import METHOD_NAMES, Context, Facts, plan_cost
from .methods import plan as plan_methods
from .methods.run_sizes import RunSizes
from .model_facts import ModelFacts
from .sessions import FORWARD, SessionSet
from .token_point import token_parts
from .work import Work, current

if TYPE_CHECKING:
    import onnx

ObjectiveLike = Objective | int | Sequence[int] | np.ndarray | None  # Objective.coerce reads the plain ones


class Explainer(ModelFacts):
    """Explain an ONNX model (a photo's, a table's, ids' ...) with every registered method.

    Args:
        model: path, bytes or ``onnx.ModelProto``; an original model is rewritten in memory (one
            pruned graph per method, on first use), a model from ``onnx-xai augment`` is used as is.
        target_layer: the 4-D tensor CAM and Grad-CAM explain (default: found automatically), or a
            list of them (a multi-scale neck): the CAM family's maps are computed per layer and fused
            (the ``fuse`` option; ``onnx-xai inspect`` lists the candidates per scale).
        providers: onnxruntime execution providers (default: CUDA then CPU, where available).
        threads: intra-op threads per session (default: onnxruntime's choice).
        input_name: the explained input, for models with several (default: the first 4-D one, else
            the first integer ids an embedding reads, else the first float input); the others are
            fed with ``extra_inputs`` and held.
        output_name: the output explained, for models with several (default: the first).
        embedding: for integer ids, the float tensor they become that gradients are taken at
            (default: the output of the Gather that reads them from a ``[V, D]`` table).
        objective: what a class's score is: ``"logit"`` (the default: before the model's final
            Softmax or Sigmoid, a tree ensemble's margin before its post-transform) or
            ``"probability"`` (the output as given, probabilities and all); said in the record.
        backend: ``"onnxruntime"`` (default), ``"openvino"`` (CPU; needs the ``openvino`` package) or
            ``"auto"``: each graph on the faster of the two, timed on its first runs (``backend_choices``).
        memory: ``"fast"`` (default): a graph per kind of request (Grad-CAM costs about a forward, a
            gradient about a backward), sessions sharing the weights;
            ``"lean"``: no activation arena, and beside the forward-cost graph (predictions, the CAM
            family, forward-only methods) one backward graph at a time, the cheapest serving every
            backward request so far, for small machines.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes | onnx.ModelProto,
        target_layer: str | Sequence[str] | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        backend: str = "onnxruntime",
        memory: str = "fast",
        embedding: str | None = None,
        objective: str | None = None,
    ):
        self._sessions = SessionSet(
            model, target_layer, list(providers) if providers else None, threads, input_name, output_name,
            backend, memory, embedding, objective,
        )  # fmt: skip
        self._run_sizes = RunSizes()  # the copies per run the batched methods found (copies_per_run)
        forward = self._sessions.get(FORWARD)
        spec = next(i for i in forward.inputs if i.name == self.input_name)
        self._input = InputSpec.of(spec.name, spec.shape, spec.type)
        self._num_classes: int | None = None
        self._trees = EnsembleMargins(self._sessions.source, self._sessions.record)

    # -- calls ---------------------------------------------------------------------------------------
    def predict(self, x: np.ndarray | dict, **extra_inputs) -> np.ndarray:
        """The model's output (its first output, or ``output_name``) for a batch (an array, or every
        input by name)."""
        return self.predict_outputs(x, [self._sessions.record().output], **extra_inputs)[0]

    def predict_outputs(self, x: np.ndarray | dict, names: Sequence[str], **extra_inputs) -> list[np.ndarray]:
        """Any of the model's own outputs (:attr:`outputs`) for a batch: a detector's boxes beside its
        explained scores, the other levels of a multi-level head."""
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise InputError(f"{', '.join(map(repr, unknown))} is not an output ({', '.join(self.outputs)})")
        if isinstance(x, dict):
            x, extra_inputs = self._split_inputs(x, extra_inputs)
        x = self._check_input(x)
        feeds = {self.input_name: x, c.TARGET: np.full(len(x), -1, np.int64), **self._extra(extra_inputs)}
        return self._sessions.run(FORWARD, list(names), feeds)

    def scores(self, x: np.ndarray, objective: ObjectiveLike = None, **extra_inputs) -> np.ndarray:
        """The score the methods explain, per sample (float64 ``[N]``), from one forward run: the
        class's logit before a final Softmax or Sigmoid, a tree ensemble's margin (the record's
        ``score_kind``); ``objective`` as in :meth:`explain`. A model whose graph cannot be rewritten is
        scored on its output itself, as its forward-only methods are (:mod:`.forward_only`)."""
        x, extra = self._check_input(x), self._extra(extra_inputs)
        wanted = Objective.coerce(objective)
        sets = (self._sessions.cheapest(),)
        try:
            found = self._run(x, self._feed(wanted, x, extra, sets), sets, extra)
        except UnsupportedModelError:
            return output_scores(self.predict(x, **extra), wanted)
        return found[c.SCORE].astype(np.float64)

    def input_gradient(self, x: np.ndarray, objective: ObjectiveLike = None, **extra_inputs) -> np.ndarray:
        """d score / d x, same shape as ``x``; ``objective`` as in :meth:`explain`."""
        return self.explain(x, "gradient", objective, extra_inputs=extra_inputs).raw

    def explain(
        self,
        x: np.ndarray,
        method: str,
        objective: ObjectiveLike = None,
        box_threshold: float = 0.2,
        extra_inputs: dict | None = None,
        work: Work | None = None,
        **options: object,
    ) -> Explanation:
        """Explain a batch with one method.

        Args:
            x: the preprocessed batch the model expects (see :class:`~onnx_xai.runtime.inputs.InputSpec`).
            method: a name from :data:`~onnx_xai.runtime.methods.METHOD_NAMES`.
            objective: what is explained (:class:`~onnx_xai.objectives.objective.Objective`): None
                (each sample's top class), a class (an int, or one int per sample), a regression
                value (``Objective.of_value(i)``), or any weighted sum of the output (a float array
                shaped like the explained output, one per sample or one for all: the score is
                ``sum(seed * output)``; :mod:`onnx_xai.objectives.seeds` builds seeds for
                segmentation, detection and dense maps).
            box_threshold: fraction of each map's maximum that bounds the box region, in (0, 1].
            extra_inputs: values of the model's other inputs, if it has any.
            work: the bounds of this call (:class:`~onnx_xai.runtime.work.Work`: a deadline, a
                limit on model runs, cancellation from another thread), checked between runs.
            **options: the method's options (the method table of the Python API page).

        Raises:
            InputError: bad input, objective or option; CamNotApplicableError for CAM on other heads.
            TooMuchWork: the method would run the model more times than ``work`` allows.
            WorkStopped: ``work`` was cancelled, or ran past its deadline (DeadlineExceeded).
        """
        return self.explain_many(x, [method], objective, box_threshold, extra_inputs, work, **options)[method]

    def explain_image(self, photo, method: str = "gradcam", preprocessing=None, **options):
        """Explain one photo file or Pillow image: made into this model's input as the command line
        does it (``preprocessing``: a :class:`~onnx_xai.imaging.preprocessing.Preprocessing`), explained with
        ``method`` (``options`` as :meth:`explain`'s); returns a
        :class:`~onnx_xai.runtime.photo.ImageExplanation` (map, box and picture in photo pixels)."""
        from .photo import explain_image

        return explain_image(self, photo, method, preprocessing, **options)

    def explain_many(
        self,
        x: np.ndarray,
        methods: Sequence[str],
        objective: ObjectiveLike = None,
        box_threshold: float = 0.2,
        extra_inputs: dict | None = None,
        work: Work | None = None,
        **options,
    ) -> dict[str, Explanation]:
        """Several methods at once: one run of one graph gives every method's primitives, the
        sampling methods run more for the objective of that run; each option goes to every
        method that takes it. Forward-only methods (occlusion, RISE) still run on a model whose graph
        cannot be rewritten, on its output itself (:mod:`.forward_only`). Before the runs beyond the
        shared one, their count is admitted by ``work`` (or said, when large)."""
        if isinstance(x, dict):  # every input by name: the explained one, and the others held
            x, extra_inputs = self._split_inputs(x, extra_inputs)
        x, extra = self._check_input(x), self._extra(extra_inputs)
        wanted = Objective.coerce(objective)
        check_threshold(box_threshold)
        plan = plan_methods(methods, options)
        check_kinds(plan, self.kind)
        with work.active() if work is not None else contextlib.nullcontext():
            try:
                return self._explain_planned(x, plan, wanted, box_threshold, extra)
            except UnsupportedModelError as exc:
                if not all(m.forward_only for m, _ in plan):
                    raise
                return forward_only(self, x, plan, wanted, box_threshold, extra, str(exc))

    def _split_inputs(self, given: dict, extra_inputs: dict | None) -> tuple[np.ndarray, dict]:
        if self.input_name not in given:
            names = ", ".join(self.inputs)
            raise InputError(
                f"the inputs given lack {self.input_name!r}, the one explained (inputs: {names})"
            )
        others = {k: np.asarray(v) for k, v in given.items() if k != self.input_name}
        return np.asarray(given[self.input_name]), {**(extra_inputs or {}), **others}

    def cost(self, x, methods: Sequence[str], **options) -> tuple[int, str]:
        """How many model runs (instances) explaining a batch shaped like ``x`` (an array or its
        shape) with ``methods`` takes beyond its shared run, and what asks for them; known before
        anything runs (a method that runs per channel or position of a target layer whose size is
        only known at run time counts it as 0 here, and is admitted again once it is known)."""
        shape = tuple(x) if isinstance(x, tuple) else np.shape(x)
        facts = Facts(int(shape[0]), tuple(int(d) for d in shape[1:]), self.layout, self._declared_layers())
        return plan_cost(plan_methods(methods, options), facts)

    def explain_text(self, texts, method: str = "integrated_gradients", tokenizer=None, **options):
        """Texts explained token by token (:func:`onnx_xai.text.explain_text`; ``tokenizer`` default:
        the ``tokenizer.json`` beside the model's file); a :class:`~onnx_xai.text.TextExplanation`."""
        from ..text import explain_text

        beside = self._sessions.source if isinstance(self._sessions.source, (str, os.PathLike)) else None
        return explain_text(self, texts, method, tokenizer if tokenizer is not None else beside, **options)

    def explain_generation(self, prompt: str, tokenizer=None, max_new_tokens: int = 10, **options):
        """A causal language model's generation from ``prompt`` attributed token by token to what came
        before (:func:`onnx_xai.generation.explain_generation`); a
        :class:`~onnx_xai.generation.GenerationExplanation`."""
        from ..generation import explain_generation

        return explain_generation(self, prompt, tokenizer, max_new_tokens, **options)

    def _explain_planned(self, x, plan, wanted: Objective, box_threshold, extra) -> dict[str, Explanation]:
        layered = [m.name for m, opts in plan if m.family_for(opts) == "cam" or "gradcam" in m.sets_for(opts)]
        if layered and not self.target_layers:
            raise InputError(
                f"{', '.join(layered)} needs a target layer (a feature map), which this {self.kind} model "
                "does not have: use the gradient or perturbation methods, or name one with target_layer"
            )
        shared = tuple(sorted({s for m, opts in plan for s in m.sets_for(opts)})) or (
            self._sessions.cheapest(),
        )
        if self.kind == "tokens":  # the point is the ids' embedding: the shared run gives it
            shared = tuple(sorted({*shared, "embedding"}))
        objective = self._feed(wanted, x, extra, shared)
        seeded = objective.dtype.kind == "f"
        outputs = self._run(x, objective, shared, extra)
        facts = Facts(len(x), x.shape[1:], self.layout, layer_shapes(outputs))
        runs, why = plan_cost(plan, facts)
        if runs:
            (current() or Work()).admit(runs, why)
        scores = outputs[c.SCORE].astype(np.float32)
        targets = outputs[c.TARGET_USED].astype(np.int64) if c.TARGET_USED in outputs else np.full(len(x), -1)

        def call(xs: np.ndarray, objectives: np.ndarray, sets: tuple, owners=None, given=None) -> dict:
            held = held_inputs(extra, owners, len(x)) | (given or {})
            return self._run(xs, objectives, sets or (self._sessions.cheapest(),), held)

        resolved = objective if seeded else targets
        point, at_point, tokens = x, call, {}
        if self.kind == "tokens":
            fed = lambda xs, objectives, sets, held: self._run(xs, objectives, sets, held, fed=True)  # noqa: E731
            point, at_point, tokens = token_parts(x, outputs, call, fed, extra, self.input_name, resolved)
        results = {}
        for method, opts in plan:
            record = self._sessions.record()
            head = lambda: layer_head(self._sessions, self.input_name, seeded, extra)  # noqa: E731
            context = Context(
                point, resolved, outputs, at_point, self.layout, head, record.output, self.score_kind,
                lambda xs, objectives, rules: self._relevance(xs, objectives, rules, extra),
                trees=self._trees.required if record.score_kind == "margin" else None, inputs=extra,
                input_name=self.input_name, sizes=self._run_sizes, **tokens,
            )  # fmt: skip
            raw = method.attribute(context, opts)
            results[method.name] = self._explanation(
                method, opts, raw, context, targets, scores, x, box_threshold
            )
        return results

    # -- internals -----------------------------------------------------------------------------------
    def _explanation(self, method, opts, raw, context, targets, scores, x, box_threshold) -> Explanation:
        """A method's result: its raw attribution checked finite, with maps, boxes and what the run
        handed back (the output, SHAP's base, the features' names and scores, the trees' note)."""
        if not np.isfinite(raw).all():
            raise InputError(
                f"{method.name} is not finite for this input: the model's values overflow "
                f"{self.input_dtype} (check the input's scale and the noise level)"
            )
        signed, family = method.signed_for(opts), method.family_for(opts)
        size = self._spatial_size(x)
        found = explanation(
            method.name, family, signed, raw, targets, scores, self.layout, size, box_threshold
        )
        found.output = context.outputs.get(self._sessions.record().output)
        found.base, found.features = context.found.get("base"), context.found.get("features")
        found.feature_scores = feature_scores(raw, self.kind, signed)
        found.note = self._trees.note()
        return found

    def _declared_layers(self) -> tuple[tuple[int, int, int], ...]:
        """Each target layer's ``(K, h, w)`` as a graph built so far declares it, if all are known
        and static (else none: a cost that depends on them is admitted again once they are)."""
        shapes: list[tuple] = []
        while (shape := self._sessions.declared_shape(c.layer_output(c.ACTIVATION, len(shapes)))) is not None:
            shapes.append(shape)
        if not shapes or not all(isinstance(d, int) for shape in shapes for d in shape[1:]):
            return ()
        return tuple((int(k), int(h), int(w)) for _, k, h, w in shapes)

    def _relevance(self, x: np.ndarray, objective: np.ndarray, composite, extra: dict) -> np.ndarray:
        """LRP's relevance of the batch for ``objective`` by ``composite`` (:mod:`.methods.relevance`)."""
        seeded = objective.dtype.kind == "f"
        feeds = {self.input_name: x, (c.SEED if seeded else c.TARGET): objective, **extra}
        return self._sessions.run_on(self._sessions.relevance(composite, seeded), [c.RELEVANCE], feeds)[0]

    def _run(
        self, x: np.ndarray, objective: np.ndarray, sets: tuple[str, ...], extra: dict, fed: bool = False
    ) -> dict:
        """One run of the graph serving ``sets`` for ``objective`` (int classes, or float seeds):
        every output of those sets, the score and, for classes, the classes used, by name; ``fed``:
        ``x`` is a token model's point, fed in place of its ids' embedding."""
        seeded = objective.dtype.kind == "f"
        layers = len(self._sessions.record().target_layers)
        given = {o.name for o in self._sessions.get(sets, seeded, fed).outputs}
        output = self._sessions.record().output
        names = (
            list(dict.fromkeys(n for s in sets for n in c.outputs_of(s, layers)))
            + [c.SCORE]
            + ([] if seeded else [c.TARGET_USED])
            + ([output] if output in given else [])
            + [n for s in sets for n in c.numbered_outputs(s, given)]
        )
        given_x = {c.POINT: x.astype(np.float32)} if fed else {self.input_name: self._input.cast(x)}
        feeds = {**given_x, c.SEED if seeded else c.TARGET: objective, **extra}
        if self._sessions.record().per_sample_runs and len(x) > 1:  # one activation scale per run
            found = dict(
                zip(
                    names,
                    per_sample(lambda f: self._sessions.run(sets, names, f, seeded, fed), feeds, len(x)),
                )
            )
        else:
            found = dict(zip(names, self._sessions.run(sets, names, feeds, seeded, fed)))
        trees = self._trees.get() if not seeded else None
        if trees is not None:  # the trees' margin, not the post-transformed output the graph reads
            found[c.SCORE] = trees.scores(self._input.cast(x), found[c.TARGET_USED]).astype(np.float32)
        return found

    def _feed(self, objective: Objective, x: np.ndarray, extra: dict, sets: tuple[str, ...]) -> np.ndarray:
        """What the rewritten graph is fed for ``objective``: int64 classes ``[n]`` (-1: each sample's
        top class), or float32 seeds ``[n, *output shape]``."""
        if objective.kind == "value":
            return values_for(objective.values, len(x), self.output_shape)
        if objective.seeded:
            spec = next(i for i in self._sessions.get(sets, seeded=True).inputs if i.name == c.SEED)
            return seeds_for(objective.values, len(x), tuple(spec.shape))
        return targets_for(objective.values, len(x), lambda: self._classes(x, extra))

    def _extra(self, extra_inputs) -> dict:
        """The model's other inputs: a dict of arrays, never the explained input or the target."""
        return other_inputs(extra_inputs, self.input_name)

    def _classes(self, x: np.ndarray, extra: dict) -> int:
        if self._num_classes is None:
            self._num_classes = self.num_classes or int(self.predict(x, **extra).shape[-1])
        return self._num_classes

    def _check_input(self, x) -> np.ndarray:
        return self._input.check(x)

    def _spatial_size(self, x: np.ndarray) -> tuple[int, int] | int | None:
        """An image's height and width, a signal's length, else None."""
        if self.kind == "signal" and self.layout:
            return x.shape[self.layout.index("T")]
        if self.layout is None or self.kind != "image":
            return None
        return x.shape[self.layout.index("H")], x.shape[self.layout.index("W")]


__all__ = ["Explainer", "Explanation", "METHOD_NAMES"]
