"""The process's one OpenVINO ``Core``, made on first use and kept until the process ends.

Each ``Core`` whose CPU plugin compiles a model installs an alternate signal stack on the calling
thread (``sigaltstack``) and, when it is destroyed, puts back the one it found. Cores destroyed in
another order than they were made leave the thread on a freed stack, and the next signal handled
there crashes the process: CPython runs its signal handlers on the alternate stack. An Explainer
drops sessions as it goes (a raced loser, a lean mode's old graph), so per-session Cores did just
that: a later SIGINT or SIGTERM ended in a segmentation fault. One Core for every session keeps one
stack, installed once.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_CORE: list = []  # [the Core], once made


def openvino_core():
    """The process's ``openvino.Core`` (the caller has imported ``openvino``)."""
    with _LOCK:
        if not _CORE:
            import openvino as ov

            _CORE.append(ov.Core())
        return _CORE[0]
