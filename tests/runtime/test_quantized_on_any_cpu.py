"""A QDQ model is explained the same way on every runtime and every x86 instruction set.

What the product promises: the straight-through gradient of the quantized model as the ONNX file
defines it (dequantize, float op, quantize), on onnxruntime and on OpenVINO alike. OpenVINO's own
int8 kernels reproduce that definition on CPUs with AVX-512 VNNI but not on AVX2-only ones (the
input gradient moved by 21 % on a small QDQ RegNet), so its sessions compute the activation round
trips in float (:mod:`onnx_xai.graph.float_quantization`).

OpenVINO is run in a fresh process (the instruction-set caps are read when its libraries load) twice:
as the machine is, and capped to AVX2 (``ONEDNN_MAX_CPU_ISA`` for oneDNN's kernels,
``OV_CPU_MAX_ISA`` for the plugin's own). The capped run proves the cap took effect from the kernels
OpenVINO reports (none AVX-512, AMX or VNNI; some AVX2) on the plain QDQ file. Each run's methods
must agree with onnxruntime's to 1e-4 relative, the limit of float32 rounding in other summation
orders (measured 1.1e-7 both ways on an AVX-512/AMX Xeon).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import onnx_xai

from ..forms import exports as forms
from ..forms.reference import rel

METHODS = ("gradient", "guided_backprop", "gradcam", "cam")
CAPS = {"as-is": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OV_CPU_MAX_ISA": "AVX2"}}
WIDE_KERNELS = ("avx512", "amx", "vnni")

ON_OPENVINO = """
import json, sys
import numpy as np
import openvino as ov
import onnx_xai

model, x_path, out = sys.argv[1:4]
x = np.load(x_path)
ex = onnx_xai.Explainer(model, backend="openvino")
raws = {m: ex.explain(x, m).raw for m in json.loads(sys.argv[4])}
core = ov.Core()
config = {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
plain = core.compile_model(core.read_model(model), "CPU", config)
request = plain.create_infer_request()
request.infer({"x": x})
kernels = sorted({p.exec_type for p in request.profiling_info})
np.savez(out, **raws, kernels=np.array(kernels))
"""


def cpu_has(flag: str) -> bool:
    """Whether this CPU reports the instruction-set ``flag`` (a cap above what it has changes nothing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return True


@pytest.mark.parametrize("cap", list(CAPS))
def test_qdq_model_explained_alike_on_openvino_at_any_isa(tmp_path, cap):
    path, net = forms.export("qdq_int8"), forms.FORMS["qdq_int8"].build()
    x = forms.example_input(net, 2)
    np.save(tmp_path / "x.npy", x)
    ex = onnx_xai.Explainer(path)
    methods = [m for m in METHODS if ex.cam_available or m != "cam"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            ON_OPENVINO,
            str(path),
            str(tmp_path / "x.npy"),
            str(tmp_path / "ov.npz"),
            json.dumps(methods),
        ],
        env=os.environ | CAPS[cap],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "ov.npz")
    kernels = [str(k).lower() for k in got["kernels"]]
    if cap == "avx2":
        assert not [k for k in kernels if any(w in k for w in WIDE_KERNELS)], kernels
        assert any("avx2" in k for k in kernels) or not cpu_has("avx2"), kernels
    for method in methods:
        want = ex.explain(x, method).raw
        assert rel(got[method], want) < 1e-4, (cap, method, rel(got[method], want))
