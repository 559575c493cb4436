"""``onnx-xai serve`` in a subprocess on loopback ports, against the in-process references.

The bundled EfficientNet-Lite0: ``:predict`` against a plain onnxruntime session on the photo as
``explain`` prepares it (softmax of the logits, top-5); ``:explain`` against the Explainer on the same
input (targets, scores, boxes in photo pixels, the raw maps to 1e-6); arrays as instances; the V2
protocol over REST and gRPC (KServe's own client); the bad-request table row by row (400, one line,
and the server still answers); 8 concurrent clients x 25 requests, each answer matched to its request;
SIGTERM during load: the requests in flight answered, exit status 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

import onnx_xai
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_MODEL

from .server import PHOTOS, Served, photo

pytest.importorskip("kserve")


@pytest.fixture(scope="module")
def served():
    server = Served("--max-instances", "4", "--max-batch", "8", "--max-body-mb", "4")
    yield server
    code, output = server.stop()
    assert code == 0, output


@pytest.fixture(scope="module")
def reference():
    ex = onnx_xai.Explainer(str(DEMO_MODEL))
    session = ort.InferenceSession(str(DEMO_MODEL), providers=["CPUExecutionProvider"])
    inputs = {p: prepare(load_image(p), **preprocessing_for(ex)) for p in PHOTOS}
    return ex, session, inputs


def probabilities(session, x: np.ndarray) -> np.ndarray:
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_predict_equals_a_plain_session(served, reference):
    _, session, inputs = reference
    status, answer = served.call("predict", [photo(p) for p in PHOTOS[:3]], top_k=3)
    assert status == 200
    for p, prediction in zip(PHOTOS, answer["predictions"]):
        want = probabilities(session, inputs[p].array)[0]
        best = np.argsort(-want)[:3]
        assert [t["class"] for t in prediction["top_k"]] == best.tolist()
        np.testing.assert_allclose([t["probability"] for t in prediction["top_k"]], want[best], rtol=1e-5)
    status, answer = served.call("predict", [inputs[PHOTOS[0]].array[0].tolist()])
    assert status == 200 and answer["predictions"][0]["top_k"][0]["class"] == int(
        probabilities(session, inputs[PHOTOS[0]].array).argmax()
    )


def test_explain_equals_the_explainer(served, reference):
    ex, _, inputs = reference
    p = PHOTOS[1]
    status, answer = served.call("explain", [photo(p)], methods=["gradcam", "gradient"], raw=True, target=281)
    assert status == 200 and answer["predictions"][0]["top_k"]
    results = ex.explain_many(inputs[p].array, ["gradcam", "gradient"], objective=281)
    for entry in answer["explanations"][0]:
        want = results[entry["method"]]
        assert entry["target"] == 281 and entry["label"] == "tabby"
        assert entry["score"] == pytest.approx(float(want.scores[0]), rel=1e-5)
        assert entry["box"] == list(inputs[p].box_to_photo(want.boxes[0]))
        np.testing.assert_allclose(np.asarray(entry["map"]), want.maps[0], atol=1e-6)
        assert entry["objective"] == {"kind": "class"} and len(entry["overlay_png"]) > 1000


def test_the_v2_protocol_over_rest_and_grpc(served, reference):
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    _, session, inputs = reference
    x = inputs[PHOTOS[0]].array
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    body = {
        "inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    status, answer = served.post(f"/v2/models/{served.name}/infer", body)
    assert status == 200
    np.testing.assert_allclose(
        np.reshape(answer["outputs"][0]["data"], logits.shape), logits, rtol=1e-4, atol=1e-4
    )
    status, metadata = served.get(f"/v2/models/{served.name}")
    assert metadata["outputs"][0]["name"] == "logits" and metadata["inputs"][0]["shape"] == [-1, 3, 224, 224]

    async def over_grpc():
        tensor = InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client = InferenceGRPCClient(f"127.0.0.1:{served.grpc}")
        return await client.infer(InferRequest(model_name=served.name, infer_inputs=[tensor], request_id="1"))

    answer = asyncio.run(over_grpc())
    np.testing.assert_allclose(answer.outputs[0].as_numpy(), logits, rtol=1e-4, atol=1e-4)


BAD = [
    ({"instances": [{"image_bytes": {"b64": "not base64!"}}]}, "explain", "is not base64"),
    ({"instances": [{"image_bytes": {"b64": "aGVsbG8="}}]}, "explain", "is not an image Pillow can read"),
    ({"instances": [[1.0, 2.0]]}, "predict", "has shape [2]; the model takes [3, 224, 224]"),
    ({"instances": [PHOTOS[0]], "parameters": {"methods": ["nope"]}}, "explain", "methods must be"),
    ({"instances": [PHOTOS[0]], "parameters": {"target": 1000}}, "explain", "target must be a class index"),
    ({"instances": [PHOTOS[0]] * 5}, "predict", "5 instances in one request; at most 4"),
    ({"instances": [PHOTOS[0]], "parameters": {"colour": 1}}, "explain", "unknown parameter(s) ['colour']"),
    ({"instances": [PHOTOS[0]], "parameters": {"region": [5, 5, 1, 1]}}, "explain", "region must be"),
    ({"instances": []}, "predict", "a non-empty list"),
    ({"instances": [PHOTOS[0]], "parameters": {"picture": "gif"}}, "explain", "picture must be"),
    ({"instances": [PHOTOS[0]], "parameters": {"overlay": "jpg"}}, "explain", "overlay must be"),
    ({"instances": [{"image_bytes": {"b64": "x"}, "path": "/etc/passwd"}]}, "predict", "is not base64"),
]


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", served.http, timeout=30)
    connection.putrequest("POST", f"/v1/models/{served.name}:predict")
    connection.putheader("Content-Length", str(5 * 2**20))  # announced, never sent: refused unread
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 400 and json.loads(answer.read())["error"].endswith("at most 4 MB")
    connection.close()
    assert served.call("predict", [photo(PHOTOS[0])])[0] == 200


@pytest.mark.parametrize("body,verb,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_are_one_line_400s(served, body, verb, message):
    body = {
        **body,
        "instances": [photo(i) if not isinstance(i, (dict, list)) else i for i in body["instances"]],
    }
    status, answer = served.post(f"/v1/models/{served.name}:{verb}", body)
    assert status == 400 and message in answer["error"] and "\n" not in answer["error"], answer
    assert served.call("predict", [photo(PHOTOS[0])])[0] == 200


def test_concurrent_clients_get_their_own_answers(served, reference):
    _, session, inputs = reference
    expected = {p: int(probabilities(session, inputs[p].array).argmax()) for p in PHOTOS}
    bodies = {p: [photo(p)] for p in PHOTOS}
    wrong: list = []

    def client(k: int) -> None:
        for n in range(25):
            p = PHOTOS[(k + n) % len(PHOTOS)]
            try:
                status, answer = served.call("predict", bodies[p])
            except OSError as exc:
                wrong.append((k, n, repr(exc)))
                continue
            if status != 200 or answer["predictions"][0]["top_k"][0]["class"] != expected[p]:
                wrong.append((k, n, status))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not wrong


def test_sigterm_answers_the_requests_in_flight_and_exits_0():
    server = Served()
    answers: list = []

    def client() -> None:
        try:
            answers.append(server.call("explain", [photo(PHOTOS[0])])[0])
        except OSError as exc:
            answers.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=120)
    code, output = server.stop()
    assert answers == [200] * 4 and code == 0, output


@pytest.mark.parametrize(
    "net,parameters",
    [
        ("segnet", {"objective": "segmentation", "methods": ["gradcam", "gradient"]}),
        ("yolo", {"target": 2, "methods": ["gradcam"]}),
    ],
)
def test_a_segmenter_and_a_detector_through_their_objectives(net, parameters):
    """The served objective (its record) and maps equal the command line's pipeline in process:
    the same photo prepared, the same objective, the Explainer's maps."""
    from onnx_xai.photos.objectives import objective
    from onnx_xai.photos.run import ExplainOptions

    from ..objectives.test_seeds import export

    path = export(net, "torchscript")
    ex = onnx_xai.Explainer(str(path))
    settings = {k: v for k, v in preprocessing_for(ex).items() if k != "size"}
    p = prepare(load_image(PHOTOS[2]), size=(64, 96), **settings)
    if net == "segnet":  # the class that wins most pixels of this photo
        parameters = parameters | {"target": int(np.bincount(ex.predict(p.array).argmax(1).ravel()).argmax())}
    wanted, chosen = objective(
        ex,
        p.array,
        [p],
        ExplainOptions(objective=parameters.get("objective", "auto"), target=parameters["target"]),
    )
    results = ex.explain_many(p.array, parameters["methods"], wanted)
    server = Served("--size", "64", "96", model=path, name=net)
    try:
        status, answer = server.call("explain", [photo(PHOTOS[2])], raw=True, **parameters)
    finally:
        code, output = server.stop()
    assert status == 200 and code == 0, (answer, output)
    for entry in answer["explanations"][0]:
        assert entry["objective"] == json.loads(json.dumps(chosen[0]))
        np.testing.assert_allclose(np.asarray(entry["map"]), results[entry["method"]].maps[0], atol=1e-6)


