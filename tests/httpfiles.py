"""A real HTTP server on 127.0.0.1 for download tests: files by raw request path.

It honours Range and If-Range (against each file's ETag), can trickle a body a few bytes at a
time, and records every request, so a test can tell whether the network was used at all.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """``files[raw_path] = bytes``; ``trickle[raw_path] = seconds`` between 16-byte pieces."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.trickle: dict[str, float] = {}
        self.requests: list[dict[str, str | None]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, raw_path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{raw_path}"

    @staticmethod
    def etag(data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                server.requests.append({"path": self.path, "range": rng, "if_range": if_range})
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                tag = server.etag(data)
                start = 0
                if rng and (if_range is None or if_range == tag):
                    start = int(rng.split("=")[1].rstrip("-"))
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", tag)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                pause = server.trickle.get(self.path)
                if pause is None:
                    self.wfile.write(body)
                    return
                for i in range(0, len(body), 16):
                    try:
                        self.wfile.write(body[i : i + 16])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    time.sleep(pause)

        return Handler

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
