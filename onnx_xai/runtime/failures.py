"""A runtime's failure, loading or running a model, as one line that names the node at fault.

onnxruntime reports ``[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running
ConstantOfShape node. Name:'big' Status Message: /onnxruntime_src/.../bfc_arena.cc:360 void*
onnxruntime::BFCArena::AllocateRawInternal(...) Failed to allocate memory for requested buffer of size
400000000000``; OpenVINO a stack of ``Exception from src/...cpp:224:`` lines, then ``[CPU] Broadcast
node with name 'big' Check 'ptr' failed at ...: Failed to allocate 3200000000000 bytes of memory``, or
a bare ``std::bad_alloc``. :func:`describe` keeps what a user can act on: the node (name and op type,
when the runtime names them), what went wrong without source locations, and for a memory request
that cannot be met, its size.
"""

from __future__ import annotations

import re

_ORT_NODE = re.compile(
    r"running (?P<op>[\w.]+) node\. Name:'(?P<name>[^']*)'(?: Status Message:)?\s*(?P<rest>.*)", re.S
)
_OV_NODE = re.compile(r"\[\w+\] (?P<op>[\w.]+) node with name '(?P<name>[^']*)'\s*(?P<rest>.*)", re.S)
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_SOURCE = re.compile(r"(?:Exception from )?\S+\.(?:cc|cpp|h|hpp):\d+:?(?: [^()]*\([^)]*\))?\s*")
_CHECK = re.compile(r"Check '[^']*' failed at\s*")
_BYTES = re.compile(r"(?:requested buffer of size|allocate)\s+(\d+)(?: bytes)?")
_MEMORY = ("bad_alloc", "Failed to allocate", "out of memory", "Out of memory")


def describe(exc: BaseException) -> str:
    """One line for a runtime's exception (module docstring)."""
    text = _ORT_PREFIX.sub("", str(exc).strip())
    node, op = None, None
    for pattern in (_ORT_NODE, _OV_NODE):
        found = pattern.search(text)
        if found:
            node, op, text = found["name"], found["op"], found["rest"]
            break
    detail = " ".join(_CHECK.sub("", _SOURCE.sub("", text)).split()) or type(exc).__name__
    if any(word in str(exc) for word in _MEMORY):
        size = _BYTES.search(str(exc))
        detail = (
            f"out of memory: it asked for {_size(int(size[1]))}"
            if size
            else "out of memory (the runtime could not allocate what it needed)"
        )
    return f"node '{node}' ({op}): {detail}" if node is not None else detail


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
