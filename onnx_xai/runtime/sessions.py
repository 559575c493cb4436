"""The sessions of one model: one per combination of output sets, created lazily, reused, thread-safe.

Every model is first checked by the graph package (:func:`onnx_xai.graph.model_io.check_model`,
importing ``onnx`` then), so a malformed one is refused in one line before a runtime allocates
anything from it. Handed an original model, the session set rewrites it into one pruned graph per
combination of output sets on first use: Grad-CAM never pays for the input-gradient backward.
Handed a model already rewritten by ``onnx-xai augment``, it reads the record through the runtime
and serves every output set it contains from that one graph. Sessions come from a backend
(:mod:`.backends`: onnxruntime or OpenVINO).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..graph.contract import LAYERED_SETS, METADATA_KEY, OUTPUT_SETS, RewriteRecord
from ..support.errors import CamNotApplicableError, InputError, ModelError
from ..support.progress import stage
from .auto_backend import raced_session
from .backends import BACKENDS, MAXPOOL_BACKWARD, Session, make_session, release_memory
from .graph_keys import FORWARD, FORWARD_KEY, MEMORY_MODES, SEPARATE, TIERS, GraphKey, fixed_batch, predicts
from .shared_kernels import convolutional
from .shared_weights import shared_initializers

if TYPE_CHECKING:
    from ..graph.augment import Analysis


class SessionSet:
    """Lazily built sessions of one model, one per :class:`GraphKey` (the output sets a graph
    gives, its objective's input, an LRP graph's composite).

    Args:
        model: path, bytes or ``onnx.ModelProto``, original or rewritten.
        target_layer, input_name, output_name: as :func:`onnx_xai.augment` (original models only).
        providers: onnxruntime execution providers (default: CUDA, then CPU, where available).
        threads: intra-op threads per session (None: the runtime's default).
        backend: ``"onnxruntime"``, ``"openvino"`` or ``"auto"`` (each graph on the faster of the two,
            :mod:`.auto_backend`).
        memory: ``"fast"``: one graph per kind of request (:data:`TIERS`), each about a forward's
            cost or a backward's; ``"lean"``: no activation arena, and besides the forward-cost
            graph (predictions, the CAM family, forward-only methods) one backward graph at a time,
            the cheapest that serves every backward request so far.
    """

    def __init__(
        self,
        model,
        target_layer=None,
        providers: list | None = None,
        threads: int | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        backend: str = "onnxruntime",
        memory: str = "fast",
        embedding: str | None = None,
        objective: str | None = None,
    ):
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if memory not in MEMORY_MODES:
            raise InputError(f"memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
        self._asked: dict[bool, set[str]] = {False: set(), True: set()}
        self._lean = memory == "lean"
        self._source = model
        self._choice = dict(
            target_layer=target_layer, input_name=input_name, output_name=output_name, embedding=embedding
        ) | ({"objective": objective} if objective is not None else {})
        self._providers, self._threads, self.backend = providers, threads, backend
        self._lock = threading.Lock()
        self._sessions: dict[GraphKey, Session] = {}
        self._split: dict[bool, tuple] = {}  # body, head and boundary, per objective (split)
        self._analysis: Analysis | None = None
        first = self._first_session()
        self.metadata = first.metadata()  # the model's metadata_props (a rewrite keeps the original's)
        stored = self.metadata.get(METADATA_KEY)
        self.rewritten = stored is not None
        self._record: RewriteRecord | None = RewriteRecord.from_json(stored) if stored else None
        self._sessions[FORWARD_KEY] = first
        if not self.rewritten and any(fixed_batch(i.shape) for i in first.inputs):
            # An export with a fixed batch size: serve the forward from the batch-freed copy.
            self._sessions[FORWARD_KEY] = self._session_from(self._analyze().model)
        if self.rewritten:
            self._serve_rewritten(first)

    def _first_session(self) -> Session:
        """The session of the model as given, checked first (onnx, imported here: no runtime reads a
        model unchecked); for onnxruntime from a parsed copy (a ModelProto itself: read, not
        changed) whose weights every other session shares. Its kernels are its own: a graph soon
        predicts in its place (an original model), or it is the only session (a rewritten one)."""
        from ..graph.model_io import check_model, private_copy

        model = self._source
        if self.backend != "openvino" and hasattr(model, "SerializeToString"):
            check_model(model)
            return self._session_from(model, kernels=False)
        if self.backend != "openvino":
            return self._session_from(private_copy(self._bytes_or_path()), kernels=False)
        given = self._bytes_or_path()
        check_model(model)
        return self._session_from(given)

    def _serve_rewritten(self, first: Session) -> None:
        """A model rewritten by ``onnx-xai augment``: its one session serves every set it gives."""
        if any(v is not None for v in self._choice.values()):
            raise InputError(
                "target_layer, input_name, output_name, embedding and objective apply to original "
                "models; this one was already rewritten"
            )
        self._whole = first
        seeded = self.record().objective == "seed"
        for output_set in self._provided():
            self._sessions[GraphKey((output_set,), seeded)] = first
        if seeded:  # its graph needs a seed shaped like the output
            self._sessions[FORWARD_KEY] = self._session_from(self._forward_of_rewritten())

    @property
    def source(self):
        """The model as the caller gave it (a path, bytes or ModelProto)."""
        return self._source

    def _bytes_or_path(self) -> bytes | str:
        source = self._source
        if isinstance(source, (bytes, bytearray)):
            return bytes(source)
        if isinstance(source, (str, os.PathLike)):
            if not Path(source).is_file():
                raise ModelError(f"no such model file: {source}")
            return str(source)
        if hasattr(source, "SerializeToString"):
            return source.SerializeToString()
        raise InputError(f"model must be a path, bytes or onnx.ModelProto, not {type(source).__name__}")

    def _forward_of_rewritten(self):
        from ..graph.assemble import forward_only
        from ..graph.model_io import load_model

        return forward_only(load_model(self._source)[0])

    def _session_from(self, model, label: str = "forward", kernels: bool = True) -> Session:
        """A session of ``model`` (a path, bytes, or an ``onnx.ModelProto`` of ours, whose large
        weights onnxruntime's sessions share: :mod:`.shared_weights`, and with ``kernels`` a
        convolutional graph's optimized kernels: :mod:`.shared_kernels`); with ``backend="auto"``
        the two runtimes' sessions raced (:mod:`.auto_backend`), ``label`` naming the graph."""
        shared: tuple[list[str], list] = ([], [])
        kernels = kernels and not isinstance(model, (bytes, str)) and convolutional(model)
        if not isinstance(model, (bytes, str)):
            if self.backend != "openvino":
                shared = shared_initializers(model)
            model = model.SerializeToString()
        args = (model, self._providers, self._threads, not self._lean, shared, kernels)
        made = raced_session(label, *args) if self.backend == "auto" else make_session(self.backend, *args)
        del model, args  # the graph's serialized bytes, the large transient
        release_memory()
        return made

    @property
    def providers(self) -> list[str]:
        """What the sessions actually run on (onnxruntime's providers, e.g. CPU when CUDA could not
        be loaded; the OpenVINO device)."""
        forward = self._sessions[FORWARD_KEY]
        return getattr(forward, "providers", [forward.device])

    def record(self) -> RewriteRecord:
        """The rewrite's record (target layer, layout, input, output, cam, head ...): read from a
        rewritten model, or from the analysis of an original one."""
        if self._record is None:
            with self._lock:
                if self._record is None:
                    self._record = self._analyze().record()
        return self._record

    def _provided(self) -> list[str]:
        """The output sets a rewritten model's outputs cover (``activation`` comes with CAM and
        Grad-CAM)."""
        present = set(self.record().outputs)
        return [name for name, outputs in OUTPUT_SETS.items() if set(outputs) <= present]

    def declared_shape(self, name: str) -> tuple | None:
        """An output's shape as the first session built that has it declares it (None: no session
        built so far has it; nothing is built here)."""
        with self._lock:
            sessions = list(self._sessions.values())
        return next((o.shape for s in sessions for o in s.outputs if o.name == name), None)

    def backend_choices(self) -> dict[str, str]:
        """With ``backend="auto"``: each graph built so far, the runtime that runs it and why
        ("racing" while its first runs are timed)."""
        with self._lock:
            sessions = {id(s): s for s in self._sessions.values()} | {
                id(s): s for made in self._split.values() for s in made[:2]
            }
        return {s.label: s.choice or "racing" for s in sessions.values() if hasattr(s, "label")}

    def held(self) -> int:
        """How many sessions (copies of the model) are held now."""
        return len({id(s) for s in self._sessions.values()}) + 2 * len(self._split)

    def cheapest(self) -> str:
        """The output set that costs least to run (for runs that need only the score)."""
        if not self.rewritten:
            return "activation" if self.record().target else "score"  # the light graph
        provided = self._provided()
        return next(
            s
            for s in ("activation", "cam", "gradcam", "input_grad", "guided", "deconv", "score")
            if s in provided
        )

    def _analyze(self):
        if self._analysis is None:
            from ..graph.augment import analyze

            self._analysis = analyze(self._source, **self._choice)
        return self._analysis

    def get(self, output_sets: str | tuple[str, ...], seeded: bool = False, fed: bool = False) -> Session:
        """The session serving ``output_sets`` (one name, or a tuple served by one graph) for the
        class objective (``xai_target``) or the seeded one (``xai_seed``), fed at its point or not,
        built on first use."""
        if output_sets == FORWARD:
            return self._sessions[FORWARD_KEY]
        sets = (output_sets,) if isinstance(output_sets, str) else tuple(sorted(output_sets))
        with self._lock:
            if self._lean and not self.rewritten and not fed and sets not in SEPARATE and not _light(sets):
                self._asked[seeded].update(sets)  # one backward graph for everything asked so far
                sets = tuple(sorted(self._asked[seeded]))
            key = GraphKey(sets if self.rewritten else self._tier(sets, seeded), seeded, fed=fed)
            if key not in self._sessions:
                if fed and self.rewritten:
                    raise InputError(
                        "this rewritten model cannot be fed its embedding (integrated gradients and the "
                        "other path methods on ids need it): explain the original model"
                    )
                self._sessions[key] = (
                    self._build(key.sets, seeded, fed)
                    if not self.rewritten
                    else self._rewritten_serves(key.sets, seeded)
                )
                self._serve_forward_cheaply(key)
            return self._sessions[key]

    def _tier(self, sets: tuple[str, ...], seeded: bool) -> tuple[str, ...]:
        """The output sets of the first graph of :data:`TIERS` that serves ``sets`` (CAM left out
        where it does not apply)."""
        record = self.record()
        cam = record.cam and not seeded
        if "cam" in sets and not cam:
            raise CamNotApplicableError(
                "CAM needs a class target: it reads the head's class weights"
                if seeded
                else f"CAM needs a global-average-pool -> linear head: {record.head}"
            )
        wanted = set(sets) - {"score"}
        tier = next(t for t in TIERS if wanted <= set(t)) if wanted else TIERS[0]
        layered = record.target is not None
        kept = tuple(
            s
            for s in tier
            if (cam or s != "cam")
            and (layered or s not in LAYERED_SETS)
            and (s != "embedding" or record.kind == "tokens")
        )
        return kept or ("score",)

    def _build(self, output_sets: tuple[str, ...], seeded: bool, fed: bool = False) -> Session:
        from ..graph.augment import augment
        from ..graph.point import fed_at_point

        analysis = fed_at_point(self._analyze()) if fed else self._analyze()
        rewritten = augment(
            analysis, outputs=output_sets, seeded=seeded, maxpool=MAXPOOL_BACKWARD[self.backend]
        )
        self._analysis = None  # the model's copy: analyzed again if another graph is ever needed
        where = " fed at its point" if fed else ""
        stage(f"compiling the {'+'.join(output_sets)} graph{where} on {self.backend}")
        return self._session_from(rewritten, "+".join(output_sets) + where)

    def _serve_forward_cheaply(self, key: GraphKey) -> None:
        """Serve predictions from the cheapest class-objective graph built, and let the original
        model's own session go (one copy of the weights fewer); in lean mode, a new backward graph
        drops every other graph of its objective but the forward-cost one (LRP's too)."""
        if self.rewritten:
            return
        if self._lean and not _light(key.sets):
            self._sessions = {
                k: v
                for k, v in self._sessions.items()
                if k in (FORWARD_KEY, key) or k.seeded != key.seeded or _light(k.sets)
            }
        if not key.seeded:
            built = [k for k in self._sessions if predicts(k)]
            if built:
                cheapest = min(
                    built, key=lambda k: TIERS.index(next(t for t in TIERS if set(k.sets) <= set(t)))
                )
                self._sessions[FORWARD_KEY] = self._sessions[cheapest]
        release_memory()

    def _rewritten_serves(self, output_sets: tuple[str, ...], seeded: bool) -> Session:
        """The rewritten model's one session, when it gives these sets for this objective."""
        record, present = self.record(), set(self._provided())
        if (record.objective == "seed") != seeded:
            raise InputError(
                f"this rewritten model takes {'a seed' if record.objective == 'seed' else 'a class target'}; "
                "rewrite the original for the other objective "
                f"(onnx-xai augment{' --seeded' if seeded else ''})"
            )
        missing = sorted(set(output_sets) - present)
        if not missing:
            return self._whole
        if "cam" in missing and not record.cam:
            raise CamNotApplicableError(f"CAM needs a global-average-pool -> linear head: {record.head}")
        raise InputError(
            f"this rewritten model has no {missing[0]!r} outputs (it has {', '.join(sorted(present))}); "
            f"rewrite the original with onnx-xai augment --outputs {' '.join(output_sets)}"
        )

    def split(self, seeded: bool) -> tuple[Session, Session, list[str]]:
        """The sessions of the model cut at its first target layer (:func:`onnx_xai.graph.split`):
        the body (the score and the boundary's tensors, the layer's first) and the head (the score
        from them), and the boundary's names."""
        with self._lock:
            if seeded not in self._split:
                from ..graph.split import split

                record = self.record()
                if self.rewritten:
                    self._rewritten_serves(("activation",), seeded)  # the objective it takes
                    from ..graph.model_io import load_model

                    model = load_model(self._source)[0]
                else:
                    from ..graph.augment import augment

                    model = augment(self._analyze(), outputs=("activation",), seeded=seeded)
                    self._analysis = None
                stage("cutting the model at its target layer")
                grid_from = [g for g in [(record.target or {}).get("grid_from")] if g]
                cut = split(model, record.target_layers[0], record.output, record.input, grid_from)
                made = [
                    self._session_from(part, name) for name, part in (("body", cut.body), ("head", cut.head))
                ]
                self._split[seeded] = (made[0], made[1], cut.boundary)
            return self._split[seeded]

    def relevance(self, composite, seeded: bool) -> Session:
        """The LRP graph of ``composite`` (:mod:`onnx_xai.graph.rules.relevance`) for this objective,
        built on first use; a rewritten model serves the composite it was rewritten with."""
        if self.rewritten:
            record = self.record()
            if record.composite != composite.name:
                raise InputError(
                    f"this rewritten model has no LRP relevance for {composite.name!r}"
                    + (f" (it has {record.composite!r})" if record.composite else "")
                    + "; rewrite the original with onnx-xai augment --outputs relevance"
                )
            return self._rewritten_serves(("relevance",), seeded)
        with self._lock:
            key = GraphKey(("relevance",), seeded, composite)
            if key not in self._sessions:
                from ..graph.augment import augment

                model = augment(self._analyze(), outputs=("relevance",), seeded=seeded, composite=composite)
                self._analysis = None
                stage(f"compiling the {composite.name} LRP graph on {self.backend}")
                self._sessions[key] = self._session_from(model, f"{composite.name} LRP")
            return self._sessions[key]

    def run(
        self,
        output_sets: str | tuple[str, ...],
        names: list[str],
        feeds: dict[str, np.ndarray],
        seeded: bool = False,
        fed: bool = False,
    ) -> list[np.ndarray]:
        return self.run_on(self.get(output_sets, seeded, fed), names, feeds)

    def run_on(self, session: Session, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``names`` from one of this set's sessions, fed the inputs it takes of ``feeds``."""
        wanted = [i.name for i in session.inputs]
        missing = [name for name in wanted if name not in feeds]
        if missing:
            raise InputError(
                f"the model also takes input(s) {', '.join(missing)}: give their values with extra_inputs"
            )
        outputs = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
        if self._lean:
            release_memory()  # without the arena, a run's activations go back to the heap: return them
        return outputs


def _light(sets: tuple[str, ...]) -> bool:
    """Whether output sets are served by the forward-cost graph (the first of :data:`TIERS`)."""
    return set(sets) <= {"score", *TIERS[0]}
