"""Runtimes that run a (rewritten) ONNX model: one small interface, two implementations.

A :class:`Backend` makes a :class:`Session` from a model (a path or serialized bytes); a session
lists its inputs (name, shape with symbolic dims as strings, element type as onnxruntime spells it,
``tensor(float)``), runs with feeds and returns the outputs asked for, and reports the model's
``metadata_props`` and the device it runs on. Each runtime is imported only when its backend is
made, so neither is required by the other:

- ``onnxruntime`` (CPU, CUDA from ``onnxruntime-gpu``): sessions at the full optimization level,
  worker threads that do not spin (several sessions share the cores);
- ``openvino`` (CPU): the model compiled with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO defaults to
  bf16 on CPUs that have it, which would not be the model's arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError, ModelError, RunError
from .failures import describe
from .openvino_core import openvino_core
from .shared_arena import use_shared_arena
from .shared_kernels import saved_optimized_form, shares_kernels
from .shared_weights import shared_initializers
from .work import checkpoint

# the CLI repeats this tuple (it must not import a runtime); "auto" races the two (.auto_backend)
BACKENDS = ("onnxruntime", "openvino", "auto")
# MaxPool's backward each runtime runs fastest (augment's ``maxpool``): OpenVINO's CPU plugin runs a
# MaxPool with Indices on a reference kernel (ResNet-50's input gradient: 1.5x onnxruntime's time with
# it, 1.0x with the window masks; tools/bench_backends.py). The window masks cost onnxruntime 1-2 %
# (ResNet-50, same tool), so one graph serves both candidates of "auto".
MAXPOOL_BACKWARD = {"onnxruntime": "scatter", "openvino": "windows", "auto": "windows"}


@dataclass(frozen=True)
class Port:
    """A model input or output as a session sees it."""

    name: str
    shape: tuple
    type: str  # as onnxruntime spells it: "tensor(float)", "tensor(uint8)", ...


class Session:
    """One compiled model (see the module docstring)."""

    inputs: list[Port]
    outputs: list[Port]
    device: str

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs ``names`` for ``feeds``, once the caller's work allows one more run
        (:func:`onnx_xai.runtime.work.checkpoint`: its deadline and cancellation)."""
        checkpoint(len(next(iter(feeds.values()))) if feeds else 1)
        return self._run(names, feeds)

    def _run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def metadata(self) -> dict[str, str]:
        raise NotImplementedError


