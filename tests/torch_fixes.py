"""Where PyTorch's own autograd is not the derivative of its forward, and the tests' way around it.

PyTorch's CPU BatchNorm backward in eval mode (2.13 and 2.14 at least) reads a gradient whose strides
are channels-last as if it were contiguous when the BatchNorm's input is contiguous: the input
gradient comes out permuted, off by 100 % or more. A BatchNorm whose output is flattened and
permuted into tokens (``f.flatten(2).permute(0, 2, 1)``, as every DETR-family input projection does)
receives exactly such a gradient. ``exact_batch_norm()`` hands each BatchNorm a contiguous gradient,
so that a torch reference computed inside it is the derivative its finite differences agree with;
a model traced or exported inside it is the model untouched (the suite runs inside it throughout).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


class ContiguousGradient(torch.autograd.Function):
    """The identity, whose backward makes the gradient it passes on contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


@contextlib.contextmanager
def exact_batch_norm():
    """Within the block, ``F.batch_norm`` (which every ``nn.BatchNorm*d`` calls) gets contiguous
    gradients."""
    original = F.batch_norm

    def batch_norm(*args, **kwargs):
        found = original(*args, **kwargs)
        if _exporting() or not (torch.is_grad_enabled() and found.requires_grad):
            return found  # an export traces the model as it is; no gradient, nothing to fix
        return ContiguousGradient.apply(found)

    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = original
