"""The sessions of one model: one per combination of output sets, created lazily, reused, thread-safe.

Handed an original model, the session set rewrites it (importing ``onnx`` and the graph package only
then) into one pruned graph per combination of output sets on first use: Grad-CAM never pays for the
input-gradient backward. Handed a model already rewritten by ``onnx-xai augment``, it reads the
record through the runtime and serves every output set it contains from that one graph. Sessions
come from a backend (:mod:`.backends`: onnxruntime or OpenVINO).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..contract import METADATA_KEY, OUTPUT_SETS, RewriteRecord
from ..errors import CamNotApplicableError, InputError, ModelError
from .backends import MAXPOOL_BACKWARD, Session, make_session

FORWARD = "forward"


def _fixed_batch(shape) -> bool:
    return len(shape) > 1 and isinstance(shape[0], int)


class SessionSet:
    """Lazily built sessions of one model, keyed by output set (``"forward"``, ``"cam"``, ...).

    Args:
        model: path, bytes or ``onnx.ModelProto``, original or rewritten.
        target_layer, input_name, output_name: as :func:`onnx_xai.augment` (original models only).
        providers: onnxruntime execution providers (default: CUDA, then CPU, where available).
        threads: intra-op threads per session (None: the runtime's default).
        backend: ``"onnxruntime"`` or ``"openvino"``.
    """

    def __init__(self, model, target_layer=None, providers: list | None = None,
                 threads: int | None = None, input_name: str | None = None,
                 output_name: str | None = None, backend: str = "onnxruntime"):
        self._source = model
        self._choice = dict(target_layer=target_layer, input_name=input_name, output_name=output_name)
        self._providers, self._threads, self.backend = providers, threads, backend
        self._lock = threading.Lock()
        self._sessions: dict = {}
        self._analysis = None
        first = self._session_from(self._bytes_or_path())
        stored = first.metadata().get(METADATA_KEY)
        self.rewritten = stored is not None
        self._record = RewriteRecord.from_json(stored) if stored else None
        self._sessions[FORWARD] = first
        if not self.rewritten and any(_fixed_batch(i.shape) for i in first.inputs):
            # An export with a fixed batch size: serve the forward from the batch-freed copy.
            self._sessions[FORWARD] = self._session_from(self._analyze().model.SerializeToString())
        if self.rewritten:
            if any(v is not None for v in self._choice.values()):
                raise InputError("target_layer, input_name and output_name apply to original models; "
                                 "this one was already rewritten")
            self._whole = first
            for output_set in self._provided():
                self._sessions[((output_set,), self._record.objective == "seed")] = first
            if self._record.objective == "seed":  # its graph needs a seed shaped like the output
                self._sessions[FORWARD] = self._session_from(self._forward_of_rewritten())

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

    def _forward_of_rewritten(self) -> bytes:
        from ..graph.assemble import forward_only
        from ..graph.model_io import load_model
        return forward_only(load_model(self._source)[0]).SerializeToString()

    def _session_from(self, model: bytes | str) -> Session:
        return make_session(self.backend, model, self._providers, self._threads)

    @property
    def providers(self) -> list[str]:
        """What the sessions actually run on (onnxruntime's providers, e.g. CPU when CUDA could not
        be loaded; the OpenVINO device)."""
        forward = self._sessions[FORWARD]
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
        present = set(self._record.outputs)
        return [name for name, outputs in OUTPUT_SETS.items() if set(outputs) <= present]

    def cheapest(self) -> str:
        """The output set that costs least to run (for runs that need only the score)."""
        if not self.rewritten:
            return "activation"
        provided = self._provided()
        return next(s for s in ("activation", "cam", "gradcam", "input_grad", "guided") if s in provided)

    def _analyze(self):
        if self._analysis is None:
            from ..graph.augment import analyze
            self._analysis = analyze(self._source, **self._choice)
        return self._analysis

    def get(self, output_sets: str | tuple[str, ...], seeded: bool = False) -> Session:
        """The session serving ``output_sets`` (one name, or a tuple served by one graph) for the
        class objective (``xai_target``) or the seeded one (``xai_seed``), built on first use."""
        if output_sets == FORWARD:
            return self._sessions[FORWARD]
        sets = (output_sets,) if isinstance(output_sets, str) else tuple(sorted(output_sets))
        key = (sets, seeded)
        session = self._sessions.get(key)
        if session is not None:
            return session
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = self._build(sets, seeded)
            return self._sessions[key]

    def _build(self, output_sets: tuple[str, ...], seeded: bool) -> Session:
        if self.rewritten:
            return self._rewritten_serves(output_sets, seeded)
        record = self.record()
        if "cam" in output_sets and (seeded or not record.cam):
            raise CamNotApplicableError("CAM needs a class target: it reads the head's class weights" if seeded
                                        else f"CAM needs a global-average-pool -> linear head: {record.head}")
        from ..graph.augment import augment
        rewritten = augment(self._analyze(), outputs=output_sets, seeded=seeded, maxpool=MAXPOOL_BACKWARD[self.backend])
        return self._session_from(rewritten.SerializeToString())

    def _rewritten_serves(self, output_sets: tuple[str, ...], seeded: bool) -> Session:
        """The rewritten model's one session, when it gives these sets for this objective."""
        record, present = self._record, set(self._provided())
        if (record.objective == "seed") != seeded:
            raise InputError(f"this rewritten model takes {'a seed' if record.objective == 'seed' else 'a class target'}; "
                             f"rewrite the original for the other objective (onnx-xai augment{' --seeded' if seeded else ''})")
        missing = sorted(set(output_sets) - present)
        if not missing:
            return self._whole
        if "cam" in missing and not record.cam:
            raise CamNotApplicableError(f"CAM needs a global-average-pool -> linear head: {record.head}")
        raise InputError(f"this rewritten model has no {missing[0]!r} outputs (it has {', '.join(sorted(present))}); "
                         f"rewrite the original with onnx-xai augment --outputs {' '.join(output_sets)}")

    def run(self, output_sets: str | tuple[str, ...], names: list[str], feeds: dict[str, np.ndarray],
            seeded: bool = False) -> list[np.ndarray]:
        session = self.get(output_sets, seeded)
        wanted = [i.name for i in session.inputs]
        missing = [name for name in wanted if name not in feeds]
        if missing:
            raise InputError(f"the model also takes input(s) {', '.join(missing)}: give their values "
                             "with extra_inputs")
        return session.run(names, {k: v for k, v in feeds.items() if k in wanted})