class OnnxRuntimeSession(Session):
    def __init__(
        self,
        model: bytes | str,
        providers: list[str] | None,
        threads: int | None,
        arena: bool = True,
        shared: tuple[list[str], list] = ([], []),
        kernels: bool = True,
    ):
        import onnxruntime as ort

        self._settings = (arena, threads)
        providers = providers or default_providers()
        self.shared = dict(zip(*shared))  # weights held once for every session (runtime.shared_weights)
        made = None
        if kernels and shares_kernels(providers, sum(held.array.nbytes for held in self.shared.values())):
            made = self._sharing_kernels(model, providers)
        try:
            self._session = made or self._made(model, providers, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime cannot load the model: {describe(exc)}") from None
        # onnxruntime's Python session keeps the bytes it was made from (a whole copy of the graph
        # and its weights), only to remake itself on another provider after a provider's failure:
        # that fallback is off (a failure is a RunError), and the copy goes.
        self._session.disable_fallback()
        self._session._model_bytes = None
        self.inputs = [Port(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs()]
        self.outputs = [Port(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs()]
        self.device = self._session.get_providers()[0]

    def _sharing_kernels(self, model: bytes | str, providers: list[str]):
        """A session made from ``model``'s saved optimized form, its large tensors (the optimizer's
        kernels among them) from the shared pool (:mod:`.shared_kernels`); None where that fails
        (the weights given are kept for the usual session)."""
        import onnx
        import onnxruntime as ort

        given = self.shared
        full = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        with saved_optimized_form(lambda path: self._made(model, providers, full, path)) as path:
            if path is None:
                return None
            try:
                self.shared = dict(zip(*shared_initializers(onnx.load(path))))
                return self._made(path, providers, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            except Exception:  # noqa: BLE001 - onnx or onnxruntime refusing the form: the usual session
                self.shared = given
                return None

    def _made(self, model: bytes | str, providers: list[str], level, save_to: str | None = None):
        """An onnxruntime session of ``model`` at optimization ``level`` (saving its optimized form
        at ``save_to``), given the shared weights."""
        import onnxruntime as ort

        arena, threads = self._settings
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = arena
        if arena:
            use_shared_arena(options)  # one arena for every session of the process (.shared_arena)
        for name, held in self.shared.items():
            options.add_initializer(name, held.value)
        # No prepacked copy of each weight per session (sessions share the weights themselves):
        # measured, the same speed within 2 % (ResNet-50's gradient at batch 1 and 16, GPT-2's).
        options.add_session_config_entry("session.disable_prepacking", "1")
        options.graph_optimization_level = level
        options.log_severity_level = 4  # its errors come back as exceptions, said in one line
        # Several sessions (one per method) share the cores: spinning worker threads of one would
        # slow the next; measured, not spinning costs nothing on 2 cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # QDQ models run as the ONNX definition says (dequantize, float op, quantize) on every CPU:
        # fused int8 kernels are chosen per instruction set and need not agree with it.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        if threads:
            options.intra_op_num_threads = threads
        if save_to is not None:
            options.optimized_model_filepath = save_to
        return ort.InferenceSession(model, options, providers=providers)

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    def _run(self, names, feeds):
        try:
            found = self._session.run(names, feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise RunError(f"onnxruntime failed running the model: {describe(exc)}") from None
        return [_as_array(value) for value in found]

    def metadata(self):
        return dict(self._session.get_modelmeta().custom_metadata_map)


def _as_array(value):
    """An output as an array: a ``ZipMap``'s sequence of maps (class -> probability, one per row, as
    scikit-learn's converters write classifiers) as ``[N, classes]`` in the map's order."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return np.array([list(row.values()) for row in value], np.float32)
    return value


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu offers it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


OPENVINO_TYPES = {
    "f32": "tensor(float)",
    "f16": "tensor(float16)",
    "f64": "tensor(double)",
    "u8": "tensor(uint8)",
    "i8": "tensor(int8)",
    "u16": "tensor(uint16)",
    "i16": "tensor(int16)",
    "i32": "tensor(int32)",
    "i64": "tensor(int64)",
    "boolean": "tensor(bool)",
}


class OpenVinoSession(Session):
    def __init__(self, model: bytes | str, threads: int | None):
        try:
            import openvino  # noqa: F401 - the package's presence, said in one line
        except ImportError:
            raise InputError(
                "the openvino backend needs the openvino package: pip install 'onnx_xai[openvino]'"
            ) from None
        from ..graph.assemble import unshared_weights
        from ..graph.float_quantization import activations_in_float
        from ..graph.model_io import load_model

        # external data read; see unshared_weights and activations_in_float
        proto = activations_in_float(unshared_weights(load_model(model)[0]))
        config = {"INFERENCE_PRECISION_HINT": "f32"} | ({"INFERENCE_NUM_THREADS": threads} if threads else {})
        try:
            core = openvino_core()  # one per process: see .openvino_core
            self._compiled = core.compile_model(core.read_model(proto.SerializeToString()), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own exception types
            raise ModelError(f"OpenVINO cannot compile the model: {describe(exc)}") from None
        self._metadata = {p.key: p.value for p in proto.metadata_props}
        given, declared = {i.name for i in proto.graph.input}, {o.name for o in proto.graph.output}
        self.inputs = [self._port(p, given) for p in self._compiled.inputs]
        self.outputs = [self._port(p, declared) for p in self._compiled.outputs]
        self.device = "CPU (OpenVINO)"

    @staticmethod
    def _port(port, declared: set[str]) -> Port:
        """A port named as the ONNX file names it (OpenVINO may know a tensor by several names)."""
        shape = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
        name = next((n for n in sorted(port.get_names()) if n in declared), port.get_any_name())
        return Port(name, shape, OPENVINO_TYPES.get(port.get_element_type().get_type_name(), "?"))

    def _run(self, names, feeds):
        ports = {port.name: index for index, port in enumerate(self.inputs)}  # named as the file names them
        try:
            result = self._compiled.create_infer_request().infer(
                {ports[k]: v for k, v in feeds.items() if k in ports}
            )
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own exception types
            raise RunError(f"OpenVINO failed running the model: {describe(exc)}") from None
        by_name = {n: result[o] for o in self._compiled.outputs for n in o.get_names()}
        return [np.asarray(by_name[n]) for n in names]

    def metadata(self):
        return dict(self._metadata)


def release_memory() -> None:
    """Hand the heap's free pages back to the system (glibc keeps what a dropped session freed);
    a no-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def make_session(
    backend: str,
    model: bytes | str,
    providers: list[str] | None = None,
    threads: int | None = None,
    arena: bool = True,
    shared: tuple[list[str], list] = ([], []),
    kernels: bool = True,
) -> Session:
    """A session of ``backend`` (one of :data:`BACKENDS`) for ``model``; ``arena=False`` lets
    onnxruntime return activation memory after each run (about 10 % slower on a backward graph);
    ``shared``: the names and OrtValues of the external initializers
    that onnxruntime reads from the caller's buffers (:mod:`.shared_weights`); ``kernels``: whether
    an onnxruntime CPU session of a large model shares its optimized kernels (:mod:`.shared_kernels`)."""
    if backend == "onnxruntime":
        return OnnxRuntimeSession(model, providers, threads, arena, shared, kernels)
    if backend == "openvino":
        return OpenVinoSession(model, threads)
    raise InputError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
