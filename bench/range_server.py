"""An HTTP file server on 127.0.0.1 for the remote benchmarks: HEAD and GET with Range, ETag and
If-Match, the parts of HTTP that fsspec's HTTP filesystem uses to read parquet by row group.

The benchmarks' own copy, so that bench/ imports nothing from tests/ (tests/pipeline/servers.py
is the tests' server, with faults on demand and a Hub API on top).
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RangeServer:
    """Serves `files` (name -> bytes) at http://127.0.0.1:PORT/NAME."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
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
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def put(self, name: str, data: bytes) -> None:
        with self.lock:
            self.files[name] = data
            self.etags[name] = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        name = h.path.split("?")[0].lstrip("/")
        with self.lock:
            data, etag = self.files.get(name), self.etags.get(name)
        if data is None:
            return self._send(h, 404, b"", {"Content-Length": "0"})
        if h.headers.get("If-Match") not in (None, etag):
            return self._send(h, 412, b"", {"Content-Length": "0"})
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        status, body = 200, data
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
        if m:
            lo = int(m.group(1))
            hi = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            status, body = 206, data[lo : hi + 1]
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
        if head:  # the whole file's length, no body
            return self._send(h, 200, b"", {**headers, "Content-Length": str(len(data))})
        self._send(h, status, body, {**headers, "Content-Length": str(len(body))})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(body)
