"""What an explained model is, read from its rewrite record and its sessions: the explained input
(name, kind, layout, shape, element type), the outputs and the explained one, the target layers, the
score and what it is (a tree ensemble's margin read from its trees, where they can be), the class
count, the metadata and the providers. :class:`~onnx_xai.runtime.explainer.Explainer` adds the calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..graph import contract as c
from ..graph.contract import RewriteRecord
from .inputs import InputSpec
from .margins import EnsembleMargins
from .methods.run_sizes import RunSizes
from .sessions import FORWARD, SessionSet


class ModelFacts:
    """The facts of a model held by its :class:`~.sessions.SessionSet` (module docstring)."""

    _sessions: SessionSet
    _input: InputSpec
    _trees: EnsembleMargins
    _run_sizes: RunSizes

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def record(self) -> RewriteRecord:
        """What the rewrite found and did (:class:`onnx_xai.graph.contract.RewriteRecord`)."""
        return self._sessions.record()

    @property
    def target_layer(self) -> str | None:
        """The name of the tensor the CAM family explains (the first, when there are several)."""
        return self._sessions.record().target_layer

    @property
    def target_layers(self) -> list[str]:
        """Every target layer: the CAM family's maps are computed on each and fused."""
        return self._sessions.record().target_layers

    @property
    def input_name(self) -> str:
        return self._sessions.record().input

    @property
    def layout(self) -> str | None:
        """ "NCHW" or "NHWC", the image input's layout; None for other inputs."""
        return self._sessions.record().layout

    @property
    def kind(self) -> str:
        """What the explained input is: ``image``, ``table``, ``signal``, ``tokens`` or ``tensor``."""
        return self._sessions.record().kind

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
        """The number of image channels, when the model fixes it (None for other inputs)."""
        if self.layout is None:
            return None
        channels = self.input_shape[self.layout.index("C")]
        return channels if isinstance(channels, int) else None

    @property
    def outputs(self) -> dict[str, tuple]:
        """The model's own outputs, name -> declared shape (symbolic dims as strings)."""
        return {
            o.name: tuple(o.shape or ())
            for o in self._sessions.get(FORWARD).outputs
            if not o.name.startswith("xai_")
        }

    @property
    def probability_outputs(self) -> list[str]:
        """The outputs whose every value comes from a Sigmoid or Softmax (values in [0, 1])."""
        return list(self._sessions.record().probability_outputs)

    @property
    def output_shape(self) -> tuple:
        """The explained output's shape as the model declares it (symbolic dims as strings)."""
        output = self._sessions.record().output
        return tuple(next(o for o in self._sessions.get(FORWARD).outputs if o.name == output).shape or ())

    @property
    def output_layout(self) -> str | None:
        """The explained output's layout when it is 4-D and the graph says (``"NHWC"`` for a Keras
        segmenter), else None."""
        return self._sessions.record().output_layout

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (class names, exporter facts; a rewrite keeps the original's)."""
        return dict(self._sessions.metadata)

    @property
    def num_classes(self) -> int | None:
        """The number of classes when the explained output is ``[N, K]`` with K declared, else None."""
        shape = self.output_shape
        return shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually run on."""
        return self._sessions.providers

    @property
    def backend(self) -> str:
        """The runtime that runs the sessions (``onnxruntime`` or ``openvino``), or ``auto``."""
        return self._sessions.backend

    @property
    def backend_choices(self) -> dict[str, str]:
        """With ``backend="auto"``: each graph built so far, the runtime that runs it and why
        ("racing" while its first runs are timed); empty with one runtime."""
        return self._sessions.backend_choices()

    @property
    def copies_per_run(self) -> Mapping:
        """Copies per run the batched methods found here, by (graph, sample shape, dtype): the size
        chosen (None while exploring), ms per copy of each size tried (:mod:`.methods.run_sizes`)."""
        return self._run_sizes.view()

    @property
    def output_name(self) -> str:
        """The explained output's name."""
        return self._sessions.record().output

    def source_model(self):
        """A private copy of the model as the caller gave it (``onnx.ModelProto``)."""
        from ..graph.model_io import load_model

        return load_model(self._sessions.source)[0]

    def source_path(self) -> str | None:
        """The model's file, where the caller gave one (its folder holds its tokenizer)."""
        source = self._sessions.source
        return str(source) if isinstance(source, (str, os.PathLike)) else None

    @property
    def cam_available(self) -> bool:
        return self._sessions.record().cam

    @property
    def inputs(self) -> dict[str, tuple]:
        """Every input of the model, name -> (declared shape, element type as onnxruntime says it)."""
        ports = self._sessions.get(FORWARD).inputs
        return {i.name: (tuple(i.shape), i.type) for i in ports if i.name not in (c.TARGET, c.SEED)}

    def tree_model(self):
        """The tree ensemble the explained output comes from (:class:`onnx_xai.graph.trees.TreeModel`),
        when it is one whose trees map back to the input's columns; else None."""
        found = self._trees.get()
        return found.tree if found is not None else None

    @property
    def score_kind(self) -> str:
        """What the score explained is (the record's score kind, or ``output`` for a tree ensemble
        whose trees cannot be read: its output as given, post-transform included)."""
        return self._trees.score_kind()
