"""Malformed models are refused in one line, before anything is allocated from what they declare.

A table of models built here with ``onnx.helper`` (data that contradicts its dims for every element
type, negative dims, external data missing or outside the model's folder, cycles, tensors produced
twice, huge attributes and Constant values, the same in subgraphs), each run through the library
(``load_model``, ``augment``, ``inspect_model``, ``Explainer``) and through every command
(``inspect``, ``augment``, ``explain``, ``audit``, ``serve``): a ``ModelError`` or exit status 1
with one line on stderr naming the problem, no traceback, nothing written, in bounded time and
memory (the declared sizes run to terabytes; tracemalloc and the peak RSS must stay far below).
"""

from __future__ import annotations

import resource
import socket
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.graph.model_io import check_model, load_model
from onnx_xai.graph.validate import STORAGE
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.runtime.report import inspect_model
from onnx_xai.support.errors import ModelError

PHOTO = Path(str(DEMO_PHOTOS)) / "coffee.jpg"
BOUND_S = 5.0  # seconds one refusal may take (it takes milliseconds)
BOUND_BYTES = 256 * 2**20  # what one refusal may allocate (the declared sizes are gigabytes and more)


# -- the models --------------------------------------------------------------------------------------
def classifier(extra_nodes=(), initializers=(), fc: TensorProto | None = None) -> onnx.ModelProto:
    """Conv -> ReLU -> GAP -> Flatten -> Gemm on a 3-channel image: valid until a row breaks it."""
    weight = numpy_helper.from_array(np.full((4, 3, 1, 1), 0.1, np.float32), "conv.weight")
    fc = fc or numpy_helper.from_array(np.full((2, 4), 0.1, np.float32), "fc.weight")
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight"], ["conv"], name="conv"),
        helper.make_node("Relu", ["conv"], ["act"], name="relu"),
        helper.make_node("GlobalAveragePool", ["act"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", fc.name], ["logits"], transB=1, name="fc"),
        *extra_nodes,
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [weight, fc, *initializers],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def declared(name: str, data_type: int, dims: list[int], **fields) -> TensorProto:
    """A tensor that declares ``dims`` and holds exactly ``fields`` (raw_data, float_data ...)."""
    tensor = TensorProto(name=name, data_type=data_type, dims=dims)
    for key, value in fields.items():
        if key == "raw_data":
            tensor.raw_data = value
        else:
            getattr(tensor, key).extend(value)
    return tensor


def external(name: str, location: str, dims: list[int], **entries: str) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, **entries}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def with_fc(tensor: TensorProto) -> Callable[[Path], onnx.ModelProto]:
    return lambda folder: classifier(fc=tensor)


def with_node(*nodes: onnx.NodeProto) -> Callable[[Path], onnx.ModelProto]:
    return lambda folder: classifier(extra_nodes=nodes)


def changed(edit: Callable[[onnx.ModelProto], object]) -> Callable[[Path], onnx.ModelProto]:
    """The classifier changed by ``edit``."""

    def build(folder: Path) -> onnx.ModelProto:
        model = classifier()
        edit(model)
        return model

    return build


def rewired(position: int, reads: str) -> Callable[[Path], onnx.ModelProto]:
    """The classifier with node ``position`` reading ``reads`` instead of its first input."""
    return changed(lambda model: model.graph.node[position].input.__setitem__(0, reads))


def outside_file(folder: Path) -> str:
    """A file beside the model's folder, of 8 floats, and a link to it from inside the folder."""
    target = folder.parent / f"{folder.name}-secret.bin"
    target.write_bytes(np.ones(8, np.float32).tobytes())
    link = folder / "link.bin"
    if not link.exists():
        link.symlink_to(target)
    return str(target)


def external_fc(location: Callable[[Path], str], dims=(2, 4), **entries: str):
    def build(folder: Path) -> onnx.ModelProto:
        return classifier(fc=external("fc.weight", location(folder), list(dims), **entries))

    return build


def in_folder(folder: Path) -> str:
    (folder / "fc.bin").write_bytes(np.ones(8, np.float32).tobytes())
    return "fc.bin"


def constant(name: str, tensor: TensorProto) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [f"{name}_out"], name=name, value=tensor)


def branch(nodes: list[onnx.NodeProto], output: str, name: str) -> onnx.GraphProto:
    return helper.make_graph(
        nodes, name, [], [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)]
    )


def in_if(then_nodes: list[onnx.NodeProto], then_output: str) -> Callable[[Path], onnx.ModelProto]:
    """The classifier with a dead-end If whose then-branch is ``then_nodes``."""
    otherwise = branch([helper.make_node("Identity", ["flat"], ["kept"])], "kept", "else")
    node = helper.make_node(
        "If", ["cond"], ["chosen"], name="if", then_branch=branch(then_nodes, then_output, "then"),
        else_branch=otherwise,
    )  # fmt: skip
    return lambda folder: classifier([node], [numpy_helper.from_array(np.array(True), "cond")])


