"""Graphs onnxruntime optimizes once, whose rewritten kernels every session of the process shares.

onnxruntime optimizes each graph as its session is made: it folds constants (a backward's
transposed or flipped weights) and reorders each convolution's kernel for its blocked (NCHWc)
kernels, into new tensors each session keeps for itself, beside the weights the sessions share
(:mod:`.shared_weights`). On ResNet-50 that is 100 MB of forward kernels per graph and 90 MB more
per backward graph. Here the graph is optimized in a first session that saves its optimized form
(``optimized_model_filepath``, in a private temporary folder removed once the next session is
made); the session that runs is made from that file with optimization off (read by onnxruntime
itself: no copy of the form in Python), and its large tensors come from the pool of
:mod:`.shared_weights`, found by content: a kernel reordered for one graph is the same array for
every other graph that has it. The same kernels run, so the results are the same bits. The cost is
the second compile: ResNet-50's input-gradient graph builds in 1.75 s instead of 1.1. Only CPU
sessions of convolutional graphs (where the reordered kernels are) with :data:`KERNEL_BYTES` of
large weights or more take this path (smaller ones gain little; a transformer's large weights are
shared already and its gain was not measured); a graph whose optimized form cannot be saved or
loaded gets the usual session.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

KERNEL_BYTES = 16 * 2**20  # models with this much in large weights share their optimized kernels
SAVE_LIMIT = 2**30  # an optimized form is one protobuf (2 GB at most): larger models keep the usual path


def convolutional(model) -> bool:
    """Whether an ``onnx.ModelProto``'s main graph convolves (onnxruntime reorders those kernels)."""
    return any(node.op_type in ("Conv", "ConvTranspose") for node in model.graph.node)


def shares_kernels(providers: list[str], shared_bytes: int) -> bool:
    """Whether a session on ``providers`` with ``shared_bytes`` of pooled weights should be made
    from its graph's optimized form (CPU only: other providers keep their own kernels)."""
    return providers == ["CPUExecutionProvider"] and KERNEL_BYTES <= shared_bytes <= SAVE_LIMIT


@contextmanager
def saved_optimized_form(save: Callable[[str], object]) -> Iterator[str | None]:
    """The path of a graph's saved optimized form while the block runs: ``save(path)`` makes a
    session that saves it there; None when that fails (the caller then makes the usual session).
    The private folder holding it is removed when the block ends."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="onnx_xai-")
    except OSError:
        yield None
        return
    with folder:
        path = os.path.join(folder.name, "optimized.onnx")
        try:
            made = save(path)
            del made  # its own kernels go before the form's are read
            saved = os.path.isfile(path)
        except Exception:  # noqa: BLE001 - any failure means the usual session, which says its own errors
            saved = False
        yield path if saved else None
