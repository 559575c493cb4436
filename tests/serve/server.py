"""A served model in a subprocess for the tests: ``onnx-xai serve`` on free loopback ports, waited
for until ready, and a small JSON client."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from onnx_xai.photos import DEMO_MODEL, DEMO_PHOTOS

PHOTOS = sorted(Path(str(DEMO_PHOTOS)).glob("*.jpg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``onnx-xai serve MODEL --name NAME`` with ``flags``, started and stopped by the caller."""

    def __init__(self, *flags: str, model: str | Path = str(DEMO_MODEL), name: str = "lite"):
        self.http, self.grpc, self.name = free_port(), free_port(), name
        command = [sys.executable, "-m", "onnx_xai.cli", "serve", str(model), "--name", name]
        command += ["--http-port", str(self.http), "--grpc-port", str(self.grpc), *flags]
        self.log = tempfile.TemporaryFile(
            mode="w+"
        )  # never a pipe nobody reads: the access log would block it
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.output()}")
            try:
                if self.get(f"/v1/models/{name}")[1].get("ready"):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the server did not become ready")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http}{path}"

    def get(self, path: str) -> tuple[int, dict]:
        with urllib.request.urlopen(self.url(path), timeout=60) as answer:
            return answer.status, json.loads(answer.read())

    def post(self, path: str, body) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url(path), data=data, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def call(self, verb: str, instances: list, **parameters) -> tuple[int, dict]:
        body = {"instances": instances} | ({"parameters": parameters} if parameters else {})
        return self.post(f"/v1/models/{self.name}:{verb}", body)

    def output(self, whole: bool = False) -> str:
        """What the server printed: its last 4000 characters, or all of it."""
        self.log.seek(0)
        text = self.log.read()
        return text if whole else text[-4000:]

    def stop(self) -> tuple[int, str]:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.output()


def photo(path: Path) -> dict:
    return {"image_bytes": {"b64": base64.b64encode(path.read_bytes()).decode()}}