def in_loop_body(initializer: TensorProto) -> Callable[[Path], onnx.ModelProto]:
    """The classifier with a dead-end Loop whose body holds ``initializer`` (read as ``w``)."""
    value = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Add", ["v", "w"], ["v_out"])],
        "body",
        [
            value("i", TensorProto.INT64, []),
            value("c", TensorProto.BOOL, []),
            value("v", TensorProto.FLOAT, None),
        ],
        [value("c_out", TensorProto.BOOL, []), value("v_out", TensorProto.FLOAT, None)],
        [initializer],
    )
    node = helper.make_node("Loop", ["", "cond", "flat"], ["looped"], name="loop", body=body)
    return lambda folder: classifier([node], [numpy_helper.from_array(np.array(True), "cond")])


def sparse(model: onnx.ModelProto, dims: list[int]) -> None:
    values = numpy_helper.from_array(np.ones(2, np.float32), "dense.weight")
    indices = numpy_helper.from_array(np.array([0, 5], np.int64), "dense.weight.indices")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, dims))


def huge_input(model: onnx.ModelProto) -> None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 100000, 100000


FLOATS_4x2 = np.ones(8, np.float32).tobytes()
ROWS: dict[str, tuple[Callable[[Path], onnx.ModelProto], str]] = {
    # data and dims disagree (the row: 10^9 x 1280 declared, 1280 x 1280 held)
    "raw_data short of huge dims": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [10**9, 1280], raw_data=bytes(1280 * 1280 * 4))),
        "initializer 'fc.weight' declares 1280000000000 values (dims [1000000000, 1280]) but holds 1638400",
    ),
    "raw_data one byte short": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [2, 4], raw_data=FLOATS_4x2[:-1])),
        "initializer 'fc.weight' declares 8 values (dims [2, 4]) but holds 7 (31 bytes of raw_data)",
    ),
    "raw_data too long": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [2, 4], raw_data=FLOATS_4x2 * 2)),
        "declares 8 values (dims [2, 4]) but holds 16",
    ),
    "float_data short": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [2, 4], float_data=[1.0] * 5)),
        "initializer 'fc.weight' declares 8 values (dims [2, 4]) but holds 5 (5 in float_data)",
    ),
    "no data at all": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [2, 4])),
        "initializer 'fc.weight' declares 8 values (dims [2, 4]) but holds 0",
    ),
    "negative dims": (
        with_fc(declared("fc.weight", TensorProto.FLOAT, [-2, -4], raw_data=FLOATS_4x2)),
        "initializer 'fc.weight' declares a negative dimension (dims [-2, -4])",
    ),
    "unknown element type": (
        with_fc(declared("fc.weight", 99, [2, 4], raw_data=FLOATS_4x2)),
        "initializer 'fc.weight' has an unknown element type (99)",
    ),
    # external data
    "external data missing": (
        external_fc(lambda folder: "nowhere.bin"),
        "initializer 'fc.weight' keeps its data in 'nowhere.bin', which is missing from the model's folder",
    ),
    "external data through ..": (
        external_fc(lambda folder: f"../{Path(outside_file(folder)).name}"),
        "initializer 'fc.weight' keeps its data outside the model's folder ('../",
    ),
    "external data at an absolute path": (
        external_fc(outside_file),
        "initializer 'fc.weight' keeps its data outside the model's folder (an absolute path",
    ),
    "external data through a link": (
        external_fc(lambda folder: outside_file(folder) and "link.bin"),
        "initializer 'fc.weight' keeps its data outside the model's folder ('link.bin' is a link to",
    ),
    "external data short of huge dims": (
        external_fc(in_folder, dims=(10**9, 1280)),
        "initializer 'fc.weight' declares 1280000000000 values (dims [1000000000, 1280]) but holds 8 "
        "(32 bytes of external data in 'fc.bin')",
    ),
    "external data past its file": (
        external_fc(in_folder, offset="16", length="32"),
        "initializer 'fc.weight' reads bytes 16 to 48 of 'fc.bin', which holds 32",
    ),
    # graphs
    "a node reading its own output": (rewired(1, "act"), "Relu 'relu' reads its own output"),
    "a cycle": (
        rewired(1, "gap"),
        "nodes form a cycle, so no order computes them: GlobalAveragePool 'gap' -> Relu 'relu' -> "
        "GlobalAveragePool 'gap'",
    ),
    "a tensor produced twice": (
        with_node(helper.make_node("Identity", ["flat"], ["act"], name="again")),
        "tensor 'act' is produced twice: by Relu 'relu' and by Identity 'again'",
    ),
    "a node writing an initializer": (
        with_node(helper.make_node("Identity", ["flat"], ["fc.weight"], name="over")),
        "Identity 'over' writes 'fc.weight', which is an input or initializer",
    ),
    "two initializers of one name": (
        changed(lambda model: model.graph.initializer.append(model.graph.initializer[1])),
        "initializer 'fc.weight' is declared twice",
    ),
    "two inputs of one name": (
        changed(lambda model: model.graph.input.append(model.graph.input[0])),
        "input 'x' is declared twice",
    ),
    "a read of nothing": (
        rewired(2, "ghost"),
        "GlobalAveragePool 'gap' reads 'ghost', which nothing defines",
    ),
    "an input of absurd size": (
        changed(huge_input),
        "input 'x' declares 30000000000 values (static dims [3, 100000, 100000]), "
        "more than 2147483648 for one input",
    ),
    # attributes
    "a huge Constant with no data": (
        with_node(constant("big", declared("v", TensorProto.FLOAT, [10**6, 10**6]))),
        "attribute 'value' of Constant 'big' declares 1000000000000 values (dims [1000000, 1000000]) "
        "but holds 0",
    ),
    "a Constant of negative dims": (
        with_node(constant("neg", declared("v", TensorProto.FLOAT, [-1], float_data=[1.0]))),
        "attribute 'value' of Constant 'neg' declares a negative dimension (dims [-1])",
    ),
    "a huge ConstantOfShape value": (
        with_node(
            helper.make_node("Shape", ["flat"], ["shape"], name="shape"),
            helper.make_node(
                "ConstantOfShape",
                ["shape"],
                ["filled"],
                name="fill",
                value=declared("v", TensorProto.FLOAT, [2**31, 2**31], raw_data=b"\0\0\0\0"),
            ),
        ),
        "attribute 'value' of ConstantOfShape 'fill' declares 4611686018427387904 values",
    ),
    "a sparse initializer of absurd dense size": (
        changed(lambda model: sparse(model, [10**6, 10**6])),
        "sparse initializer 'dense.weight' declares 1000000000000 values once dense",
    ),
    # subgraphs
    "a malformed Constant in an If branch": (
        in_if([constant("inner", declared("v", TensorProto.FLOAT, [10**9, 1280]))], "inner_out"),
        "attribute 'value' of Constant 'inner' in the 'then_branch' graph of If 'if' declares 1280000000000",
    ),
    "a cycle in an If branch": (
        in_if(
            [
                helper.make_node("Add", ["flat", "b"], ["a"], name="first"),
                helper.make_node("Identity", ["a"], ["b"], name="second"),
            ],
            "b",
        ),
        "nodes in the 'then_branch' graph of If 'if' form a cycle",
    ),
    "an If branch shadowing an outer tensor": (
        in_if([helper.make_node("Identity", ["flat"], ["act"], name="shadow")], "act"),
        "Identity 'shadow' in the 'then_branch' graph of If 'if' writes 'act', "
        "a tensor of an enclosing graph",
    ),
    "a malformed initializer in a Loop body": (
        in_loop_body(declared("w", TensorProto.FLOAT, [10**9], float_data=[1.0])),
        "initializer 'w' in the 'body' graph of Loop 'loop' declares 1000000000 values",
    ),
}


