"""The ``Explainer``: the four saliency methods, with maps and boxes, on a model's ONNX file.

Usage::

    ex = onnx_xai.Explainer("resnet50.onnx")        # original or rewritten; path, bytes or ModelProto
    result = ex.explain(x, "gradcam", target=None)  # x: the preprocessed batch the model takes
    result.maps, result.boxes

Definitions (the README's method table): ``raw`` is the method's attribution, ``maps`` are ``(N, H, W)``
float32 in [0, 1] at the input's resolution, ``boxes`` are ``(N, 4)`` int (x0, y0, x1, y1),
half-open, around the largest region above ``box_threshold`` (20 %) of each map's maximum (the
upsampled map before min-max normalization, as Zhou et al. threshold the CAM itself, so negative
evidence elsewhere never lowers the threshold).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .inputs import InputSpec
from .maps import boxes as find_boxes
from .maps import normalize
from .methods import METHOD_NAMES, SMOOTHGRAD, Method, SmoothGradOptions, base_method, noisy_batches
from .sessions import FORWARD, SessionSet

TARGET_INPUT = "xai_target"


@dataclass
class Explanation:
    """The result of :meth:`Explainer.explain` for a batch of N inputs.

    ``boxes`` is computed on first access (it labels connected regions, which costs more than the
    rest of the post-processing), then kept.
    """
    method: str
    targets: np.ndarray  # (N,) int64, the classes explained
    scores: np.ndarray  # (N,) float32, their pre-softmax scores
    raw: np.ndarray  # the method's attribution (input gradient (N, C, H, W) or map (N, h, w))
    maps: np.ndarray  # (N, H, W) float32 in [0, 1] at input resolution
    pixels: np.ndarray = field(repr=False)  # the maps before normalization, which boxes threshold
    box_threshold: float = 0.2
    _boxes: np.ndarray | None = field(default=None, repr=False)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) int64, (x0, y0, x1, y1) half-open, in input pixels."""
        if self._boxes is None:
            self._boxes = find_boxes(self.pixels, self.box_threshold)
        return self._boxes


