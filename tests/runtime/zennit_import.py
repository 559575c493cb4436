"""Zennit without torchvision: Zennit's package imports ``torchvision.models.resnet`` for the
canonizers of torchvision's ResNets, and torchvision's PyPI build does not load beside the CPU build
of torch this project pins (CI installs Zennit without its dependencies). Where torchvision is
missing or broken, Zennit is imported with a stand-in module that gives it the two classes it names
(never used by the tests, which build their own nets), present only while Zennit is imported."""

from __future__ import annotations

import importlib
import sys
import types


def import_zennit() -> None:
    """Import Zennit (every submodule), with the stand-in for torchvision if it is needed."""
    if "zennit" in sys.modules:
        return
    try:
        importlib.import_module("torchvision.models.resnet")
        importlib.import_module("zennit")
        return
    except Exception:  # noqa: BLE001 - missing, or a build that fails to load its ops
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.Bottleneck = type("Bottleneck", (), {})
    resnet.BasicBlock = type("BasicBlock", (), {})
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    root = types.ModuleType("torchvision")
    root.models = models
    stand_ins = {"torchvision": root, "torchvision.models": models, "torchvision.models.resnet": resnet}
    sys.modules.update(stand_ins)
    try:
        importlib.import_module("zennit")
    finally:
        for name in stand_ins:  # gone again: nothing else may take the stand-in for torchvision
            sys.modules.pop(name, None)


def zennit_layer():
    """``zennit.layer``."""
    import_zennit()
    return importlib.import_module("zennit.layer")


import_zennit()  # before any test of the module imports from zennit