def test_the_overlay_laid_over_the_photo_is_the_picture(served):
    import base64
    import io

    from PIL import Image

    def opened(encoded: str) -> Image.Image:
        return Image.open(io.BytesIO(base64.b64decode(encoded)))

    original = Image.open(PHOTOS[0]).convert("RGBA")
    for kind, image_format in (("png", "PNG"), ("jpg", "JPEG")):
        status, answer = served.call("explain", [photo(PHOTOS[0])], picture=kind)
        entry = answer["explanations"][0][0]
        layer, picture = opened(entry["overlay_png"]), opened(entry[f"picture_{kind}"])
        assert status == 200 and picture.format == image_format and layer.format == "PNG"
        assert layer.size == picture.size == original.size
        layer = layer.convert("RGBA")
        laid = np.asarray(Image.alpha_composite(original, layer).convert("RGB"), np.float64)
        difference = np.abs(laid - np.asarray(picture.convert("RGB"), np.float64))
        assert (difference.max() if kind == "png" else difference.mean()) <= 5.0  # see test_pictures
    status, answer = served.call("explain", [photo(PHOTOS[0])], overlay=False)
    pictures = {"overlay_png", "picture_png", "picture_jpg"}
    assert status == 200 and not pictures & set(answer["explanations"][0][0])


