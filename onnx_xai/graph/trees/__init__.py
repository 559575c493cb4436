"""Tree ensembles read from their ONNX attributes (``onnx`` and ``numpy`` only).

:func:`read_ensemble` finds the ``TreeEnsembleClassifier``, ``TreeEnsembleRegressor`` (``ai.onnx.ml``
opsets 1 and 3) or ``TreeEnsemble`` (opset 5) that a model output depends on, reads its trees
(:mod:`.forms`), maps the trees' features back to the model input's columns through the per-column
ops in front of them (:mod:`.columns`), and returns a :class:`TreeModel` (:mod:`.model`) that computes
the ensemble's margins as onnxruntime does and lists the root-to-leaf paths exact TreeSHAP walks.
Anything it cannot map exactly is refused with a one-line :class:`~onnx_xai.support.errors.ModelError`.
"""

from .columns import InputMap
from .forms import Forest, Scores
from .model import Paths, TreeModel, find_ensemble, read_ensemble

__all__ = ["Forest", "InputMap", "Paths", "Scores", "TreeModel", "find_ensemble", "read_ensemble"]
