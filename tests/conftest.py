"""A stand-in for the Hugging Face Hub at the HTTP boundary, so upload and download code runs for real offline.

`FakeHub` answers the routes huggingface_hub's `create_repo`, `upload_folder`, `repo_info` and file downloads use,
keeps every commit's files, and serves them back. Tests reach it either in-process (`fake_hub`: huggingface_hub's own
HTTP client with a mock transport) or from a subprocess (`fake_hub_server`: a local endpoint set with HF_ENDPOINT).
"""

import base64
import gzip
import hashlib
import http.server
import json
import os
import re
import threading
from urllib.parse import unquote, urlsplit

import httpx2
import pytest
import yaml
from huggingface_hub.utils import _http as hf_http

FAKE_USER = "test-user"


def pytest_configure(config):
    """Under pytest-xdist (one worker per core), each worker and the scripts it launches take one torch thread, so the
    workers share the cores instead of fighting over them; a run without workers keeps torch's default."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each test meets accelerate as a new process does, with no state left by an earlier test in this worker: a
    script that logs through accelerate's logger before its Accelerator exists fails for users, so it fails here
    too."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield


class FakeHub:
    def __init__(self, endpoint: str = "https://huggingface.co"):
        self.endpoint = endpoint
        self.created = []  # create_repo payloads
        self.commits = []  # {"repo_id", "summary", "files": {path: bytes}}
        self.requests = []  # (method, path)

    def files_of(self, repo_id: str) -> dict[str, bytes]:
        """The repository's files after all its commits."""
        files = {}
        for commit in self.commits:
            if commit["repo_id"] == repo_id:
                files.update(commit["files"])
        return files

    def handle(self, method: str, url_path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        path = unquote(url_path.split("?")[0])
        if path == "/api/agent-harnesses":  # huggingface_hub's own once-a-day registry fetch, about no repository
            return 404, {}, b""
        self.requests.append((method, path))
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            self.created.append(payload)
            repo_id = f"{payload.get('organization') or FAKE_USER}/{payload['name']}"
            return self._json({"url": f"{self.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})
        if method == "POST" and path == "/api/validate-yaml":  # model card metadata, checked before upload
            parts = json.loads(body)["content"].split("---\n")
            try:
                metadata = yaml.safe_load(parts[1]) if len(parts) >= 3 and parts[0] == "" else None
            except yaml.YAMLError as error:
                metadata = str(error)
            if not isinstance(metadata, dict):
                errors = [{"message": f"the card's YAML header is not a mapping: {metadata!r}"}]
                return 400, {"content-type": "application/json"}, json.dumps({"errors": errors}).encode()
            return self._json({"errors": [], "warnings": []})
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path):
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return self._json({"files": modes})
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path):
            return self._commit(match.group(1), body)
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path):
            files = self.files_of(match.group(1))
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(files.items())
            ]
            return self._json(entries)
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)(/revision/[^/]+)?", path):
            files = self.files_of(match.group(1))
            if not files:
                return 404, {"x-error-code": "RepoNotFound"}, b'{"error": "Repository not found"}'
            siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())]
            return self._json({"id": match.group(1), "sha": self._sha(match.group(1)), "siblings": siblings})
        if match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            data = self.files_of(match.group(1)).get(match.group(3))
            if data is None:
                return 404, {"x-error-code": "EntryNotFound"}, b'{"error": "Entry not found"}'
            file_headers = {
                "etag": f'"{hashlib.sha1(data).hexdigest()}"',
                "x-repo-commit": self._sha(match.group(1)),
                "content-length": str(len(data)),
                "content-type": "application/octet-stream",
            }
            return 200, file_headers, b"" if method == "HEAD" else data
        return 404, {"x-error-code": "EntryNotFound"}, json.dumps({"error": f"not faked: {method} {path}"}).encode()

    def _commit(self, repo_id: str, body: bytes):
        files, summary = {}, None
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                summary = item["value"]["summary"]
            elif item["key"] == "file":
                assert item["value"]["encoding"] == "base64"
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            else:
                raise AssertionError(f"the fake Hub only takes regular files, got {item['key']}")
        self.commits.append({"repo_id": repo_id, "summary": summary, "files": files})
        sha = self._sha(repo_id)
        return self._json({"commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha})

    def _sha(self, repo_id: str) -> str:
        count = sum(commit["repo_id"] == repo_id for commit in self.commits)
        return hashlib.sha1(f"{repo_id}:{count}".encode()).hexdigest()

    @staticmethod
    def _json(payload) -> tuple[int, dict, bytes]:
        return 200, {"content-type": "application/json"}, json.dumps(payload).encode()


@pytest.fixture
def fake_hub(monkeypatch):
    """huggingface_hub in this process talks to a FakeHub through its own HTTP client (mock transport)."""
    hub = FakeHub()

    def respond(request: httpx2.Request) -> httpx2.Response:
        status, headers, body = hub.handle(
            request.method, request.url.raw_path.decode(), request.read(), dict(request.headers)
        )
        return httpx2.Response(status, headers=headers, content=body)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    hf_http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(respond)))
    yield hub
    hf_http.set_client_factory(hf_http.default_client_factory)


@pytest.fixture
def fake_hub_server():
    """A FakeHub on a local port; pass `hub.env` to a subprocess so its huggingface_hub uses it."""
    hub = FakeHub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, reply_headers, reply = hub.handle(self.command, urlsplit(self.path).path, body, headers)
            self.send_response(status)
            for key, value in reply_headers.items():
                if key != "content-length":
                    self.send_header(key, value)
            self.send_header(
                "content-length",
                str(len(reply)) if self.command != "HEAD" else reply_headers.get("content-length", "0"),
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)

        do_GET = do_POST = do_HEAD = do_PUT = _serve

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    hub.env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_fake_token_for_tests",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()


@pytest.fixture
def diffusers_ddpm_folder(tmp_path):
    """A tiny unconditional pipeline saved by diffusers' own `DDPMPipeline.save_pretrained` (UNet2DModel of 8x8
    greyscale, DDPMScheduler with T = 20), as `google/ddpm-*` repositories are laid out. Returns (folder, U-Net)."""
    from diffusers_folders import save_diffusers_ddpm_folder

    return save_diffusers_ddpm_folder(tmp_path / "ddpm")