class Explainer:
    """Explain an ONNX image classifier with gradient, SmoothGrad, CAM and Grad-CAM.

    Args:
        model: path, bytes or ``onnx.ModelProto``; an original model is rewritten in memory (one
            pruned graph per method, on first use), a model from ``onnx-xai augment`` is used as is.
        target_layer: the 4-D tensor CAM and Grad-CAM explain (default: found automatically).
        providers: onnxruntime execution providers (default: CUDA then CPU, where available).
        threads: intra-op threads per session (default: onnxruntime's choice).
        input_name: the image input, for models with several inputs (default: the first 4-D one).
        output_name: the output explained, for models with several (default: the first).
    """

    def __init__(self, model, target_layer: str | None = None, providers: Sequence[str] | None = None,
                 threads: int | None = None, input_name: str | None = None,
                 output_name: str | None = None):
        self._sessions = SessionSet(model, target_layer, list(providers) if providers else None, threads,
                                    input_name, output_name)
        forward = self._sessions.get(FORWARD)
        spec = next(i for i in forward.get_inputs() if i.name == self.input_name)
        self._input = InputSpec.of(spec.name, spec.shape, spec.type)
        self._num_classes = None

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def target_layer(self) -> str:
        """The name of the tensor CAM and Grad-CAM explain."""
        return self._sessions.description()["target_layer"]

    @property
    def input_name(self) -> str:
        return self._sessions.description()["input"]

    @property
    def layout(self) -> str:
        """"NCHW" or "NHWC", the image input's layout."""
        return self._sessions.description()["layout"]

    @property
    def input_shape(self) -> tuple:
        """The image input's shape as the model declares it (symbolic dims as strings)."""
        return self._input.shape

    @property
    def input_dtype(self) -> np.dtype:
        """The image input's element type (float32, float16, or uint8 for raw-pixel models)."""
        return self._input.dtype

    @property
    def input_channels(self) -> int | None:
        """The number of image channels, when the model fixes it."""
        channels = self.input_shape[self.layout.index("C")]
        return channels if isinstance(channels, int) else None

    @property
    def num_classes(self) -> int | None:
        """The number of classes when the model's output declares it, else None."""
        output = self._sessions.description()["output"]
        spec = next(o for o in self._sessions.get(FORWARD).get_outputs() if o.name == output)
        return spec.shape[-1] if spec.shape and isinstance(spec.shape[-1], int) else None

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually run on."""
        return self._sessions.providers

    @property
    def cam_available(self) -> bool:
        return bool(self._sessions.description()["cam"])

    # -- calls ---------------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, **extra_inputs) -> np.ndarray:
        """The model's output (its first output, or ``output_name``) for a batch."""
        x = self._check_input(x)
        feeds = {self.input_name: x, TARGET_INPUT: np.full(len(x), -1, np.int64), **self._extra(extra_inputs)}
        output = self._sessions.description()["output"]
        return self._sessions.run(FORWARD, [output], feeds)[0]

    def input_gradient(self, x: np.ndarray, target=None, **extra_inputs) -> np.ndarray:
        """d score / d x, same shape as ``x``; ``target`` as in :meth:`explain`."""
        return self._run(base_method("gradient"), self._check_input(x), target, self._extra(extra_inputs))[0]

    def explain(self, x: np.ndarray, method: str, target=None, box_threshold: float = 0.2,
                extra_inputs: dict | None = None, **options) -> Explanation:
        """Explain a batch with one method.

        Args:
            x: the preprocessed float32 batch the model expects.
            method: ``"gradient"``, ``"smoothgrad"``, ``"cam"`` or ``"gradcam"``.
            target: None (each sample's top-1 class), an int, or one int per sample.
            box_threshold: fraction of each map's maximum that bounds the box region.
            extra_inputs: values of the model's other inputs, if it has any.
            **options: SmoothGrad's ``n_samples``, ``noise_level``, ``seed``, ``noise``, ``base``,
                ``batch_size``.

        Raises:
            InputError: bad input, target or option; CamNotApplicableError for CAM on other heads.
        """
        x, extra = self._check_input(x), self._extra(extra_inputs)
        _check_threshold(box_threshold)
        if isinstance(method, str) and method == SMOOTHGRAD:
            opts = SmoothGradOptions.parse(options)
            base = base_method(opts.base)
            raw, targets, scores = self._smooth(base, x, target, opts, extra)
        else:
            if options:
                raise InputError(f"method {method!r} takes no options {sorted(options)}")
            base = base_method(method)
            raw, targets, scores = self._run(base, x, target, extra)
        return self._finish(method, base, raw, targets, scores, x, box_threshold)

    def explain_many(self, x: np.ndarray, methods: Sequence[str], target=None, box_threshold: float = 0.2,
                     extra_inputs: dict | None = None, **options) -> dict[str, Explanation]:
        """Several methods at once: the non-SmoothGrad ones share one run of one graph (gradient, CAM
        and Grad-CAM together cost about one gradient); ``smoothgrad`` (options as :meth:`explain`)
        reuses the targets that run resolved."""
        x, extra = self._check_input(x), self._extra(extra_inputs)
        _check_threshold(box_threshold)
        if isinstance(methods, str) or not all(isinstance(m, str) for m in methods) or not methods:
            raise InputError(f"methods must be a non-empty list of method names, not {methods!r}")
        bases = [base_method(m) for m in dict.fromkeys(methods) if m != SMOOTHGRAD]
        results: dict[str, Explanation] = {}
        targets = target
        if bases:
            raws, targets, scores = self._run_all(bases, x, target, extra)
            for method in bases:
                results[method.name] = self._finish(method.name, method, raws[method.name], targets, scores,
                                                    x, box_threshold)
        if SMOOTHGRAD in methods:
            results[SMOOTHGRAD] = self.explain(x, SMOOTHGRAD, targets, box_threshold, extra, **options)
        elif options:
            raise InputError(f"options {sorted(options)} apply to smoothgrad only")
        return {m: results[m] for m in dict.fromkeys(methods)}

    # -- internals -----------------------------------------------------------------------------------
    def _finish(self, name: str, base: Method, raw, targets, scores, x, box_threshold) -> Explanation:
        if not np.isfinite(raw).all():
            raise InputError(f"{name} is not finite for this input: the model's values overflow "
                             f"{self.input_dtype} (check the input's scale and the noise level)")
        pixels = base.to_pixels(raw, self.layout, self._spatial_size(x))
        return Explanation(name, targets, scores, raw, normalize(pixels), pixels, box_threshold)

    def _run(self, method: Method, x: np.ndarray, target, extra: dict):
        raws, targets, scores = self._run_all([method], x, target, extra)
        return raws[method.name], targets, scores

    def _run_all(self, methods: Sequence[Method], x: np.ndarray, target, extra: dict):
        """One run of the graph that serves every method given; raw outputs keyed by method name."""
        feeds = {self.input_name: self._input.cast(x), TARGET_INPUT: self._targets(target, len(x), x, extra),
                 **extra}
        sets = tuple(sorted({m.output_set for m in methods}))
        outputs = self._sessions.run(sets, [m.raw_output for m in methods] + ["xai_score", "xai_target_used"],
                                     feeds)
        raws = {m.name: out for m, out in zip(methods, outputs)}
        return raws, outputs[-1].astype(np.int64), outputs[-2].astype(np.float32)

    def _smooth(self, method: Method, x: np.ndarray, target, opts: SmoothGradOptions, extra: dict):
        _, targets, scores = self._run(method, x, target, extra)  # resolve top-1 on the clean input
        total = None
        for noisy, noisy_targets, owners in noisy_batches(x, targets, opts):
            raw, _, _ = self._run(method, noisy, noisy_targets, extra)
            if total is None:
                total = np.zeros((len(x),) + raw.shape[1:], np.float64)
            for owner in np.unique(owners):  # copies arrive grouped by sample
                total[owner] += raw[owners == owner].sum(axis=0, dtype=np.float64)
        count = len(opts.noise) if opts.noise is not None else opts.n_samples
        return (total / count).astype(np.float32), targets, scores

    def _targets(self, target, n: int, x: np.ndarray, extra: dict) -> np.ndarray:
        if target is None:
            return np.full(n, -1, np.int64)
        values = np.broadcast_to(np.asarray(target), (n,)) if np.ndim(target) == 0 else np.asarray(target)
        if values.shape != (n,) or values.dtype.kind not in "iu":
            raise InputError(f"target must be None, an int or {n} ints, got {target!r}")
        classes = self._classes(x, extra)
        bad = [int(t) for t in values if not -1 <= t < classes]
        if bad:
            raise InputError(f"class {bad[0]} is out of range for a model with {classes} classes")
        return values.astype(np.int64)

    def _classes(self, x: np.ndarray, extra: dict) -> int:
        if self._num_classes is None:
            self._num_classes = self.num_classes or int(self.predict(x, **extra).shape[-1])
        return self._num_classes

    def _check_input(self, x) -> np.ndarray:
        return self._input.check(x)

    def _extra(self, extra_inputs) -> dict:
        """The model's other inputs: a dict of arrays, never the image or the target."""
        if extra_inputs is None:
            return {}
        if not isinstance(extra_inputs, dict):
            raise InputError(f"extra_inputs must be a dict of arrays, not {type(extra_inputs).__name__}")
        clash = [k for k in extra_inputs if k in (self.input_name, TARGET_INPUT)]
        if clash:
            raise InputError(f"extra_inputs cannot set {clash[0]!r}: pass the image as x and the class as target")
        return {k: np.asarray(v) for k, v in extra_inputs.items()}

    def _spatial_size(self, x: np.ndarray) -> tuple[int, int]:
        return x.shape[self.layout.index("H")], x.shape[self.layout.index("W")]


def _check_threshold(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not 0 < value <= 1:
        raise InputError(f"box_threshold must be a number in (0, 1], not {value!r}")


__all__ = ["Explainer", "Explanation", "METHOD_NAMES"]
