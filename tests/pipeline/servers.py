"""Real servers on 127.0.0.1 for remote-input tests: an HTTP file server with Range, ETag,
If-Match and faults on demand (nothing in it is mocked: fsspec and aiohttp talk to it over TCP)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (name -> bytes) at http://127.0.0.1:PORT/NAME.

    `faults` is consumed in order; a fault applies to the next request that matches its
    `method` (and `name`, if given): {"status": 503} answers that status, {"drop": True} sends
    the headers and half the body then closes the connection, {"stall": s} waits s seconds first;
    {"skip": n} lets n matching requests through before the fault applies.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def put(self, name: str, data: bytes) -> None:
        with self.lock:
            self.files[name] = data
            self.etags[name] = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

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

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        name = h.path.split("?")[0].lstrip("/")
        method = "HEAD" if head else "GET"
        rng = h.headers.get("Range")
        with self.lock:
            self.requests.append((method, name, rng))
            data, etag = self.files.get(name), self.etags.get(name)
        fault = self._fault(method, name)
        if fault and "stall" in fault:
            time.sleep(fault["stall"])
        if fault and "status" in fault:
            return self._send(h, fault["status"], b"", {})
        if data is None:
            return self._send(h, 404, b"", {})
        if h.headers.get("If-Match") not in (None, etag):
            return self._send(h, 412, b"", {})
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        status, body = 200, data
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m:
            lo = int(m.group(1))
            hi = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            status, body = 206, data[lo : hi + 1]
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
        if head:
            headers["Content-Length"] = str(len(data))
            return self._send(h, 200, b"", headers, length_set=True)
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
            h.wfile.write(body)
            with self.lock:
                self.body_bytes += len(body)
