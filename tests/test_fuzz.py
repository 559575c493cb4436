"""Fuzzing with hypothesis: whatever a caller passes, an onnx_xai error or a valid result.

- The API: ``explain`` with random methods, targets, box thresholds, SmoothGrad options, input
  dtypes, shapes, scales and NaN/inf must return finite maps in [0, 1] with boxes inside the image,
  or raise an :class:`~onnx_xai.support.errors.XaiError`, never another exception (60 examples), and again
  with valid batches so that every option is reached (60 more).
- The CLI: random bytes and random truncations of a valid model (in a subprocess: a parser fed
  garbage must not take the test run down with it), and of a valid PNG and JPEG, must exit 0 (a
  truncation that keeps a whole file) or 1 with one line on stderr, never a traceback (12 models,
  25 images).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.support.errors import XaiError

from .graph.test_augment import export, small_cnn
from .runtime import tiny

EX = onnx_xai.Explainer(tiny.model())


def mostly(valid: list, others: list):
    """Draw from ``valid`` about four times in five (hypothesis draws list elements evenly)."""
    return st.sampled_from(valid * max(1, 4 * len(others) // len(valid)) + others)


SMOOTH = st.fixed_dictionaries(
    {},
    optional={
        "n_samples": mostly([1, 2, 3], [0, -1, 2.5, "10", None]),
        "noise_level": mostly([0.0, 0.1, 0.5], [-1.0, float("nan"), float("inf"), 1e40]),
        "noise_seed": mostly([0, 1, None], [-1, 1.5, "s"]),
        "batch_size": mostly([None, 1, 2, 4], [0, -1, 1.5]),
        "base": mostly(["gradient", "cam", "gradcam"], ["smoothgrad", "x"]),
        "noise": mostly(
            [None, np.zeros((2, 2, 4, 4))],
            [np.full((1, 2, 4, 4), np.nan), np.zeros((0, 2, 4, 4)), np.ones((2, 3)), "noise"],
        ),
    },
)


@st.composite
def batches(draw):
    n = draw(mostly([1, 2, 3], [0]))
    shape = draw(mostly([(n, 2, 4, 4)], [(n, 3, 4, 4), (n, 2, 4), (n, 2, 5, 4)]))
    dtype = draw(mostly([np.float32, np.float64, np.float16], [np.int32, np.bool_]))
    scale = draw(mostly([1e-3, 1.0, 1e3], [1e30]))
    x = np.random.default_rng(draw(st.integers(0, 9))).standard_normal(shape) * scale
    if draw(mostly([False], [True])) and x.size:
        x.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=batches(),
    method=st.sampled_from(["gradient", "cam", "gradcam", "smoothgrad", "smoothgrad", "saliency"]),
    target=mostly([None, -1, 0, 1], [2, -2, [0, 1], [0, 1, 1], 1.5, "a", True, np.int64(1)]),
    threshold=mostly([0.2, 0.5, 1.0, 0.01], [0.0, -0.5, 1.5, float("nan"), float("inf"), None, "x", True]),
    options=SMOOTH,
)
def test_explain_gives_valid_maps_or_an_onnx_xai_error(x, method, target, threshold, options):
    check_explain(x, method, target, threshold, options if method == "smoothgrad" else {})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 3),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 9),
    method=st.sampled_from(["gradient", "cam", "gradcam", "smoothgrad", "smoothgrad"]),
    target=mostly([None, -1, 0, 1], [2, [0, 1], 1.5]),
    threshold=mostly([0.2, 0.5, 1.0, 0.01], [0.0, 1.5]),
    options=SMOOTH,
)
def test_valid_batches_with_random_options(n, scale, seed, method, target, threshold, options):
    """The same property with a valid batch, so that every option is reached."""
    x = (np.random.default_rng(seed).standard_normal((n, 2, 4, 4)) * scale).astype(np.float32)
    check_explain(x, method, target, threshold, options if method == "smoothgrad" else {})


def check_explain(x, method, target, threshold, options) -> None:
    try:
        result = EX.explain(x, method, objective=target, box_threshold=threshold, **options)
    except XaiError:
        return
    height, width = x.shape[2:]
    assert result.maps.shape == (len(x), height, width) and np.isfinite(result.maps).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    for x0, y0, x1, y1 in result.boxes:
        assert (x0, y0, x1, y1) == (0, 0, 0, 0) or (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)


def run_cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def assert_clean(code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    if code != 0:
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("onnx-xai: error: "), (code, stderr)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    onnx.save(export(small_cnn(), (1, 3, 8, 8)), folder / "m.onnx")
    from PIL import Image

    with Image.open(Path(str(DEMO_PHOTOS)) / "coffee.jpg") as photo:
        small = photo.resize((64, 48))
        small.save(folder / "p.png")
        small.save(folder / "p.jpg", quality=90)
    return folder


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_and_truncated_models_through_the_cli(valid, tmp_path_factory, data):
    model = (valid / "m.onnx").read_bytes()
    garbage = data.draw(
        st.one_of(st.binary(max_size=300), st.integers(0, len(model) - 1).map(lambda n: model[:n]))
    )
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "m.onnx").write_bytes(garbage)
    command = data.draw(
        st.sampled_from(
            [
                ["inspect", folder / "m.onnx"],
                ["augment", folder / "m.onnx", folder / "o.onnx"],
                ["explain", folder / "m.onnx", valid / "p.png", "--out", folder / "out"],
            ]
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "onnx_xai.cli", *map(str, command)], capture_output=True, text=True
    )
    assert_clean(done.returncode, done.stderr)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["p.png", "p.jpg"]))
def test_random_and_truncated_images_through_the_cli(valid, tmp_path_factory, data, kind):
    image = (valid / kind).read_bytes()
    garbage = data.draw(
        st.one_of(st.binary(max_size=200), st.integers(0, len(image)).map(lambda n: image[:n]))
    )
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / kind).write_bytes(garbage)
    code, stderr = run_cli("explain", valid / "m.onnx", folder / kind, "--out", folder / "out")
    assert_clean(code, stderr)
    if code != 0:
        assert not (folder / "out").exists() or not any((folder / "out").iterdir())
