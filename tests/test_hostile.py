"""Hostile ground: a careless or hostile user's inputs, each failing today's code before its fix.

- A subfolder of ``--out`` that is a symbolic link to elsewhere: refused in one line, the files there
  keep their bytes, and a record planted there deletes nothing; a link planted after the check (at
  commit) is refused too.
- A runtime failure at run time (a ``ConstantOfShape`` asking for 400 GB): one line naming the node
  and the memory asked for, on onnxruntime and OpenVINO.
- Graph handling linear in the node count: a 50,000-node graph against a 5,000-node one (the ratio).
- An audit on a full disk: the previous set untouched, no partial new one, the file named.
- Duplicate labels, a FIFO and a device given as photos, a boxes file that is a JSON array, a
  custom-domain op on the path: each said for what it is.
- Stages of long work said on a terminal after a few seconds, and not before.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.support.errors import OutputError, RunError
from onnx_xai.support.files import OutputFolder, Staging
from onnx_xai.support.progress import StageReporter, stage

from .runtime import tiny
from .test_reliability import PHOTO, cli, one_line


def planted(tmp_path: Path) -> tuple[Path, Path, dict]:
    """An input folder with ``sub/p0.jpg``, and ``out/sub`` a link to ``elsewhere``, which holds files
    a commit would overwrite and a record listing a file a clean-up would delete."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(PHOTO, tmp_path / "in" / "sub" / "p0.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = {
        "p0.jpg.gradcam.png": b"precious",
        "p0.jpg.victim": b"victim",
        "p0.jpg.json": json.dumps({"outputs": ["p0.jpg.victim"]}).encode(),
    }
    for name, data in before.items():
        (elsewhere / name).write_bytes(data)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").symlink_to(elsewhere)
    return tmp_path / "in", elsewhere, before


def contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_symlinked_subfolder_of_out_is_refused(tmp_path, small_model):
    photos, elsewhere, before = planted(tmp_path)
    line = one_line(cli("explain", small_model, photos, "--out", tmp_path / "out"))
    assert f"{tmp_path / 'out' / 'sub'} is a symbolic link (to {elsewhere})" in line
    assert contents(elsewhere) == before


def test_a_link_planted_after_the_check_is_refused_at_commit(tmp_path):
    _, elsewhere, before = planted(tmp_path)
    out = tmp_path / "out"
    with Staging(out) as staging:
        staging.path("sub/p0.jpg.gradcam.png").write_bytes(b"new")
        staging.path("sub/p0.jpg.json").write_text("{}")
        with pytest.raises(OutputError, match="is a symbolic link"):
            staging.commit(
                ["sub/p0.jpg.gradcam.png", "sub/p0.jpg.json"], staging.previous_set("sub/p0.jpg.json")
            )
    assert contents(elsewhere) == before
    folder = OutputFolder(out)
    with pytest.raises(OutputError, match="is a symbolic link"):
        folder.remove("sub/p0.jpg.victim")
    (out / "record.json").symlink_to(elsewhere / "p0.jpg.json")  # a link in place of a record
    assert folder.read_text("record.json") is None
    folder.remove("record.json")
    assert contents(elsewhere) == before and not (out / "record.json").is_symlink()


def allocating(model: onnx.ModelProto, shape_from_input: bool) -> onnx.ModelProto:
    """``model`` whose score also adds the sum of a ``ConstantOfShape`` of 400 GB (its shape a
    constant) or 3.2 TB (computed from the input's shape, so no runtime can fold it at load)."""
    g = model.graph
    score, image = g.output[0].name, g.input[0].name
    if shape_from_input:
        g.initializer.append(numpy_helper.from_array(np.array([100000, 250000, 1, 1], np.int64), "factor"))
        g.node.extend(
            [
                helper.make_node("Shape", [image], ["x_shape"]),
                helper.make_node("Mul", ["x_shape", "factor"], ["huge_shape"]),
            ]
        )
    else:
        g.initializer.append(numpy_helper.from_array(np.array([100000, 1000000], np.int64), "huge_shape"))
    g.node.extend(
        [
            helper.make_node(
                "ConstantOfShape",
                ["huge_shape"],
                ["huge"],
                name="allocate_huge",
                value=numpy_helper.from_array(np.array([0.0], np.float32)),
            ),
            helper.make_node("ReduceSum", ["huge"], ["huge_sum"], keepdims=0),
            helper.make_node("Add", [score, "huge_sum"], ["out"]),
        ]
    )
    shape = g.output[0].type
    del g.output[:]
    g.output.append(helper.make_value_info("out", shape))
    return model