def test_a_port_in_use_is_one_line_and_exit_1():
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "onnx_xai.cli", "serve", str(DEMO_MODEL), "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert (
        done.returncode == 1
        and done.stderr == f"onnx-xai: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_a_model_the_gradient_cannot_cross_is_served_by_the_forward_only_methods(tmp_path):
    """A classifier ending in Atan (no gradient rule): :explain with occlusion answers, saying that
    it scored the output itself, equal to the Explainer's; Grad-CAM is a one-line 400 naming the node."""
    from ..runtime.test_perturbation import cumulative

    path = tmp_path / "cumulative.onnx"
    path.write_bytes(cumulative()[1])
    server = Served(model=path, name="cumulative")
    try:
        status, answer = server.call("explain", [photo(PHOTOS[0])], methods=["occlusion"], raw=True, target=2)
        refused = server.call("explain", [photo(PHOTOS[0])], methods=["gradcam"])
    finally:
        code, output = server.stop()
    assert status == 200 and code == 0, (answer, output)
    entry = answer["explanations"][0][0]
    assert "cannot be rewritten" in entry["note"] and entry["target"] == 2
    ex = onnx_xai.Explainer(str(path))
    p = prepare(load_image(PHOTOS[0]), **preprocessing_for(ex))
    np.testing.assert_allclose(
        np.asarray(entry["map"]), ex.explain(p.array, "occlusion", objective=2).maps[0], atol=1e-6
    )
    assert refused[0] == 400 and "Atan" in refused[1]["error"] and "\n" not in refused[1]["error"]


