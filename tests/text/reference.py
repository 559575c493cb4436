"""float64 torch autograd at a text encoder's word embeddings: the reference of the token scores."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .conftest import TextModel


def embedding_gradients(
    model: TextModel, ids: np.ndarray, feeds: dict, targets, positions=None
) -> np.ndarray:
    """d logit[target] / d word embeddings, float64, ``[N, T, D]`` (a forward hook keeps the output);
    a model that labels every token: the logit of ``targets`` at each row's token of ``positions``."""
    net = copy.deepcopy(model.net).double()
    kept = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        kept["embeddings"] = output

    net.get_submodule(model.embeddings).register_forward_hook(keep)
    given = {name: torch.as_tensor(np.asarray(value, np.int64)) for name, value in feeds.items()}
    logits = net(input_ids=torch.as_tensor(ids), **given).logits
    rows = torch.arange(len(ids))
    at = logits if positions is None else logits[rows, torch.as_tensor(positions)]
    at[rows, torch.as_tensor(targets)].sum().backward()
    return kept["embeddings"].grad.numpy()
