"""One activation arena for every onnxruntime CPU session in the process.

Each onnxruntime session keeps its own arena: the memory of its largest run so far, never handed
back. An Explainer runs one session per kind of request, so after a sampling method (chunks of
copies) and a few others it held the sum of their peaks. Here one arena is registered in
onnxruntime's environment (``create_and_register_allocator``) and every session with an arena uses
it (``session.use_env_allocators``): the process then holds the largest peak of the runs that ran
at once, not the sum over sessions. Measured (ResNet-50, every image method on one Explainer, batch
1, 2 threads, before the kernels were shared): 3,267 MB held with an arena per session, 2,384 MB
with the shared one, 1,827 MB with no arena at all (``memory="lean"``'s choice); the input gradient
ran in 0.99x the time at batch 1 and 16 (one process, interleaved). Where onnxruntime refuses the
registration, sessions keep their own arenas.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_REGISTERED: list[bool] = []  # [whether the shared arena is registered], once per process


def use_shared_arena(options) -> None:
    """Make the session of ``options`` (``onnxruntime.SessionOptions``) allocate from the shared
    arena, registering it on first use."""
    with _LOCK:
        if not _REGISTERED:
            _REGISTERED.append(_register())
    if _REGISTERED[0]:
        options.add_session_config_entry("session.use_env_allocators", "1")


def _register() -> bool:
    import onnxruntime as ort

    try:
        where = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(where, ort.OrtArenaCfg({}))
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types; per-session arenas then
        return False
    return True
