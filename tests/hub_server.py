"""A loopback stand-in for the Hugging Face Hub's file endpoints, for download tests with no network.

``huggingface_hub.hf_hub_download`` talks to two origins, and so does this server:

* the Hub (``HF_ENDPOINT``) answers ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with
  ``X-Repo-Commit`` (the commit a branch points to) and ``ETag`` (the git blob sha1) for small files;
  for large (LFS) files -- here every ``*.safetensors`` -- it answers ``302`` to a CDN with
  ``X-Linked-Etag`` (the sha256 of the content) and ``X-Linked-Size``, as huggingface.co does. Unknown
  repos, revisions and files are ``404`` with the ``X-Error-Code`` huggingface_hub maps to its errors.
* the CDN, a second port (so a different origin, which huggingface_hub does not follow on ``HEAD``),
  serves blobs with ``Range`` support, since huggingface_hub resumes a broken download with
  ``Range: bytes=N-``.

Files can be made to fail in transit (:class:`Fault`), the failures a real download can meet. The
server keeps a log of requests so tests can check what went over the wire.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors",)


class Fault(enum.Enum):
    """How a file's body is mangled in transit (the headers always describe the true file)."""

    #: Sends the first half of the promised bytes, then closes the connection -- every time, resumed
    #: (``Range``) requests included, as when a proxy cuts the same transfer at the same point.
    TRUNCATED = "truncated"
    #: Sends the promised number of bytes, all of them inverted: not a safetensors file at all.
    CORRUPT = "corrupt"
    #: Sends the promised number of bytes with the last 64 inverted: the safetensors header is intact,
    #: only tensor values are wrong (bit rot on a mirror or disk).
    FLIPPED_DATA = "flipped_data"


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content, which the Hub sends as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> filename -> content
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha


class FakeHub:
    """Model repos served on 127.0.0.1: ``with FakeHub() as hub: hub.add_commit("me/model", folder)``.

    ``endpoint`` is what ``HF_ENDPOINT`` (or ``huggingface_hub.constants.ENDPOINT``) should be set to.
    """

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, bytes] = {}  # sha256 -> content
        self.faults: dict[str, Fault] = {}  # filename -> fault applied whenever its bytes are served
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._servers = [_Server(self, cdn=False), _Server(self, cdn=True)]
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return self._servers[0].url

    @property
    def cdn(self) -> str:
        return self._servers[1].url

    def add_commit(self, repo_id: str, folder: Path, *, branch: str | None = "main") -> str:
        """Publish every file of ``folder`` as a new commit of ``repo_id``; move ``branch`` to it.

        Returns the commit's 40-hex sha (derived from the content, so the same folder gives the same
        commit); with ``branch=None`` the commit is reachable only by that sha.
        """
        files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
        digest = hashlib.sha1(repo_id.encode())
        for name, data in files.items():
            digest.update(name.encode() + hashlib.sha256(data).digest())
            if name.endswith(LFS_SUFFIXES):
                self._blobs[hashlib.sha256(data).hexdigest()] = data
        repo = self._repos.setdefault(repo_id, _Repo())
        sha = digest.hexdigest()
        repo.commits[sha] = files
        if branch is not None:
            repo.branches[branch] = sha
        return sha

    def start(self) -> "FakeHub":
        for server in self._servers:
            # A short poll interval: stop() waits for it, once per server.
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"fake-hub-{server.url}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop answering, and drop open keep-alive connections so clients see the server gone."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the client
            self._connections.clear()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what the handlers ask ---------------------------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, filename: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and content of a ``resolve`` request (the body is dropped for ``HEAD``)."""
        repo = self._repos.get(repo_id)
        if repo is None:
            return _error(404, "RepoNotFound", f"Repository {repo_id} not found")
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        data = repo.commits[sha].get(filename)
        if data is None:
            status, headers, body = _error(404, "EntryNotFound", f"{filename} does not exist at {sha}")
            return status, {**headers, "X-Repo-Commit": sha}, body
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"'}
        if filename.endswith(LFS_SUFFIXES):
            digest = hashlib.sha256(data).hexdigest()
            return 302, {**headers, "Location": f"{self.cdn}/lfs/{digest}/{filename}",
                         "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data)),
                         "Content-Length": "0"}, b""
        return 200, headers, data  # Content-Length: send_file

    def _blob(self, digest: str) -> bytes | None:
        return self._blobs.get(digest)

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(conn)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": message}).encode()
    return status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
                    "Content-Length": str(len(body))}, body


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_LFS = re.compile(r"^/lfs/(?P<digest>[0-9a-f]{64})/(?P<filename>[^/]+)$")
_RANGE = re.compile(r"^bytes=(?P<start>\d+)-$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: FakeHub, *, cdn: bool) -> None:
        super().__init__(("127.0.0.1", 0), _CdnHandler if cdn else _HubHandler)
        self.hub = hub

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's pooled client expects
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, True)

    def finish(self) -> None:
        self.server.hub._track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass  # the request log is self.server.hub.requests; keep pytest's output clean

    def send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_file(self, data: bytes, filename: str, headers: dict[str, str]) -> None:
        """Serve ``data`` (honouring ``Range: bytes=N-``), mangled by the fault set for ``filename``."""
        start, status, headers = 0, 200, dict(headers)
        requested = _RANGE.match(self.headers.get("Range", ""))
        if requested:
            start = min(int(requested["start"]), len(data))
            status, headers["Content-Range"] = 206, f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        fault = self.server.hub.faults.get(filename)
        if fault is Fault.CORRUPT:
            body = bytes(b ^ 0xFF for b in body)
        elif fault is Fault.FLIPPED_DATA:
            body = body[:-64] + bytes(b ^ 0xFF for b in body[-64:])
        elif fault is Fault.TRUNCATED:
            body = body[: max(0, len(data) // 2 - start)]
            self.close_connection = True  # then hang up: the client is still waiting for the rest
        self.send(status, headers, body)

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's naming
        self.server.hub._log(self.command, self.path)
        self.answer()

    do_GET = do_HEAD  # noqa: N815

    def answer(self) -> None:
        raise NotImplementedError


class _HubHandler(_Handler):
    def answer(self) -> None:
        match = _RESOLVE.match(self.path.split("?")[0])
        if match is None:
            self.send(*_error(404, "EntryNotFound", f"no route {self.path}"))
            return
        filename = unquote(match["filename"])
        status, headers, body = self.server.hub._resolve(match["repo"], unquote(match["revision"]), filename)
        if status == 200:
            self.send_file(body, filename, headers)
        else:
            self.send(status, headers, body)


class _CdnHandler(_Handler):
    def answer(self) -> None:
        match = _LFS.match(self.path.split("?")[0])
        data = self.server.hub._blob(match["digest"]) if match else None
        if data is None:
            self.send(404, {"Content-Length": "0"}, b"")
            return
        self.send_file(data, match["filename"], {})