def test_a_runtime_allocation_failure_is_one_line(tmp_path, small_model):
    path = tmp_path / "alloc.onnx"
    onnx.save(allocating(onnx.load(small_model), shape_from_input=False), path)
    line = one_line(cli("explain", path, PHOTO, "--out", tmp_path / "out"))
    assert line == (
        "onnx-xai: error: onnxruntime failed running the model: node 'allocate_huge' "
        "(ConstantOfShape): out of memory: it asked for 400.0 GB"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_run_time_allocation_failure_names_the_node_on_each_backend(backend):
    ex = onnx_xai.Explainer(
        allocating(tiny.model(), shape_from_input=True), target_layer="a", backend=backend
    )
    with pytest.raises(RunError, match=r"node 'allocate_huge' \(\w+\): out of memory: it asked for 3\.2 TB"):
        ex.explain(np.ones((1, 2, 4, 4), np.float32), "gradient")


def identity_chain(nodes: int) -> onnx.ModelProto:
    """The tiny classifier with ``nodes`` Identity nodes after its logits (a long head)."""
    model = tiny.model()
    names = ["logits"] + [f"h{k}" for k in range(nodes)]
    model.graph.node.extend(helper.make_node("Identity", [a], [b], name=b) for a, b in zip(names, names[1:]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, ["N", 2]))
    return model


def test_graph_handling_is_linear_in_the_node_count():
    """Inspecting and rewriting 50,000 nodes takes about ten times 5,000 (measured 9.5 and 11.3 times);
    anything quadratic would take a hundred."""
    from onnx_xai.runtime.report import inspect_model

    def seconds(nodes: int) -> float:
        model = identity_chain(nodes)
        start = time.perf_counter()
        inspect_model(model)
        onnx_xai.augment(model)
        return time.perf_counter() - start

    seconds(500)  # imports and first-call costs out of the way
    small, large = seconds(5000), seconds(50000)
    assert large / small < 25, (small, large)


def test_an_audit_on_a_full_disk_leaves_the_previous_set(tmp_path, small_model):
    """The audit's out folder on a tmpfs (in a private mount namespace) holding the previous run's
    set and a filler that leaves room for ``results.jsonl`` but not for the report."""
    args = ["audit", small_model, PHOTO, "--methods", "gradcam", "--sanity", "none", "--curve-steps", "4"]
    first = cli(*args[:-1], "8", "--out", tmp_path / "first")  # a previous set unlike the next one
    assert first.returncode == 0, first.stderr
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "first").iterdir()}
    assert sizes["results.jsonl"] < 8192 < 16384 < sizes["report.html"]  # 12 KiB free: not enough
    script = tmp_path / "full_disk.sh"
    script.write_text(f"""set -e
mount -t tmpfs -o size=4m tmpfs "{tmp_path / "disk"}"
cp -r "{tmp_path / "first"}" "{tmp_path / "disk" / "out"}"
free=$(df --output=avail -B1 "{tmp_path / "disk"}" | tail -1)
head -c $((free - 12288)) /dev/zero > "{tmp_path / "disk" / "filler"}" || true
set +e
{sys.executable} -m onnx_xai.cli {" ".join(f'"{a}"' for a in args)} --out "{tmp_path / "disk" / "out"}" \\
    2> "{tmp_path / "stderr.txt"}"
echo $? > "{tmp_path / "rc.txt"}"
cd "{tmp_path / "disk" / "out"}" && ls -A > "{tmp_path / "listing.txt"}"
sha256sum * > "{tmp_path / "sums.txt"}"
""")
    (tmp_path / "disk").mkdir()
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    done = subprocess.run([*namespace, "bash", str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rc.txt").read_text().strip() == "1"
    message = (tmp_path / "stderr.txt").read_text().strip().splitlines()
    assert len(message) == 1 and message[0].startswith(
        f"onnx-xai: error: cannot write {tmp_path / 'disk' / 'out'}/"
    )
    assert "No space left on device" in message[0]
    assert sorted((tmp_path / "listing.txt").read_text().split()) == sorted(sizes)  # no staging folder left
    sums = dict(line.split()[::-1] for line in (tmp_path / "sums.txt").read_text().splitlines())
    first_sums = subprocess.run(
        ["sha256sum", *sorted(sizes)], cwd=tmp_path / "first", capture_output=True, text=True, check=True
    ).stdout
    assert sums == dict(line.split()[::-1] for line in first_sums.splitlines())


def test_an_ambiguous_label_is_refused_with_its_indices(tmp_path, small_model):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nCat\n")
    line = one_line(
        cli("explain", small_model, PHOTO, "--labels", labels, "--target", "cat", "--out", tmp_path / "o")
    )
    assert line.endswith("the label 'cat' names 2 classes (0, 2); give the class index instead")
    assert (
        cli(
            "explain", small_model, PHOTO, "--labels", labels, "--target", "dog", "--out", tmp_path / "o"
        ).returncode
        == 0
    )


def test_a_fifo_and_a_device_are_said_for_what_they_are(tmp_path, small_model):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        line = one_line(cli("explain", small_model, path, "--out", tmp_path / "out"))
        assert line.endswith(f"{path} is {kind}, not an image file")


def test_a_boxes_file_that_is_a_json_array(tmp_path, small_model):
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[[0, 0, 10, 10]]")
    line = one_line(cli("audit", small_model, PHOTO, "--boxes", boxes, "--out", tmp_path / "out"))
    assert line.endswith('expected a JSON object {"photo.jpg": [[x0, y0, x1, y1], ...]}, found a JSON array')


@pytest.mark.parametrize("domain,op", [("com.example", "MyOp"), ("", "TFL_Convolution2DTransposeBias")])
def test_a_nonstandard_op_on_the_path_is_named(domain, op):
    model = tiny.model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # a static batch, as tf2onnx writes it
    next(n for n in model.graph.node if n.op_type == "GlobalAveragePool").input[0] = "custom"
    model.graph.node.insert(2, helper.make_node(op, ["a"], ["custom"], name="leftover", domain=domain))
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    with pytest.raises(onnx_xai.ModelError) as raised:
        onnx_xai.augment(model)
    assert str(raised.value).startswith(
        f"1 node on the way to the score is no standard ONNX op: 'leftover' ({op}"
    )


def test_stages_are_said_after_a_few_seconds_only():
    stream = io.StringIO()
    with StageReporter(stream, after=0.3):
        stage("quick step")
        assert stream.getvalue() == ""
        time.sleep(0.6)
        stage("long step")
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["onnx-xai: quick step", "onnx-xai: long step"]
    stage("after the command")
    assert len(stream.getvalue().splitlines()) == 2