def test_workers_share_the_port_are_replaced_when_killed_and_stop_together(reference):
    """``--workers 2``: a supervisor and two worker processes, each with the model, answering on one
    port (requests are sent until both have answered, each answer checked); a worker killed with
    SIGKILL is replaced by one that serves, said in one line; SIGTERM to the supervisor stops them
    all, exit 0."""
    import os
    from pathlib import Path

    _, session, inputs = reference
    server = Served("--workers", "2", "--grpc-port", "0")
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    try:
        workers = children.read_text().split()
        assert len(workers) == 2
        assert _answered_by(server, set(workers), session, inputs) == set(workers)
        os.kill(int(workers[0]), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while workers[0] in children.read_text().split() or len(children.read_text().split()) < 2:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        now = children.read_text().split()
        (replacement,) = set(now) - set(workers)
        assert replacement in _answered_by(server, {replacement}, session, inputs)
        said = f"onnx-xai serve: worker {workers[0]} was killed by SIGKILL; starting another\n"
        assert said in server.output(whole=True)
    finally:
        code, output = server.stop()
    assert code == 0 and not [p for p in now if Path(f"/proc/{p}").exists()], output


def _answered_by(server: Served, wanted: set[str], session, inputs) -> set[str]:
    """Requests until every process in ``wanted`` has answered one (at most 60 s), each answer
    checked; the processes that answered, read off the access log (it names each line's process)."""
    import re

    access = r'uvicorn\.access INFO:\s+\S+ (\d+) - "POST'
    start, deadline, seen = len(server.output(whole=True)), time.monotonic() + 60, set()
    for n in range(10_000):
        p = PHOTOS[n % len(PHOTOS)]
        status, answer = server.call("predict", [photo(p)])
        want = int(probabilities(session, inputs[p].array).argmax())
        assert status == 200 and answer["predictions"][0]["top_k"][0]["class"] == want
        seen = set(re.findall(access, server.output(whole=True)[start:]))
        if wanted <= seen or time.monotonic() > deadline:
            break
    return seen


def test_a_worker_that_cannot_load_the_model_is_one_line_and_exit_1():
    import subprocess
    import sys

    command = [sys.executable, "-m", "onnx_xai.cli", "serve", str(DEMO_MODEL), "--workers", "2"]
    command += ["--http-port", "0", "--grpc-port", "0", "--target-layer", "nope"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.endswith(
        "onnx-xai: error: the model has no tensor named 'nope' produced by a node\n"
    ), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_requests_beyond_the_bytes_in_flight_get_503_and_the_server_goes_on(reference):
    """``--max-pending-mb 1``: a request that sent 999,999 bytes of its 1,000,000 and holds them leaves no
    room for a 0.1 MB photo: 503, one line, Retry-After; once it goes, the photo is answered."""
    import http.client
    import socket

    _, session, inputs = reference
    server = Served("--max-body-mb", "1", "--max-pending-mb", "1")
    try:
        holder = socket.create_connection(("127.0.0.1", server.http), timeout=30)
        head = (
            f"POST /v1/models/{server.name}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        )
        sent = '{"instances": [' + " " * (999_999 - 15)
        holder.sendall((head + f"Content-Length: {1_000_000}\r\n\r\n" + sent).encode())
        time.sleep(0.5)  # admitted: its bytes charged as they arrived
        body = json.dumps({"instances": [photo(PHOTOS[1])]}).encode()
        assert 2**20 - 1_000_000 < len(body) < 2**20
        connection = http.client.HTTPConnection("127.0.0.1", server.http, timeout=30)
        connection.request(
            "POST", f"/v1/models/{server.name}:predict", body, {"content-type": "application/json"}
        )
        answer = connection.getresponse()
        refused = (answer.status, answer.getheader("retry-after"), json.loads(answer.read())["error"])
        holder.close()  # the held request goes: its charge with it
        deadline = time.monotonic() + 30
        while (status := server.post(f"/v1/models/{server.name}:predict", body))[0] == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        over_grpc = [_grpc_infer(server, np.repeat(inputs[PHOTOS[1]].array, k, axis=0)) for k in (4, 1)]
    finally:
        code, output = server.stop()
    assert refused[:2] == (503, "1") and refused[2].startswith("the server is busy: 999999 bytes of requests")
    assert "\n" not in refused[2] and "--max-pending-mb" in refused[2]
    want = int(probabilities(session, inputs[PHOTOS[1]].array).argmax())
    assert status[0] == 200 and status[1]["predictions"][0]["top_k"][0]["class"] == want
    assert code == 0 and "Traceback" not in output, output
    too_large, answered = over_grpc  # gRPC messages bounded alike: 2.4 MB refused, 0.6 MB answered
    assert "RESOURCE_EXHAUSTED" in too_large and "larger than max" in too_large
    np.testing.assert_allclose(answered, session.run(None, {"image": inputs[PHOTOS[1]].array})[0], atol=1e-4)


def _grpc_infer(server: Served, x: np.ndarray):
    """V2 infer over gRPC with KServe's client: the output, or the error's text."""
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def call():
        tensor = InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc}")
        return await client.infer(InferRequest(model_name=server.name, infer_inputs=[tensor], request_id="1"))

    try:
        return asyncio.run(call()).outputs[0].as_numpy()
    except Exception as exc:  # noqa: BLE001 - the error is what the test reads
        return f"{type(exc).__name__}: {exc}"
