"""Malformed models refused in one line, before anything is allocated from what they declare.

One pass over the model, linear in its size, reading only what the file holds: every tensor written
in it (initializers, sparse ones, ``Constant`` values and any other tensor attribute, in the main
graph, in every subgraph and in every function) must declare no negative dimension and hold exactly
the values its dims declare, counted as its element type stores them (packed 4-, 2- and 6-bit types,
two numbers per complex value, one string per element); external data must stay in the model's
folder (no absolute location, no ``..``, no symbolic link leading out), exist, and hold the
tensor's bytes; a graph's nodes must have an order that computes them (no cycle), read only
tensors something defines, and never produce a tensor twice (two nodes, or a node and an input or
initializer, or a subgraph's node and a tensor of an enclosing graph other than its node's own
outputs: onnx's checker's rules). An
input and an initializer of the same name stay legal: the initializer is the input's default (IR
versions before 4 required every initializer to be an input). Declared sizes are compared as Python
integers and never allocated, so a product past what the data holds is refused whatever its size; a
sparse tensor whose dense form passes :data:`MAX_DENSE_BYTES` and an input declaring more than
:data:`MAX_INPUT_VALUES` values are refused as absurd. Every problem found is reported, the first
few written out, in one line, as a :class:`~onnx_xai.support.errors.ModelError`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from ..support.errors import ModelError

MAX_DENSE_BYTES = 2**31  # what a sparse tensor may expand to (runtimes make sparse initializers dense)
MAX_INPUT_VALUES = 2**31  # one input's static dims (photos are resized to them)
SHOWN = 5  # problems written out in the message; the rest are counted

# Element type -> bits per value in raw_data (0: none), the typed field, and how many entries of
# that field hold how many values (4-bit types pack two values per int32 entry, complex numbers
# take two entries).
_LAYOUTS = {
    "FLOAT": (32, "float_data", 1, 1),
    "UINT8": (8, "int32_data", 1, 1),
    "INT8": (8, "int32_data", 1, 1),
    "UINT16": (16, "int32_data", 1, 1),
    "INT16": (16, "int32_data", 1, 1),
    "INT32": (32, "int32_data", 1, 1),
    "INT64": (64, "int64_data", 1, 1),
    "STRING": (0, "string_data", 1, 1),
    "BOOL": (8, "int32_data", 1, 1),
    "FLOAT16": (16, "int32_data", 1, 1),
    "DOUBLE": (64, "double_data", 1, 1),
    "UINT32": (32, "uint64_data", 1, 1),
    "UINT64": (64, "uint64_data", 1, 1),
    "COMPLEX64": (64, "float_data", 2, 1),
    "COMPLEX128": (128, "double_data", 2, 1),
    "BFLOAT16": (16, "int32_data", 1, 1),
    "FLOAT8E4M3FN": (8, "int32_data", 1, 1),
    "FLOAT8E4M3FNUZ": (8, "int32_data", 1, 1),
    "FLOAT8E5M2": (8, "int32_data", 1, 1),
    "FLOAT8E5M2FNUZ": (8, "int32_data", 1, 1),
    "FLOAT8E8M0": (8, "int32_data", 1, 1),
    "UINT4": (4, "int32_data", 1, 2),
    "INT4": (4, "int32_data", 1, 2),
    "FLOAT4E2M1": (4, "int32_data", 1, 2),
    "UINT2": (2, "int32_data", 1, 4),
    "INT2": (2, "int32_data", 1, 4),
    "FLOAT6E2M3": (6, "int32_data", 1, 1),
    "FLOAT6E3M2": (6, "int32_data", 1, 1),
}
STORAGE = {
    getattr(onnx.TensorProto, name): layout
    for name, layout in _LAYOUTS.items()
    if hasattr(onnx.TensorProto, name)  # the newer types are absent from older onnx releases
}


def validate(model: onnx.ModelProto, folder: Path | None, sort: bool = False) -> None:
    """Refuse a malformed model (see the module docstring).

    Args:
        model: the model as parsed, its external data not loaded.
        folder: the folder external data is read from; None for a model handed over as bytes or a
            ``ModelProto``, which may then keep no data outside.
        sort: put the nodes of a graph listed out of order (but with an order) in order, in place.

    Raises:
        ModelError: naming every problem found (the first :data:`SHOWN` written out).
    """
    check = _Check(folder, sort)
    check.inputs(model.graph)
    check.graph(model.graph, "", [])
    for function in model.functions:
        check.body(function.node, set(function.input), f" in function {function.name!r}", None)
    problems = check.problems
    if problems:
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        head = "malformed model: " if len(problems) == 1 else f"malformed model ({len(problems)} problems): "
        raise ModelError(head + "; ".join(problems[:SHOWN]) + more)


def describe(node: onnx.NodeProto, index: int) -> str:
    """A node as messages name it: op type and name, else the tensor it produces, else its place."""
    if node.name:
        return f"{node.op_type} {node.name!r}"
    outputs = [o for o in node.output if o]
    return f"{node.op_type} node producing {outputs[0]!r}" if outputs else f"{node.op_type} node #{index}"


@dataclass
class _Check:
    """The problems of one model, found in one pass."""

    folder: Path | None
    sort: bool
    problems: list[str] = field(default_factory=list)

    # -- graphs ------------------------------------------------------------------------------------
    def inputs(self, graph: onnx.GraphProto) -> None:
        """The main graph's inputs: none may declare an absurd size."""
        for value in graph.input:
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
            count = math.prod(d for d in dims if d > 0)
            if count > MAX_INPUT_VALUES:
                self.problems.append(
                    f"input {value.name!r} declares {count} values (static dims {dims}), "
                    f"more than {MAX_INPUT_VALUES} for one input"
                )

    def graph(self, graph: onnx.GraphProto, where: str, scopes: list[set[str]] | None) -> set[str]:
        """Check a graph (its tensors, its subgraphs, its names, its order); the names it reads from
        the enclosing graphs (``scopes``: their names; None inside a function, whose reads are not
        checked)."""
        declared: set[str] = set()
        for value in graph.input:
            if value.name in declared:
                self.problems.append(f"input {value.name!r}{where} is declared twice")
            declared.add(value.name)
        initializers: set[str] = set()
        for tensor in graph.initializer:
            if tensor.name in initializers:
                self.problems.append(f"initializer {tensor.name!r}{where} is declared twice")
            initializers.add(tensor.name)
            self.tensor(tensor, f"initializer {tensor.name!r}{where}")
        for sparse in graph.sparse_initializer:
            initializers.add(sparse.values.name)
            self.sparse(sparse, f"sparse initializer {sparse.values.name!r}{where}")
        return self.body(graph.node, declared | initializers, where, scopes)

    def body(self, nodes, declared: set[str], where: str, scopes: list[set[str]] | None) -> set[str]:
        """Check a list of nodes fed by ``declared`` names; ``scopes`` as :meth:`graph`."""
        producers: dict[str, int] = {}
        clashes = len(self.problems)
        for k, node in enumerate(nodes):
            for name in node.output:
                if name:
                    self._produced(name, k, nodes, producers, declared, where, scopes or [])
        clashes = len(self.problems) - clashes
        names = declared | producers.keys()
        free: set[str] = set()
        reads: list[list[str]] = []
        for k, node in enumerate(nodes):
            read = [i for i in node.input if i]
            inner = self._attributes(
                node, k, where, None if scopes is None else [*scopes, names], node.output
            )
            read += [i for i in inner if i not in read]
            for name in read:
                if name in names or scopes is None:
                    continue
                if any(name in scope for scope in scopes):
                    free.add(name)
                else:
                    self.problems.append(f"{describe(node, k)}{where} reads {name!r}, which nothing defines")
            reads.append(read)
        if not clashes:
            self._order(nodes, producers, reads, where)
        return free

    def _produced(self, name, k, nodes, producers, declared, where, scopes) -> None:
        node = describe(nodes[k], k)
        if name in producers:
            first = describe(nodes[producers[name]], producers[name])
            self.problems.append(f"tensor {name!r}{where} is produced twice: by {first} and by {node}")
        elif name in declared:
            self.problems.append(f"{node}{where} writes {name!r}, which is an input or initializer")
        elif any(name in scope for scope in scopes):
            self.problems.append(f"{node}{where} writes {name!r}, a tensor of an enclosing graph")
        else:
            producers[name] = k

    def _attributes(
        self, node: onnx.NodeProto, k: int, where: str, scopes: list[set[str]] | None, own=()
    ) -> set:
        """Check the tensors and subgraphs of a node's attributes; the outer names its subgraphs read.
        A subgraph may write the node's ``own`` outputs' names (Optimum's merged decoders do)."""
        free: set[str] = set()
        for a in node.attribute:
            tensors = ([a.t] if a.HasField("t") else []) + list(a.tensors)
            sparses = ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors)
            graphs = ([a.g] if a.HasField("g") else []) + list(a.graphs)
            if not (tensors or sparses or graphs):
                continue  # numbers and strings: nothing declares a size
            what = f"attribute {a.name!r} of {describe(node, k)}{where}"
            for tensor in tensors:
                self.tensor(tensor, what)
            for sparse in sparses:
                self.sparse(sparse, what)
            if graphs and scopes is not None and own:
                scopes = [*scopes[:-1], scopes[-1] - set(own)]
            for sub in graphs:
                free |= self.graph(sub, f" in the {a.name!r} graph of {describe(node, k)}{where}", scopes)
        return free

    def _order(self, nodes, producers: dict[str, int], reads: list[list[str]], where: str) -> None:
        """Refuse a cycle; with ``sort``, put nodes listed out of order in order."""
        if all(producers.get(name, -1) < k for k, read in enumerate(reads) for name in read):
            return  # listed in order, so acyclic
        waiting, after = [0] * len(reads), [list[int]() for _ in reads]
        for k, read in enumerate(reads):
            for name in read:
                if name in producers:
                    waiting[k] += 1
                    after[producers[name]].append(k)
        ready = [k for k, count in enumerate(waiting) if count == 0]
        order: list[int] = []
        while ready:  # Kahn's algorithm, the earliest listed node first
            k = heapq.heappop(ready)
            order.append(k)
            for j in after[k]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) < len(reads):
            self.problems.append(_cycle(nodes, producers, reads, set(order), where))
        elif self.sort:
            ordered = [onnx.NodeProto() for _ in order]
            for copy, k in zip(ordered, order):
                copy.CopyFrom(nodes[k])
            del nodes[:]
            nodes.extend(ordered)

    # -- tensors -----------------------------------------------------------------------------------
    def tensor(self, tensor: onnx.TensorProto, what: str) -> None:
        """Refuse a tensor whose dims are negative or absurd, or whose data does not match them."""
        layout = STORAGE.get(tensor.data_type)
        dims = list(tensor.dims)
        if layout is None:
            kind = (
                "no element type"
                if tensor.data_type == 0
                else f"an unknown element type ({tensor.data_type})"
            )
            self.problems.append(f"{what} has {kind}")
            return
        count = self._count(dims, what)
        if count is None:
            return
        bits, typed, entries, values = layout
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            self._external(tensor, what, count, dims, bits)
            return
        if tensor.HasField("raw_data"):
            size = len(tensor.raw_data)
            if bits == 0:
                self.problems.append(f"{what} is a string tensor with raw_data (strings go in string_data)")
            elif size != _bytes(count, bits):
                held = f"holds {size * 8 // bits} ({size} bytes of raw_data)"
                self.problems.append(f"{what} declares {count} values (dims {dims}) but {held}")
            return
        stored = len(getattr(tensor, typed))
        if stored != -(-count * entries // values):
            held = f"holds {stored * values // entries} ({stored} in {typed})"
            self.problems.append(f"{what} declares {count} values (dims {dims}) but {held}")

    def _count(self, dims: list[int], what: str) -> int | None:
        """The number of values ``dims`` declare (a Python integer: never allocated); None, a problem
        noted, when a dimension is negative."""
        if any(d < 0 for d in dims):
            self.problems.append(f"{what} declares a negative dimension (dims {dims})")
            return None
        return math.prod(dims)

    def sparse(self, sparse: onnx.SparseTensorProto, what: str) -> None:
        """A sparse tensor: its values and indices as tensors, and a dense form of a sane size."""
        dims = list(sparse.dims)
        count = self._count(dims, what)
        layout = STORAGE.get(sparse.values.data_type)
        if count is not None and layout is not None and _bytes(count, max(layout[0], 8)) > MAX_DENSE_BYTES:
            self.problems.append(
                f"{what} declares {count} values once dense (dims {dims}), more than {MAX_DENSE_BYTES} bytes"
            )
        self.tensor(sparse.values, f"{what} (its values)")
        self.tensor(sparse.indices, f"{what} (its indices)")
        stored = list(sparse.values.dims)
        if len(stored) != 1 or list(sparse.indices.dims) not in ([stored[0]], [stored[0], len(dims)]):
            self.problems.append(
                f"{what} has values of dims {stored} and indices of dims {list(sparse.indices.dims)} "
                f"(expected [nnz] values and [nnz] or [nnz, {len(dims)}] indices)"
            )

    def _external(self, tensor: onnx.TensorProto, what: str, count: int, dims: list[int], bits: int) -> None:
        """External data: in the model's folder, present, and holding exactly the tensor's bytes."""
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        if self.folder is None:
            self.problems.append(
                f"{what} keeps its data in an external file ({location!r}), which a model given as bytes "
                "or a ModelProto cannot reach (give the model's path)"
            )
            return
        if bits == 0:
            self.problems.append(f"{what} is a string tensor with external data (strings go in string_data)")
            return
        path, why = _inside(self.folder, location)
        if path is None:
            self.problems.append(f"{what} keeps its data {why}")
            return
        try:
            offset, length = int(entries.get("offset", 0)), entries.get("length")
            stored = int(length) if length is not None else path.stat().st_size - offset
            size = path.stat().st_size
        except ValueError:
            self.problems.append(f"{what} has an external offset or length that is not a number")
            return
        if offset < 0 or stored < 0 or offset + stored > size:
            self.problems.append(
                f"{what} reads bytes {offset} to {offset + stored} of {location!r}, which holds {size}"
            )
        elif stored != _bytes(count, bits):
            held = f"holds {stored * 8 // bits} ({stored} bytes of external data in {location!r})"
            self.problems.append(f"{what} declares {count} values (dims {dims}) but {held}")


def _bytes(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def _inside(folder: Path, location: str) -> tuple[Path | None, str]:
    """The file ``location`` names inside ``folder`` (links followed), or None and why not."""
    if not location:
        return None, "in an external file it does not name"
    posix = PurePosixPath(location.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(location).drive:
        return None, f"outside the model's folder (an absolute path: {location!r})"
    if ".." in posix.parts:
        return None, f"outside the model's folder ({location!r})"
    try:
        resolved = (folder / posix).resolve(strict=True)
    except FileNotFoundError:
        return None, f"in {location!r}, which is missing from the model's folder"
    except (OSError, RuntimeError) as exc:  # a loop of links, a folder that cannot be read
        return None, f"in {location!r}, which cannot be read ({exc.__class__.__name__})"
    if not resolved.is_relative_to(folder.resolve()):
        return None, f"outside the model's folder ({location!r} is a link to {str(resolved)!r})"
    if not resolved.is_file():
        return None, f"in {location!r}, which is not a file"
    return resolved, ""


def _cycle(nodes, producers: dict[str, int], reads: list[list[str]], done: set[int], where: str) -> str:
    """A cycle among the nodes Kahn's algorithm could not order, in words."""
    k = next(j for j in range(len(reads)) if j not in done)
    path: list[int] = []
    seen: dict[int, int] = {}
    while k not in seen:  # every node left waits for one left too: walk back until one repeats
        seen[k] = len(path)
        path.append(k)
        k = next(producers[n] for n in reads[k] if n in producers and producers[n] not in done)
    loop = path[seen[k] :][::-1]
    if len(loop) == 1:
        return f"{describe(nodes[k], k)}{where} reads its own output"
    shown = " -> ".join(describe(nodes[j], j) for j in loop[:6]) + (" -> ..." if len(loop) > 6 else "")
    back = describe(nodes[loop[0]], loop[0])
    return f"nodes{where} form a cycle, so no order computes them: {shown} -> {back}"