# -- the checks --------------------------------------------------------------------------------------
@pytest.fixture
def malformed(request, tmp_path) -> tuple[Path, str]:
    """The row's model saved in a folder of its own; its path and the message expected."""
    build, message = ROWS[request.param]
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "model.onnx"
    path.write_bytes(build(folder).SerializeToString())
    return path, message


def bounded(call: Callable[[], object]) -> object:
    """``call()`` in bounded time and memory (Python's allocations and the process's peak RSS)."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return call()
    finally:
        seconds = time.perf_counter() - start
        allocated = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
        assert seconds < BOUND_S, f"took {seconds:.1f} s"
        assert allocated < BOUND_BYTES, f"allocated {allocated / 2**20:.0f} MiB"
        assert grown < BOUND_BYTES, f"peak RSS grew {grown / 2**20:.0f} MiB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LIBRARY = {
    "load_model": load_model,
    "check_model": check_model,
    "inspect_model": inspect_model,
    "augment": onnx_xai.augment,
    "Explainer": onnx_xai.Explainer,
}


@pytest.mark.parametrize("malformed", list(ROWS), indirect=True)
@pytest.mark.parametrize("entry", list(LIBRARY))
def test_the_library_refuses_in_one_line(malformed, entry):
    path, message = malformed
    with pytest.raises(ModelError) as caught:
        bounded(lambda: LIBRARY[entry](str(path)))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("malformed model: ")  # one problem, not "(2 problems)"


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    return {
        "inspect": ["inspect", str(path)],
        "augment": ["augment", str(path), str(out / "rewritten.onnx")],
        "explain": ["explain", str(path), str(PHOTO), "--out", str(out / "maps")],
        "audit": ["audit", str(path), str(PHOTO), "--out", str(out / "audit")],
        "serve": ["serve", str(path), "--http-port", str(free_port()), "--grpc-port", "0"],
    }


@pytest.mark.parametrize("malformed", list(ROWS), indirect=True)
@pytest.mark.parametrize("command", ["inspect", "augment", "explain", "audit", "serve"])
def test_every_command_refuses_in_one_line(malformed, command, tmp_path, capsys):
    if command == "serve":
        pytest.importorskip("kserve")
    path, message = malformed
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    status = bounded(lambda: main(commands(path, out)[command]))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 1, captured.err
    assert len(lines) == 1 and lines[0].startswith("onnx-xai: error: malformed model: "), captured.err
    assert message in lines[0] and "Traceback" not in captured.err + captured.out
    assert not any(out.iterdir()), f"{command} wrote {sorted(p.name for p in out.iterdir())}"


@pytest.mark.parametrize("name", sorted(onnx.TensorProto.DataType.Name(t) for t in STORAGE))
@pytest.mark.parametrize("count", [5, 8])
def test_every_element_type_is_counted_as_it_is_stored(name, count):
    """Each element type's data, held exactly in its typed field or in raw_data, loads; one entry or
    one byte fewer is refused (odd counts: 4-, 2- and 6-bit types pack a partial byte, 4- and 2-bit
    ones several values per int32 entry; complex numbers take two entries)."""
    data_type = onnx.TensorProto.DataType.Value(name)
    bits, typed, entries, values = STORAGE[data_type]
    needed = -(-count * entries // values)
    item = b"s" if typed == "string_data" else 1
    check_model(classifier(initializers=[declared("t", data_type, [count], **{typed: [item] * needed})]))
    short = declared("t", data_type, [count], **{typed: [item] * (needed - 1)})
    with pytest.raises(ModelError, match=f"initializer 't' declares {count} values .* in {typed}\\)"):
        check_model(classifier(initializers=[short]))
    if bits:
        size = -(-count * bits // 8)
        check_model(classifier(initializers=[declared("t", data_type, [count], raw_data=bytes(size))]))
        with pytest.raises(ModelError, match=f"declares {count} values .* \\({size - 1} bytes of raw_data"):
            check_model(
                classifier(initializers=[declared("t", data_type, [count], raw_data=bytes(size - 1))])
            )


def test_an_input_and_an_initializer_of_one_name_are_legal(tmp_path):
    """ONNX lets an initializer give an input its default value (IR < 4 required it of all)."""
    model = classifier()
    model.graph.input.append(helper.make_tensor_value_info("fc.weight", TensorProto.FLOAT, [2, 4]))
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert load_model(path)[0].graph.input[1].name == "fc.weight"
    assert inspect_model(path)["target_layer"] == "act"


def test_nodes_listed_out_of_order_are_put_in_order(tmp_path):
    """A graph that has an order but is not listed in it (onnxruntime accepts it) is analyzed as the
    ordered one; the analysis walks nodes in list order and found no layer before."""
    model = classifier()
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert [n.name for n in load_model(path)[0].graph.node] == ["conv", "relu", "gap", "flatten", "fc"]
    assert inspect_model(path)["target_layer"] == inspect_model(classifier())["target_layer"] == "act"


def test_external_data_inside_the_folder_loads(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(classifier(fc=external("fc.weight", in_folder(tmp_path), [2, 4])), path)
    assert numpy_helper.to_array(load_model(path)[0].graph.initializer[1]).shape == (2, 4)
    with pytest.raises(ModelError, match="which a model given as bytes or a ModelProto cannot reach"):
        load_model(path.read_bytes())


def test_a_rewritten_model_is_checked_too(tmp_path):
    """A model from ``onnx-xai augment`` is read by the runtime without the rewriter: it is still
    checked before onnxruntime sees it."""
    rewritten = onnx_xai.augment(classifier())
    weight = next(t for t in rewritten.graph.initializer if t.name == "fc.weight")
    weight.raw_data = weight.raw_data[:8]
    path = tmp_path / "m.xai.onnx"
    onnx.save(rewritten, path)
    for entry in (onnx_xai.Explainer, inspect_model):
        with pytest.raises(ModelError, match="initializer 'fc.weight' declares 8 values"):
            bounded(lambda entry=entry: entry(str(path)))
