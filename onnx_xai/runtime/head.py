"""The model from its target layer on, for the methods that change the layer's activation.

:class:`LayerHead` runs the two graphs of :func:`onnx_xai.graph.split.split`: the body gives a
batch's raw activation at the first target layer (in the layout the model computes it: channels
first or last, or tokens ``[N, T, C]`` / ``[T, N, C]``), the head scores changed copies of one
sample's activation, many per run. Changes are stated on the layer's spatial grid, whatever the
layout, and made to every boundary tensor shaped like the layer (a transformer's residual stream
beside its LayerNorm, as ViT-ReciproCAM changes both): :meth:`LayerHead.masked` multiplies each
position of the grid by a mask (the tokens before the grid, a class token, kept as they are),
:meth:`LayerHead.ablated` sets whole channels to a value. :meth:`LayerHead.grid` reads the
activation as ``[N, K, h, w]``; a token grid known only at run time is read off the patch embedding's
shape by the body's run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..graph import contract as c
from ..graph.contract import LayerView

TOKENS = "tokens"


class LayerHead:
    """Body and head sessions of one model and objective (module docstring)."""

    def __init__(
        self, split: tuple, view: LayerView, input_name: str, output: str, extra: dict,
        probabilities: bool = False,
    ):  # fmt: skip
        self.body, self.head, self.boundary = split
        self.view, self.input_name, self.output = view, input_name, output
        self.extra = extra  # the model's other inputs, as the caller gave them
        self.probabilities = probabilities  # the output is all through a Softmax or Sigmoid
        self.tokens = view.layout == TOKENS
        self._head_inputs = {i.name for i in self.head.inputs}

    def activation(self, x: np.ndarray, objective: np.ndarray) -> dict[str, np.ndarray]:
        """The boundary's tensors for the batch (the layer's first), batch first (``[N, ...]``)."""
        feeds = {self.input_name: x, _objective_name(objective): objective, **self.extra}
        wanted = {i.name for i in self.body.inputs}
        names = self.boundary + ([self.view.grid_from] if self.view.grid_from else [])
        found = self.body.run(names, {k: v for k, v in feeds.items() if k in wanted})
        if self.view.grid_from:  # the grid read off the patch embedding [N, C, h, w] at run time
            h, w = found.pop().shape[2:]
            tokens = found[0].shape[1 - int(self.view.sequence_first)]
            self.view = replace(self.view, grid=(h, w), prefix=tokens - h * w)
        return {name: self._batch_first(value) for name, value in zip(self.boundary, found)}

    def scores(self, copies: dict, objective: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The score of each copy of one sample's boundary (batch first), for that sample's
        ``objective`` (one class ``[1]`` or one seed ``[1, ...]``) and input ``x`` (``[1, ...]``), and
        the model's output it is read from."""
        count = len(copies[self.view.name])
        feeds = {name: self._batch_first(value) for name, value in copies.items()}  # its own inverse
        feeds |= {_objective_name(objective): np.repeat(objective, count, axis=0)}
        feeds |= {k: v for k, v in self.extra.items() if k in self._head_inputs}
        if self.input_name in self._head_inputs:  # the head reads the image's shape
            feeds[self.input_name] = np.repeat(x, count, axis=0)
        found, output = self.head.run([c.SCORE, self.output], feeds)
        return found.astype(np.float64), output

    def grid(self, acts: dict) -> np.ndarray:
        """The layer's activation ``[N, ...]`` as ``[N, K, h, w]``."""
        raw = acts[self.view.name]
        if self.tokens:
            h, w = self.view.grid or (0, 0)
            start = self.view.prefix or 0
            return raw[:, start : start + h * w].reshape(len(raw), h, w, -1).transpose(0, 3, 1, 2)
        return raw.transpose([self.view.layout.index(a) for a in "NCHW"])

    def sample(self, acts: dict, i: int) -> dict:
        """Sample ``i``'s boundary (each ``[1, ...]``)."""
        return {name: value[i : i + 1] for name, value in acts.items()}

    def masked(self, sample: dict, masks: np.ndarray) -> dict:
        """Copies of one sample's boundary, the layer's grid (and every boundary tensor shaped like
        it: a transformer's residual stream) times each of ``masks`` ``[M, h, w]``; a token layer's
        tokens before the grid (class, registers) kept whole."""
        if self.tokens:
            start = self.view.prefix or 0
            change = np.ones((len(masks), sample[self.view.name].shape[1]), np.float32)
            change[:, start : start + masks[0].size] = masks.reshape(len(masks), -1)
            change = change[:, :, None]
        else:
            if [a for a in self.view.layout if a in "HW"] != ["H", "W"]:
                masks = masks.transpose(0, 2, 1)
            change = np.expand_dims(masks, self.view.layout.index("C"))
        return self._changed(sample, len(masks), lambda v: v * change.astype(v.dtype))

    def ablated(self, sample: dict, channels: np.ndarray, value: float) -> dict:
        """Copies of one sample's boundary, copy ``k`` with channel ``channels[k]`` of the layer (and
        of the tensors shaped like it) set to ``value`` everywhere (every token, as pytorch-grad-cam
        ablates a ViT)."""
        axis = 2 if self.tokens else self.view.layout.index("C")

        def ablate(v: np.ndarray) -> np.ndarray:
            copies = v.copy()
            np.moveaxis(copies, axis, 1)[np.arange(len(channels)), channels] = value
            return copies

        return self._changed(sample, len(channels), ablate)

    def _changed(self, sample: dict, count: int, change) -> dict:
        layer_shape = sample[self.view.name].shape
        return {
            name: change(np.repeat(v, count, axis=0))
            if v.shape == layer_shape
            else np.repeat(v, count, axis=0)
            for name, v in sample.items()
        }

    def _batch_first(self, value: np.ndarray) -> np.ndarray:
        return np.swapaxes(value, 0, 1) if self.view.sequence_first and value.ndim == 3 else value


def layer_head(sessions, input_name: str, seeded: bool, extra: dict) -> LayerHead:
    """The :class:`LayerHead` of a :class:`~.sessions.SessionSet`'s model at its first target layer,
    for the class objective or the seeded one."""
    record = sessions.record()
    target = dict(record.target)
    view = LayerView(**target | {"grid": tuple(target["grid"]) if target.get("grid") else None})
    return LayerHead(
        sessions.split(seeded), view, input_name, record.output, extra,
        probabilities=record.output in record.probability_outputs,
    )  # fmt: skip


def _objective_name(objective: np.ndarray) -> str:
    return c.SEED if objective.dtype.kind == "f" else c.TARGET
