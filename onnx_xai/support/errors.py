"""The package's exception hierarchy.

Every error onnx_xai raises on purpose derives from :class:`XaiError`, so callers (and the CLI, which
turns them into one-line messages and a non-zero exit) can tell a problem with the user's model or
input from a bug. Messages name the node, op type and attribute at fault, and list every problem found
in one scan rather than the first one only.
"""

from __future__ import annotations


class XaiError(Exception):
    """Base class of every error raised on purpose by onnx_xai."""


class ModelError(XaiError):
    """The model cannot be read, or is not a classifier this tool understands."""


class UnsupportedModelError(ModelError):
    """Nodes on the gradient path have no VJP rule or use an attribute the rule does not handle."""

    def __init__(self, problems: list[str], supported: list[str]):
        self.problems = problems
        self.supported = supported
        noun = "node" if len(problems) == 1 else "nodes"
        super().__init__(
            f"cannot differentiate {len(problems)} {noun}: {', '.join(problems)}; "
            f"supported: {', '.join(supported)}"
        )


class CamNotApplicableError(XaiError):
    """CAM was asked for on a head that is not global-average-pool followed by a linear layer."""


class InputError(XaiError):
    """An input array, image, class index or option is invalid."""


class OutputError(XaiError):
    """An output cannot be written where it belongs: the disk is full, a folder is read-only, or a
    symbolic link inside the output folder points elsewhere."""


class RunError(XaiError):
    """The runtime failed while running the model (a node it could not compute, memory it could not
    allocate); the message names the node when the runtime does."""


class RuleContractError(XaiError):
    """A VJP rule broke the rule contract (:mod:`onnx_xai.graph.registry`): a bug in a rule, not in the
    user's model."""


class WorkStopped(XaiError):
    """Work stopped before its end, between two runs of the model: cancelled (the client left, the
    server is stopping) or past its deadline (:class:`onnx_xai.runtime.work.Work`)."""


class DeadlineExceeded(WorkStopped):
    """Work that ran past its deadline, stopped at its next run of the model."""


class TooMuchWork(InputError):
    """A request asks for more runs of the model than its limit allows (said before any runs)."""
