"""Real servers on 127.0.0.1 for remote-input tests: an HTTP file server with Range, ETag,
If-Match and faults on demand (nothing in it is mocked: fsspec and aiohttp talk to it over TCP)."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (name -> bytes) at http://127.0.0.1:PORT/NAME.

    `faults` is consumed in order; a fault applies to the next request that matches its
    `method` (and `name`, if given): {"status": 503} answers that status, {"drop": True} sends
    the headers and half the body then closes the connection, {"stall": s} waits s seconds first,
    {"trickle": s} sends the body one byte every s seconds;
    {"skip": n} lets n matching requests through before the fault applies; {"replace": bytes}
    puts new bytes under the name (a new ETag and Last-Modified of its kind) and answers from them.
    `put(..., etag=)`: "strong" (default), "weak" (W/"..."), or None (no ETag header); with
    `modified=False` no Last-Modified either.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.etag_kind: dict[str, str | None] = {}
        self.modified: dict[str, str | None] = {}
        self.versions = 0
        self.ignore_range = False  # answer every GET with 200 and the whole file, as some servers do
        self.faults: list[dict] = []
        self.requests: list[tuple[str, str, str | None]] = []  # (method, name, Range header)
        self.body_bytes = 0  # body bytes sent, faults included
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                server._handle(self, head=True)

            def do_GET(self):
                server._handle(self, head=False)

            def do_POST(self):
                server._handle(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def put(self, name: str, data: bytes, etag: str | None = "strong", modified: bool = True) -> None:
        with self.lock:
            self._put(name, data, etag, modified)

    def _put(self, name: str, data: bytes, etag: str | None, modified: bool) -> None:
        self.files[name] = data
        tag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        self.etags[name] = tag if etag == "strong" else "W/" + tag if etag == "weak" else None
        self.etag_kind[name] = etag
        self.versions += 1  # each version a second later, as a file replaced on a real server
        self.modified[name] = (
            time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(1.7e9 + self.versions)) if modified else None
        )

    def url(self, name: str, userinfo: str = "", query: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}" + (f"?{query}" if query else "")

    def gets(self, name: str | None = None) -> int:
        return sum(1 for m, n, _ in self.requests if m == "GET" and (name is None or n == name))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _fault(self, method: str, name: str) -> dict | None:
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.get("method", "GET") == method and f.get("name", name) == name:
                    if f.get("skip", 0):  # let this many matching requests through first
                        f["skip"] -= 1
                        return None
                    return self.faults.pop(i)
        return None

    def _handle(self, h: BaseHTTPRequestHandler, head: bool, name: str | None = None) -> None:
        name = name if name is not None else h.path.split("?")[0].lstrip("/")
        method = "HEAD" if head else "GET"
        rng = h.headers.get("Range")
        with self.lock:
            self.requests.append((method, name, rng))
        fault = self._fault(method, name)
        with self.lock:
            if fault and "replace" in fault:
                self._put(
                    name, fault["replace"], self.etag_kind.get(name, "strong"), self.modified.get(name) is not None
                )
            data, etag, modified = self.files.get(name), self.etags.get(name), self.modified.get(name)
        if fault and "stall" in fault:
            time.sleep(fault["stall"])
        if fault and "status" in fault:
            return self._send(h, fault["status"], b"", {})
        if data is None:
            return self._send(h, 404, b"", {})
        if h.headers.get("If-Match") not in (None, etag):
            return self._send(h, 412, b"", {})
        headers = {"Accept-Ranges": "bytes"}
        if etag:
            headers["ETag"] = etag
        if modified:
            headers["Last-Modified"] = modified
        status, body = 200, data
        m = None if self.ignore_range else re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m:
            lo = int(m.group(1))
            hi = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            status, body = 206, data[lo : hi + 1]
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
        if head:
            headers["Content-Length"] = str(len(data))
            return self._send(h, 200, b"", headers, length_set=True)
        if fault and "trickle" in fault:  # one byte every `trickle` seconds, until the client hangs up
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                h.send_header(k, v)
            h.end_headers()
            h.close_connection = True
            try:
                for i in range(len(body)):
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
                    time.sleep(fault["trickle"])
            except OSError:
                pass
            return None
        if fault and fault.get("drop"):
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            with self.lock:
                self.body_bytes += len(body) // 2
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        self._send(h, status, body, headers)

    def _send(self, h, status: int, body: bytes, headers: dict, length_set: bool = False) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if not length_set:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body:
            try:
                h.wfile.write(body)
            except (
                OSError
            ):  # the client hung up without reading (as fwpipe does with a whole file sent to a range request)
                h.close_connection = True
                return
            with self.lock:
                self.body_bytes += len(body)


class HubServer(FileServer):
    """The Hugging Face Hub endpoints that huggingface_hub's HfFileSystem calls, for one dataset
    repo at one commit (point HF_ENDPOINT at `endpoint`):

        GET  /api/datasets/{repo}[/revision/{rev}]        repo_info: the commit sha
        GET  /api/datasets/{repo}/tree/{rev}[/{dir}]      listing (recursive=true for globs)
        POST /api/datasets/{repo}/paths-info/{rev}        one path's info
        GET  /datasets/{repo}/resolve/{rev}/{path}        the bytes, with Range and ETag

    `files` are keyed by path in the repo. Unknown endpoints answer 404 and are kept in `unknown`.
    """

    def __init__(self, repo: str, commit: str = "c0ffee" * 6 + "c0ff"):
        super().__init__()
        self.repo, self.commit = repo, commit
        self.unknown: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entry(self, path: str) -> dict:
        """The Hub API's tree entry of `path` (a test may replace it to serve a damaged one)."""
        if path in self.files:
            data = self.files[path]
            sha = hashlib.sha256(data).hexdigest()
            return {
                "type": "file",
                "oid": hashlib.sha1(data).hexdigest(),
                "size": len(data),
                "path": path,
                "lfs": {"oid": sha, "size": len(data), "pointerSize": 134},
            }
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}

    def _children(self, d: str, recursive: bool) -> list[dict]:
        prefix = d + "/" if d else ""
        names = set()
        for f in self.files:
            if not f.startswith(prefix):
                continue
            parts = f[len(prefix) :].split("/")
            for k in range(1, len(parts) + 1 if recursive else 2):
                names.add(prefix + "/".join(parts[:k]))
        return [self.entry(n) for n in sorted(names)]

    def _json(self, h, obj, status: int = 200) -> None:
        self._send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _handle(self, h: BaseHTTPRequestHandler, head: bool, name: str | None = None) -> None:
        from urllib.parse import parse_qs, unquote, urlsplit

        u = urlsplit(h.path)
        path, query = unquote(u.path), parse_qs(u.query)
        api = f"/api/datasets/{self.repo}/"
        res = f"/datasets/{self.repo}/resolve/"
        rev_ok = lambda rev: rev in ("main", self.commit)  # noqa: E731
        if path.startswith(res):
            rev, _, file = path[len(res) :].partition("/")
            if not rev_ok(rev):
                return self._json(h, {"error": "Revision not found"}, 404)
            return super()._handle(h, head, name=file)
        if path == api.rstrip("/"):  # repo_info without a revision: the default branch
            path = api + "revision/main"
        if path.startswith(api):
            with self.lock:
                self.requests.append(("API", path, None))
            kind, _, rest = path[len(api) :].partition("/")
            rev, _, sub = rest.partition("/")
            if not rev_ok(rev):
                return self._json(h, {"error": "Revision not found"}, 404)
            if kind == "revision":
                return self._json(
                    h,
                    {
                        "id": self.repo,
                        "sha": self.commit,
                        "private": False,
                        "siblings": [{"rfilename": f} for f in sorted(self.files)],
                    },
                )
            if kind == "tree":
                sub = sub.strip("/")
                if sub and sub in self.files or (sub and not any(f.startswith(sub + "/") for f in self.files)):
                    return self._json(h, {"error": "not found"}, 404)
                return self._json(h, self._children(sub, query.get("recursive", ["false"])[0] in ("true", "True", "1")))
            if kind == "paths-info":
                body = h.rfile.read(int(h.headers.get("Content-Length", 0))).decode()
                paths = parse_qs(body).get("paths") or json.loads(body or "{}").get("paths", [])
                return self._json(
                    h,
                    [self.entry(p) for p in paths if p in self.files or any(f.startswith(p + "/") for f in self.files)],
                )
        with self.lock:
            self.unknown.append(f"{h.command} {h.path}")
        return self._json(h, {"error": "unknown endpoint"}, 404)
